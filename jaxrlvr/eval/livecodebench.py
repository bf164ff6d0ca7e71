"""LiveCodeBench code generation (Jain et al. 2025), Revisiting's out-of-domain coding benchmark, from a
local file in the benchmark's public release format.

The problems are not on PyPI and not in any repository we can reach (the release is a Hugging Face dataset,
``livecodebench/code_generation_lite``): a user downloads a release's ``test*.jsonl`` and points
``livecodebench_path`` (or ``$JAXRLVR_LIVECODEBENCH_PATH``) at it (docs/ood_eval.md). One JSON object per
line with the release's fields:

- ``question_id``, ``question_title``, ``question_content`` (the statement), ``platform``
  (``leetcode`` / ``codeforces`` / ``atcoder``), ``contest_date``, ``difficulty``, ``starter_code``;
- ``public_test_cases`` and ``private_test_cases``: a JSON list of ``{"input", "output", "testtype"}``
  (``testtype`` ``"stdin"`` or ``"functional"``), as a string or a list; in the lite release the private
  cases are a base64 string of zlib-compressed pickled JSON text, which is read with an unpickler that
  accepts plain strings only (no object of the file's choosing is built);
- ``metadata``: JSON (string or object) with ``func_name`` for functional problems.

Scoring runs every test of a problem (public and private) in :mod:`jaxrlvr.eval.sandbox`, the HumanEval
sandbox: the program (the last fenced code block of the response, else the response) runs in the
candidate process; the trusted checks in the checker process. Functional problems call
``Solution().<func_name>(*args)`` with one JSON value per input line and compare with the JSON output
(tuples compare as lists); stdin problems run the program as ``__main__`` with the input on ``sys.stdin``
and compare the printed lines, whitespace-trimmed (numbers within 1e-6 when the text differs). The time
limit is ``code_timeout_s`` per test case, for the whole problem. Our prompt wording (not the release's).
"""

from __future__ import annotations

import base64
import io
import json
import os
import pathlib
import pickle
import re
import zlib
from collections.abc import Mapping, Sequence
from typing import Any

ENV_PATH = "JAXRLVR_LIVECODEBENCH_PATH"
_FENCE_RE = re.compile(r"```[ \t]*([\w+-]*)[^\n]*\n(.*?)```", re.DOTALL)


class LiveCodeBenchDataNotFoundError(FileNotFoundError):
    """No LiveCodeBench file; the message says what to provide."""


class _StringsOnly(pickle.Unpickler):
    def find_class(self, module, name):  # a plain str needs no class: anything else is refused
        raise pickle.UnpicklingError(f"LiveCodeBench test cases may only hold a string, not {module}.{name}")


def decode_tests(value: Any, where: str) -> list[dict]:
    """A test-case field (a list, JSON text, or the lite release's base64 / zlib / pickle of JSON text)."""
    if isinstance(value, list):
        cases = value
    elif isinstance(value, str):
        text = value.strip()
        if not text.startswith("["):
            try:
                text = _StringsOnly(io.BytesIO(zlib.decompress(base64.b64decode(text)))).load()
            except Exception as e:  # noqa: BLE001 - any malformed payload is the same user error
                raise ValueError(f"{where}: test cases are neither JSON nor base64/zlib/pickle text ({e})") from None
        cases = json.loads(text)
    else:
        raise ValueError(f"{where}: test cases must be a list or a string, got {type(value).__name__}")
    for c in cases:
        if not isinstance(c, dict) or not {"input", "output"} <= set(c):
            raise ValueError(f"{where}: a test case needs 'input' and 'output', got {str(c)[:80]!r}")
    return cases


