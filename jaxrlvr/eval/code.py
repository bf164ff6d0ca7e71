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

Execution (:func:`check_programs`): each program ``prompt + completion + test + check(entry_point)`` runs in
its own ``python -I -B`` subprocess in a fresh temporary directory, with

- a wall-clock timeout (3 s by default) after which the whole process group is killed (the child starts a
  new session; ``os.killpg(SIGKILL)``), and the group is killed after a normal exit too (stray children);
- resource limits set in the child before the program runs: CPU time (``RLIMIT_CPU``), address space
  (``RLIMIT_AS``, 1 GiB by default), file size (``RLIMIT_FSIZE``), no core files, and ``RLIMIT_NPROC = 0``
  (no new processes or threads; this one has no effect when running as root);
- a minimal environment (``PATH``, ``HOME`` and ``TMPDIR`` pointing at the temporary directory, a UTF-8
  locale, one BLAS thread): no variable of the parent, so no tokens or keys, is inherited;
- stdin from ``/dev/null``, stdout and stderr captured to files and returned truncated;
- a guard that replaces destructive functions before the untrusted code runs: process creation and
  signalling (``os.system``, ``os.fork``, ``os.exec*``, ``os.spawn*``, ``os.posix_spawn``, ``subprocess``,
  ``os.kill``, ``os.killpg``, ``os.setsid``, ...), permission and owner changes, ``shutil.rmtree`` /
  ``shutil.move``, and file deletion, renaming or opening for writing outside the temporary directory;
  ``ctypes`` cannot be imported.

A run counts as passed only when ``check(entry_point)`` returned and the harness then wrote a random token,
known only to the parent and the harness, to stdout, and the process exited with status 0. ``sys.exit(0)``,
``os._exit(0)``, an exception, a signal, a timeout or a program that prints ``"passed"`` all fail.

**This is not a security boundary.** The guard only stops accidents and naive code; Python code in the same
process can undo it (through ``gc``, frame objects, ``_io``, ...). For models you do not trust, run the
evaluation inside a container or VM without network and with a read-only root file system (see
``docs/ood_eval.md``).
"""

from __future__ import annotations

import ast
import concurrent.futures
import dataclasses
import json
import logging
import math
import os
import pathlib
import re
import secrets
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

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
_FILE_SIZE_LIMIT = 16 << 20  # RLIMIT_FSIZE in the child: stdout/stderr files and anything it writes


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


def build_program(problem: Mapping[str, Any], completion: str) -> str:
    """The program HumanEval runs: prompt, completion, the test code and a call of ``check``."""
    return f"{problem['prompt']}{completion}\n{problem['test']}\n\ncheck({problem['entry_point']})\n"


# ----------------------------------------------------------------------------------------------------------
# The code that runs in the child before (and after) the untrusted program. It reads a header line from
# stdin: the success token and the limits. Everything here runs before the program; the token is written
# only after the program returned without an exception.

_CHILD = r"""
import sys


