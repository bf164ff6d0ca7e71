"""HumanEval: prompts, code extraction from responses, and execution of the programs in subprocesses.

A HumanEval problem is a row with ``task_id``, ``prompt`` (imports, a function signature and docstring),
``test`` (a ``check(candidate)`` function) and ``entry_point`` (the function's name). A model answers in one
of two styles:

- ``"completion"``: the raw HumanEval prompt is the model input and the response is the text that follows
  it (a base model continuing the function body). The response is cut at the first stop sequence of the
  original Codex evaluation (:data:`STOP_SEQUENCES`) and at a Markdown code fence.
- ``"chat"``: the prompt is wrapped in a user message of the chat template and the model replies with the
  whole function, usually in a fenced code block. The block is taken (the last one that defines the entry
  point, else the first), top-level statements other than imports, definitions and assignments (example
  calls, ``if __name__ == "__main__":`` blocks) are dropped, and the code is placed after the prompt, so
  the prompt's imports and helper functions stay available.

Execution (:func:`check_programs`, :mod:`jaxrlvr.eval.sandbox`): the model's program (prompt + completion)
runs in a sandboxed *candidate* process that never sees the test code; the problem's ``check(candidate)``
runs in a separate, trusted *checker* process in which ``candidate`` is a proxy: each call sends the
arguments to the program and gets the result back as plain values only (numbers, strings, containers).
Nothing the program does in its own process (walking frames, exiting with status 0, printing, returning an
object whose ``__eq__`` always answers True) can make a test pass. The candidate runs in Linux namespaces
(read-only root, private ``/tmp``, no network, a PID namespace so no process outlives the run) when
``unshare`` works on this machine, else under an in-process guard (not a security boundary: a warning is
logged when that happens as root). ``isolation="auto" | "namespace" | "guard"`` chooses; see
``docs/ood_eval.md`` for the threat model.
"""

from __future__ import annotations

import ast
import concurrent.futures
import json
import logging
import os
import pathlib
import re
import sys
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from jaxrlvr.eval import sandbox
from jaxrlvr.eval.sandbox import ExecutionResult, isolation_mode  # noqa: F401 - re-exported

logger = logging.getLogger(__name__)

DATA_DIR = pathlib.Path(__file__).resolve().parent / "data"
HUMANEVAL_PATH = DATA_DIR / "humaneval.jsonl"

# Stop sequences of the Codex paper's HumanEval evaluation: a new top-level statement ends the function.
STOP_SEQUENCES: tuple[str, ...] = ("\nclass", "\ndef", "\n#", "\nif", "\nprint")

STYLES = ("completion", "chat")

CHAT_INSTRUCTION = (
    "Complete the following Python function. Reply with the complete function, including its signature "
    "and any imports it needs, in a single ```python code block."
)

_REQUIRED_FIELDS = ("prompt", "test", "entry_point")


class ChatTemplater(Protocol):
    def apply_chat_template(self, messages: Sequence[dict], add_generation_prompt: bool = True) -> str: ...


# ----------------------------------------------------------------------------------------------------------
# Data


def _validate_problem(problem: Mapping[str, Any], where: str) -> None:
    for field in _REQUIRED_FIELDS:
        if field not in problem:
            raise ValueError(f"{where}: HumanEval problem has no field {field!r} (keys: {sorted(problem)})")
        if not isinstance(problem[field], str):
            kind = type(problem[field]).__name__
            raise ValueError(f"{where}: field {field!r} must be a string, got {kind}")
    if not problem["entry_point"].isidentifier():
        raise ValueError(f"{where}: entry_point {problem['entry_point']!r} is not a Python identifier")