def load_livecodebench(path: str | os.PathLike | None = None) -> list[dict]:
    """Rows ``{id, question, starter_code, func_name, tests: [(input, output)], testtype, ...}``."""
    path = path or os.environ.get(ENV_PATH)
    if not path or not pathlib.Path(path).expanduser().is_file():
        raise LiveCodeBenchDataNotFoundError(
            f"no LiveCodeBench file{f' at {path}' if path else ''}: download a release's test*.jsonl of "
            f"livecodebench/code_generation_lite and set livecodebench_path=FILE (or ${ENV_PATH}); "
            "see docs/ood_eval.md"
        )
    found = pathlib.Path(path).expanduser()
    rows = []
    with found.open(encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            where = f"{found}:{lineno}"
            try:
                raw = json.loads(line)
            except json.JSONDecodeError as e:
                raise ValueError(f"{where}: not valid JSON ({e})") from None
            missing = [k for k in ("question_id", "question_content", "public_test_cases") if k not in raw]
            if missing:
                raise ValueError(f"{where}: missing LiveCodeBench fields {missing}")
            cases = decode_tests(raw["public_test_cases"], where) + decode_tests(
                raw.get("private_test_cases") or [], where
            )
            meta = raw.get("metadata") or {}
            meta = json.loads(meta) if isinstance(meta, str) and meta.strip() else (meta or {})
            kinds = {c.get("testtype", "stdin") for c in cases}
            if len(kinds) != 1 or not cases:
                raise ValueError(f"{where}: needs test cases of one testtype, got {sorted(kinds) or 'none'}")
            kind = kinds.pop()
            if kind == "functional" and not meta.get("func_name"):
                raise ValueError(f"{where}: a functional problem needs metadata.func_name")
            rows.append(
                {
                    **{k: v for k, v in raw.items() if k not in ("public_test_cases", "private_test_cases")},
                    "id": str(raw["question_id"]),
                    "question": raw["question_content"],
                    "starter_code": raw.get("starter_code") or "",
                    "func_name": meta.get("func_name"),
                    "testtype": kind,
                    "tests": [(str(c["input"]), str(c["output"])) for c in cases],
                }
            )
    if not rows:
        raise ValueError(f"{found}: no problems")
    return rows


def prompt_text(row: Mapping[str, Any]) -> str:
    """The user message: the statement and how the answer is run (our wording)."""
    if row["testtype"] == "functional":
        how = (
            "Complete the following starter code; your class is called as written. Reply with the whole "
            f"solution in one ```python code block.\n\n```python\n{row['starter_code']}\n```"
        )
    else:
        how = (
            "Write a Python 3 program that reads the input from standard input and prints the answer to "
            "standard output. Reply with the whole program in one ```python code block."
        )
    return f"Solve this programming problem.\n\n{row['question']}\n\n{how}"


def extract_program(response: str) -> str:
    """The last fenced code block of the response (an unclosed last fence included), else the response."""
    blocks = [m.group(2) for m in _FENCE_RE.finditer(response)]
    if blocks:
        return blocks[-1]
    opened = response.rfind("```")
    if opened >= 0:
        return response[opened:].split("\n", 1)[1] if "\n" in response[opened:] else ""
    return response


_STDIN_RUNNER = """
import contextlib as _lcb_contextlib
import io as _lcb_io
import sys as _lcb_sys

_LCB_SOURCE = {source!r}


def __lcb_entry__(text):
    out, old = _lcb_io.StringIO(), _lcb_sys.stdin
    _lcb_sys.stdin = _lcb_io.StringIO(text)
    try:
        with _lcb_contextlib.redirect_stdout(out):
            try:
                exec(compile(_LCB_SOURCE, "solution.py", "exec"), {{"__name__": "__main__"}})
            except SystemExit:
                pass
    finally:
        _lcb_sys.stdin = old
    return out.getvalue()
"""

_FUNCTIONAL_RUNNER = """

def __lcb_entry__(*args):
    return Solution().{func_name}(*args)
"""

_CHECK = """
import json

CASES = {cases!r}
KIND = {kind!r}


def _same_lines(got, want):
    g, w = got.strip().splitlines(), want.strip().splitlines()
    if [x.strip() for x in g] == [x.strip() for x in w]:
        return True
    gt, wt = got.split(), want.split()
    if len(gt) != len(wt):
        return False
    try:
        return all(a == b or abs(float(a) - float(b)) <= 1e-6 for a, b in zip(gt, wt))
    except ValueError:
        return False


def _plain(x):
    if isinstance(x, tuple):
        x = list(x)
    if isinstance(x, list):
        return [_plain(v) for v in x]
    return x


def check(candidate):
    for inp, out in CASES:
        if KIND == "functional":
            args = [json.loads(line) for line in inp.split("\\n") if line.strip()]
            assert _plain(candidate(*args)) == _plain(json.loads(out)), "wrong answer"
        else:
            assert _same_lines(candidate(inp), out), "wrong answer"
"""


def harness(row: Mapping[str, Any], program: str) -> tuple[str, str]:
    """(candidate program, trusted test code defining ``check``) for one problem and extracted program;
    the entry point is ``__lcb_entry__``."""
    if row["testtype"] == "functional":
        source = program + _FUNCTIONAL_RUNNER.format(func_name=row["func_name"])
    else:
        source = _STDIN_RUNNER.format(source=program)
    return source, _CHECK.format(cases=list(map(tuple, row["tests"])), kind=row["testtype"])


def check_responses(
    rows: Sequence[Mapping[str, Any]], programs: Sequence[str], *, timeout_s: float, workers: int, memory_mb: int
):
    """The sandbox's :class:`ExecutionResult` of each (row, program): all tests of the row in one run, within
    ``timeout_s`` per test case."""
    from jaxrlvr.eval import code

    def one(rp):
        row, program = rp
        source, test = harness(row, program)
        options = code._options(timeout_s * max(1, len(row["tests"])), memory_mb, 2000, None, "auto")
        return code._run_checked(source, "", test, "__lcb_entry__", options)

    return code._parallel(one, list(zip(rows, programs, strict=True)), workers)