def _jaxrlvr_guard(root):
    import builtins
    import io
    import os
    import posix
    import shutil
    import subprocess

    import _posixsubprocess

    root = os.path.realpath(root)

    def deny(name):
        def denied(*args, **kwargs):
            raise PermissionError(f"{name} is disabled by the jaxrlvr code-execution harness")
        return denied

    def inside(path):
        if isinstance(path, int):
            return False
        try:
            p = os.path.realpath(os.fsdecode(os.fspath(path)))
        except Exception:
            return False
        return p == root or p.startswith(root + os.sep)

    def confine(name, fn, npaths):
        def confined(*args, **kwargs):
            if any(k.endswith("dir_fd") and v is not None for k, v in kwargs.items()):
                raise PermissionError(f"{name} with dir_fd is disabled by the jaxrlvr code-execution harness")
            paths = list(args[:npaths]) + [kwargs[k] for k in ("path", "src", "dst", "name") if k in kwargs]
            if not all(inside(p) for p in paths):
                raise PermissionError(f"{name} outside the working directory is disabled by the harness")
            return fn(*args, **kwargs)
        return confined

    write_flags = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND

    def confine_os_open(fn):
        def guarded_open(path, flags, *args, **kwargs):
            if flags & write_flags and not inside(path):
                raise PermissionError("writing outside the working directory is disabled by the harness")
            return fn(path, flags, *args, **kwargs)
        return guarded_open

    def confine_open(fn):
        def guarded_open(file, mode="r", *args, **kwargs):
            if isinstance(mode, str) and any(c in mode for c in "wax+") and not inside(file):
                raise PermissionError("writing outside the working directory is disabled by the harness")
            return fn(file, mode, *args, **kwargs)
        return guarded_open

    denied_os = (
        "system", "popen", "fork", "forkpty", "execl", "execle", "execlp", "execlpe", "execv", "execve",
        "execvp", "execvpe", "spawnl", "spawnle", "spawnlp", "spawnlpe", "spawnv", "spawnve", "spawnvp",
        "spawnvpe", "posix_spawn", "posix_spawnp", "kill", "killpg", "setsid", "setpgid", "setpgrp",
        "setuid", "setgid", "seteuid", "setegid", "setreuid", "setregid", "setresuid", "setresgid",
        "chroot", "chdir", "fchdir", "chmod", "fchmod", "lchmod", "chown", "fchown", "lchown", "lchflags",
        "chflags", "pidfd_open",
    )
    confined_os = {"remove": 1, "unlink": 1, "rmdir": 1, "removedirs": 1, "rename": 2, "renames": 2,
                   "replace": 2, "truncate": 1}
    for module in (os, posix):
        for name in denied_os:
            if hasattr(module, name):
                setattr(module, name, deny(f"os.{name}"))
        for name, npaths in confined_os.items():
            if hasattr(module, name):
                setattr(module, name, confine(f"os.{name}", getattr(module, name), npaths))
        module.open = confine_os_open(module.open)
    builtins.open = io.open = confine_open(io.open)
    for name in ("rmtree", "move", "chown"):
        setattr(shutil, name, deny(f"shutil.{name}"))
    for name in ("Popen", "run", "call", "check_call", "check_output", "getoutput", "getstatusoutput"):
        setattr(subprocess, name, deny(f"subprocess.{name}"))
    for module, name in ((_posixsubprocess, "fork_exec"), (subprocess, "_fork_exec")):
        if hasattr(module, name):
            setattr(module, name, deny("fork_exec"))
    builtins.help = deny("help")
    for name in ("ctypes", "_ctypes", "cffi", "_posixsubprocess"):
        sys.modules[name] = None


def _jaxrlvr_main():
    import builtins
    import os
    import resource
    import traceback

    header = sys.stdin.readline().split()
    token, mem_bytes, cpu_s, fsize = header[0], int(header[1]), int(header[2]), int(header[3])
    fd = os.open(os.devnull, os.O_RDONLY)
    os.dup2(fd, 0)
    os.close(fd)

    def limit(res, soft, hard):
        cur_soft, cur_hard = resource.getrlimit(res)
        if cur_hard != resource.RLIM_INFINITY:
            soft, hard = min(soft, cur_hard), min(hard, cur_hard)
        try:
            resource.setrlimit(res, (soft, hard))
        except (ValueError, OSError):
            pass

    if mem_bytes > 0:
        limit(resource.RLIMIT_AS, mem_bytes, mem_bytes)
    limit(resource.RLIMIT_CPU, cpu_s, cpu_s + 1)
    limit(resource.RLIMIT_FSIZE, fsize, fsize)
    limit(resource.RLIMIT_CORE, 0, 0)
    limit(resource.RLIMIT_NPROC, 0, 0)

    write, exit_, out = os.write, os._exit, os.dup(1)
    try:
        with open("program.py", encoding="utf-8") as f:
            source = f.read()
        code = compile(source, "program.py", "exec")
        _jaxrlvr_guard(os.getcwd())
        exec(code, {"__name__": "__humaneval__", "__builtins__": builtins})
    except BaseException:
        try:
            traceback.print_exc()
            sys.stderr.flush()
        except BaseException:
            pass
        exit_(1)
    try:
        sys.stdout.flush()
    except BaseException:
        pass
    write(out, ("\n" + token + "\n").encode())
    exit_(0)