def load_humaneval(path: str | os.PathLike | None = None) -> list[dict]:
    """Reads HumanEval problems from a jsonl file (default: the 164 problems shipped with jaxrlvr)."""
    path = pathlib.Path(path) if path is not None else HUMANEVAL_PATH
    if not path.is_file():
        raise FileNotFoundError(f"HumanEval file not found: {path}")
    rows = []
    with path.open(encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise ValueError(f"{path}:{lineno}: not valid JSON ({e})") from e
            _validate_problem(row, f"{path}:{lineno}")
            rows.append(row)
    if not rows:
        raise ValueError(f"{path}: no problems")
    return rows


# ----------------------------------------------------------------------------------------------------------
# Prompts and code extraction


def build_prompt(
    problem: Mapping[str, Any],
    *,
    style: str = "completion",
    tokenizer: ChatTemplater | None = None,
    instruction: str = CHAT_INSTRUCTION,
) -> str:
    """The model input for one problem: the raw prompt (``"completion"``) or a chat-formatted request."""
    _check_style(style)
    if style == "completion":
        return problem["prompt"]
    if tokenizer is None:
        raise ValueError("style='chat' needs a tokenizer with apply_chat_template")
    content = f"{instruction}\n\n```python\n{problem['prompt'].rstrip()}\n```"
    return tokenizer.apply_chat_template([{"role": "user", "content": content}], add_generation_prompt=True)


def _check_style(style: str) -> None:
    if style not in STYLES:
        raise ValueError(f"HumanEval style must be one of {STYLES}, got {style!r}")


def truncate_at_stop(text: str, stop_sequences: Sequence[str] = STOP_SEQUENCES) -> str:
    """``text`` up to (not including) the earliest stop sequence."""
    cut = len(text)
    for stop in stop_sequences:
        i = text.find(stop)
        if i != -1:
            cut = min(cut, i)
    return text[:cut]


_FENCE_RE = re.compile(r"^[ \t]*```[ \t]*([\w+-]*)[^\n]*\n(.*?)^[ \t]*```", re.DOTALL | re.MULTILINE)
_OPEN_FENCE_RE = re.compile(r"^[ \t]*```[ \t]*([\w+-]*)[^\n]*\n(.*)\Z", re.DOTALL | re.MULTILINE)
_KEEP_NODES = (
    ast.Import,
    ast.ImportFrom,
    ast.FunctionDef,
    ast.AsyncFunctionDef,
    ast.ClassDef,
    ast.Assign,
    ast.AnnAssign,
)


def _defines(code: str, entry_point: str) -> bool:
    return re.search(rf"^\s*(?:async\s+)?def\s+{re.escape(entry_point)}\s*\(", code, re.MULTILINE) is not None


def _fenced_blocks(text: str) -> list[str]:
    blocks = [m.group(2) for m in _FENCE_RE.finditer(text)]
    if not blocks:  # an unclosed fence (the response was cut off by the token limit)
        m = _OPEN_FENCE_RE.search(text)
        if m:
            blocks = [m.group(2)]
    return blocks


def _parse_prefix(lines: list[str], max_tries: int = 200) -> ast.Module | None:
    """The AST of the longest prefix of ``lines`` that parses (trailing prose cut off), or None."""
    for end in range(len(lines), max(0, len(lines) - max_tries), -1):
        try:
            return ast.parse("\n".join(lines[:end]))
        except SyntaxError:
            continue
    return None


def sanitize_code(code: str) -> str:
    """Keeps the top-level imports, definitions and assignments of ``code``; drops example calls, prints,
    asserts and ``if __name__ == "__main__":`` blocks, and trailing lines that do not parse. Code none of
    whose prefixes parses is returned cut at the first ``if __name__`` line."""
    lines = code.splitlines()
    tree = _parse_prefix(lines)
    if tree is None:
        m = re.search(r"^if\s+__name__\s*==", code, re.MULTILINE)
        return code[: m.start()] if m else code
    kept = []
    for node in tree.body:
        if not isinstance(node, _KEEP_NODES):
            continue
        start = min([node.lineno] + [d.lineno for d in getattr(node, "decorator_list", [])])
        kept.append("\n".join(lines[start - 1 : node.end_lineno]))
    return "\n\n".join(kept) + "\n"


def _as_body(code: str) -> str:
    """A function body: indented by four spaces unless it already is."""
    lines = code.strip("\n").splitlines()
    first = next((ln for ln in lines if ln.strip()), "")
    if first[:1] in (" ", "\t"):
        return "\n".join(lines) + "\n"
    return "\n".join(("    " + ln) if ln.strip() else ln for ln in lines) + "\n"


def extract_completion(problem: Mapping[str, Any], response: str, *, style: str = "chat") -> str:
    """The text to place after ``problem['prompt']`` for a model response.

    ``"completion"``: the response continues the prompt; it is cut at the first stop sequence and at a line
    that opens a Markdown fence. ``"chat"``: a fenced block (or, without one, the response itself when it
    defines the entry point) that defines the entry point is sanitized (:func:`sanitize_code`) and placed on
    a new line after the prompt; a block without the definition is taken as the function body; a response
    with neither is treated as a continuation as in ``"completion"``.
    """
    _check_style(style)
    entry_point = problem["entry_point"]
    if style == "chat":
        blocks = _fenced_blocks(response)
        defining = [b for b in blocks if _defines(b, entry_point)]
        if defining:
            return "\n" + sanitize_code(defining[-1])
        if blocks:
            return _as_body(blocks[0])
        if _defines(response, entry_point):
            m = re.search(r"^(?:from\s|import\s|@|(?:async\s+)?def\s|class\s)", response, re.MULTILINE)
            return "\n" + sanitize_code(response[m.start() :] if m else response)
    text = truncate_at_stop(response)
    m = re.search(r"^[ \t]*```", text, re.MULTILINE)
    return text[: m.start()] if m else text


# ----------------------------------------------------------------------------------------------------------
# Execution (jaxrlvr.eval.sandbox): the program runs in one process, the tests in another.


def run_program(
    source: str,
    *,
    timeout_s: float = 3.0,
    memory_mb: int = 1024,
    max_output_chars: int = 2000,
    python: str | None = None,
    isolation: str = "auto",
) -> ExecutionResult:
    """Runs one Python program as a candidate without tests: passed means it ran to its end without an
    exception within ``timeout_s`` (a status the program could fake: use :func:`check_programs` for verdicts)."""
    return _run_checked(source, "", "", None, _options(timeout_s, memory_mb, max_output_chars, python, isolation))


def _options(timeout_s, memory_mb, max_output_chars, python, isolation) -> dict:
    if timeout_s <= 0:
        raise ValueError(f"timeout_s must be positive, got {timeout_s}")
    python = python or sys.executable
    return dict(
        timeout_s=float(timeout_s),
        memory_mb=int(memory_mb),
        max_output_chars=int(max_output_chars),
        python=python,
        mode=sandbox._resolve(isolation, python),
    )


def _run_checked(program: str, setup: str, test: str, entry_point: str | None, options: dict) -> ExecutionResult:
    try:
        return sandbox._run(program, setup, test, entry_point, **options)
    except Exception as e:  # noqa: BLE001 - one bad program must not stop the evaluation
        logger.warning("code execution harness error: %r", e)
        return ExecutionResult(False, "error", None, "", repr(e), 0.0, repr(e), options["mode"][0])


def _parallel(fn, items: Sequence, workers: int) -> list:
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    if workers == 1 or len(items) <= 1:
        return [fn(x) for x in items]
    with concurrent.futures.ThreadPoolExecutor(max_workers=workers, thread_name_prefix="humaneval") as pool:
        return list(pool.map(fn, items))


def execute_programs(
    sources: Sequence[str],
    *,
    timeout_s: float = 3.0,
    workers: int = 2,
    memory_mb: int = 1024,
    max_output_chars: int = 2000,
    python: str | None = None,
    isolation: str = "auto",
) -> list[ExecutionResult]:
    """:func:`run_program` for many programs, ``workers`` at a time (threads that each manage one run);
    results in input order, a harness exception for one program becomes an ``error`` result."""
    options = _options(timeout_s, memory_mb, max_output_chars, python, isolation)
    return _parallel(lambda src: _run_checked(src, "", "", None, options), sources, workers)


def check_programs(
    problems: Sequence[Mapping[str, Any]],
    completions: Sequence[str],
    *,
    timeout_s: float = 3.0,
    workers: int = 2,
    memory_mb: int = 1024,
    isolation: str = "auto",
) -> list[bool]:
    """Whether each ``prompt + completion`` passes its problem's tests (see :mod:`jaxrlvr.eval.sandbox`)."""
    results = check_programs_detailed(
        problems, completions, timeout_s=timeout_s, workers=workers, memory_mb=memory_mb, isolation=isolation
    )
    return [r.passed for r in results]


def check_programs_detailed(
    problems: Sequence[Mapping[str, Any]],
    completions: Sequence[str],
    *,
    timeout_s: float = 3.0,
    workers: int = 2,
    memory_mb: int = 1024,
    isolation: str = "auto",
) -> list[ExecutionResult]:
    """:func:`check_programs` with the full :class:`ExecutionResult` of each program."""
    if len(problems) != len(completions):
        raise ValueError(f"{len(problems)} problems but {len(completions)} completions")
    for i, p in enumerate(problems):
        _validate_problem(p, f"problems[{i}]")
    options = _options(timeout_s, memory_mb, 2000, None, isolation)

    def one(pc):
        p, c = pc
        return _run_checked(p["prompt"] + c, p["prompt"], p["test"], p["entry_point"], options)

    return _parallel(one, list(zip(problems, completions, strict=True)), workers)


def score_code(
    problem: Mapping[str, Any],
    response: str,
    *,
    style: str = "chat",
    timeout_s: float = 3.0,
    memory_mb: int = 1024,
    isolation: str = "auto",
) -> bool:
    """Per-sample HumanEval score: extract the code from ``response`` and run the tests."""
    return score_code_batch(
        [problem], [response], style=style, timeout_s=timeout_s, workers=1, memory_mb=memory_mb, isolation=isolation
    )[0]


def score_code_batch(
    problems: Sequence[Mapping[str, Any]],
    responses: Sequence[str],
    *,
    style: str = "chat",
    timeout_s: float = 3.0,
    workers: int = 2,
    memory_mb: int = 1024,
    isolation: str = "auto",
) -> list[bool]:
    """:func:`score_code` for many (problem, response) pairs, run in parallel."""
    if len(problems) != len(responses):
        raise ValueError(f"{len(problems)} problems but {len(responses)} responses")
    completions = [extract_completion(p, r, style=style) for p, r in zip(problems, responses, strict=True)]
    return check_programs(
        problems, completions, timeout_s=timeout_s, workers=workers, memory_mb=memory_mb, isolation=isolation
    )