_jaxrlvr_main()
"""


@dataclasses.dataclass(frozen=True)
class ExecutionResult:
    """Outcome of one program. ``status``: ``passed``, ``failed`` (nonzero exit, exception, signal or no
    success token), ``timeout`` (killed at the wall-clock limit) or ``error`` (the harness itself failed)."""

    passed: bool
    status: str
    returncode: int | None
    stdout: str
    stderr: str
    wall_s: float


def _child_env(workdir: str) -> dict[str, str]:
    return {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "HOME": workdir,
        "TMPDIR": workdir,
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
        "OMP_NUM_THREADS": "1",
        "OPENBLAS_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
    }


def _wait_without_reaping(proc: subprocess.Popen, deadline: float) -> bool:
    """Waits until the child exits or ``deadline``; True if it exited. The child stays a zombie (not reaped),
    so its pid and process group id cannot be reused before we kill the group. (Without ``os.waitid``, as
    on macOS, the child is reaped first; the group is still killed, with a tiny chance of pid reuse.)"""
    if not hasattr(os, "waitid"):
        try:
            proc.wait(timeout=max(0.0, deadline - time.monotonic()))
            return True
        except subprocess.TimeoutExpired:
            return False
    pid = proc.pid
    delay = 0.001
    while True:
        try:
            info = os.waitid(os.P_PID, pid, os.WEXITED | os.WNOWAIT | os.WNOHANG)
        except ChildProcessError:
            return True
        if info is not None:
            return True
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return False
        time.sleep(min(delay, remaining))
        delay = min(delay * 2, 0.02)


def _kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _read_output(path: pathlib.Path, token: str | None, limit: int) -> tuple[str, bool]:
    """(text truncated to ``limit`` characters with the token removed, whether the token was found)."""
    try:
        data = path.read_bytes()
    except OSError:
        return "", False
    found = False
    if token is not None:
        marker = ("\n" + token + "\n").encode()
        found = marker in data
        data = data.replace(marker, b"")
    text = data.decode("utf-8", errors="replace")
    if len(text) > limit:
        text = text[:limit] + f"\n[... {len(text) - limit} characters truncated]"
    return text, found


def run_program(
    source: str,
    *,
    timeout_s: float = 3.0,
    memory_mb: int = 1024,
    max_output_chars: int = 2000,
    python: str | None = None,
) -> ExecutionResult:
    """Runs one Python program in a fresh subprocess and temporary directory (see the module docstring).

    Passed means: the program ran to its end without an exception, the harness wrote its secret token
    afterwards, and the process exited with status 0, all within ``timeout_s`` seconds of wall-clock time.
    ``memory_mb`` bounds the address space (0 disables the limit).
    """
    if timeout_s <= 0:
        raise ValueError(f"timeout_s must be positive, got {timeout_s}")
    token = secrets.token_hex(16)
    cpu_s = max(1, math.ceil(timeout_s))
    header = f"{token} {int(memory_mb) << 20} {cpu_s} {_FILE_SIZE_LIMIT}\n".encode()
    start = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="jaxrlvr-exec-", ignore_cleanup_errors=True) as workdir:
        wd = pathlib.Path(workdir)
        (wd / "program.py").write_text(source, encoding="utf-8")
        out_path, err_path = wd / "stdout.txt", wd / "stderr.txt"
        with open(out_path, "wb") as out, open(err_path, "wb") as err:
            proc = subprocess.Popen(
                [python or sys.executable, "-I", "-B", "-c", _CHILD],
                cwd=workdir,
                env=_child_env(workdir),
                stdin=subprocess.PIPE,
                stdout=out,
                stderr=err,
                start_new_session=True,
                close_fds=True,
            )
        try:
            try:
                proc.stdin.write(header)
                proc.stdin.close()
            except OSError:  # the child died before reading its header
                pass
            exited = _wait_without_reaping(proc, start + timeout_s)
        finally:
            _kill_group(proc.pid)
            proc.wait()
        wall_s = time.monotonic() - start
        stdout, found = _read_output(out_path, token, max_output_chars)
        stderr, _ = _read_output(err_path, None, max_output_chars)
    if not exited:
        status = "timeout"
    elif proc.returncode == 0 and found:
        status = "passed"
    else:
        status = "failed"
    return ExecutionResult(status == "passed", status, proc.returncode, stdout, stderr, wall_s)


def _run_safely(source: str, kwargs: dict) -> ExecutionResult:
    try:
        return run_program(source, **kwargs)
    except Exception as e:  # noqa: BLE001 - one bad program must not stop the evaluation
        logger.warning("code execution harness error: %r", e)
        return ExecutionResult(False, "error", None, "", repr(e), 0.0)


def execute_programs(
    sources: Sequence[str],
    *,
    timeout_s: float = 3.0,
    workers: int = 2,
    memory_mb: int = 1024,
    max_output_chars: int = 2000,
    python: str | None = None,
) -> list[ExecutionResult]:
    """Runs many programs, ``workers`` at a time (threads that each manage one subprocess); results are in
    input order, and an exception in the harness for one program becomes an ``error`` result."""
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    kwargs = dict(timeout_s=timeout_s, memory_mb=memory_mb, max_output_chars=max_output_chars, python=python)
    if workers == 1 or len(sources) <= 1:
        return [_run_safely(s, kwargs) for s in sources]
    with concurrent.futures.ThreadPoolExecutor(max_workers=workers, thread_name_prefix="humaneval") as pool:
        return list(pool.map(lambda s: _run_safely(s, kwargs), sources))


def check_programs(
    problems: Sequence[Mapping[str, Any]],
    completions: Sequence[str],
    *,
    timeout_s: float = 3.0,
    workers: int = 2,
    memory_mb: int = 1024,
) -> list[bool]:
    """Whether each ``prompt + completion`` passes its problem's tests (see :func:`run_program`)."""
    return [
        r.passed
        for r in check_programs_detailed(
            problems, completions, timeout_s=timeout_s, workers=workers, memory_mb=memory_mb
        )
    ]


def check_programs_detailed(
    problems: Sequence[Mapping[str, Any]],
    completions: Sequence[str],
    *,
    timeout_s: float = 3.0,
    workers: int = 2,
    memory_mb: int = 1024,
) -> list[ExecutionResult]:
    """:func:`check_programs` with the full :class:`ExecutionResult` of each program."""
    if len(problems) != len(completions):
        raise ValueError(f"{len(problems)} problems but {len(completions)} completions")
    for i, p in enumerate(problems):
        _validate_problem(p, f"problems[{i}]")
    sources = [build_program(p, c) for p, c in zip(problems, completions, strict=True)]
    return execute_programs(sources, timeout_s=timeout_s, workers=workers, memory_mb=memory_mb)


def score_code(
    problem: Mapping[str, Any],
    response: str,
    *,
    style: str = "chat",
    timeout_s: float = 3.0,
    memory_mb: int = 1024,
) -> bool:
    """Per-sample HumanEval score: extract the code from ``response`` and run the tests."""
    return score_code_batch([problem], [response], style=style, timeout_s=timeout_s, workers=1, memory_mb=memory_mb)[0]


def score_code_batch(
    problems: Sequence[Mapping[str, Any]],
    responses: Sequence[str],
    *,
    style: str = "chat",
    timeout_s: float = 3.0,
    workers: int = 2,
    memory_mb: int = 1024,
) -> list[bool]:
    """:func:`score_code` for many (problem, response) pairs, run in parallel."""
    if len(problems) != len(responses):
        raise ValueError(f"{len(problems)} problems but {len(responses)} responses")
    completions = [extract_completion(p, r, style=style) for p, r in zip(problems, responses, strict=True)]
    return check_programs(problems, completions, timeout_s=timeout_s, workers=workers, memory_mb=memory_mb)
