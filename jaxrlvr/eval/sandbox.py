"""Running model-written Python functions against trusted tests, with a verdict the program cannot forge.

Three processes per run (see ``docs/ood_eval.md`` for the threat model):

- the **caller** (this module, in the evaluation process) starts a checker and waits for its verdict, with a
  hard wall-clock backstop after which it kills the checker's process group;
- the **checker** (``python -I -S``, trusted code only) starts the candidate, then runs the problem's
  trusted setup code (the HumanEval prompt, for helpers such as ``poly``) and test code (``check``) with
  ``candidate`` bound to a proxy. Each call of the proxy sends the arguments to the candidate (pickled) and
  receives the result back as a pickle that may only hold plain values (``None``, ``bool``, ``int``,
  ``float``, ``complex``, ``str``, ``bytes``, ``bytearray``, ``list``, ``tuple``, ``dict``, ``set``,
  ``frozenset``): no object of the program's own, so no ``__eq__`` that always answers True, ever reaches
  the test. The checker is a child subreaper: when the run ends it kills the candidate's process group and
  then every process that was re-parented to it (a ``setsid`` double-fork daemon included);
- the **candidate** (``python -I -S -B``, site-packages on ``sys.path``) runs the untrusted program
  (prompt + completion; never the test) and then serves calls of its entry point. Its exit status and its
  output mean nothing to the verdict.

Isolation of the candidate, chosen once per interpreter at first use (:func:`isolation_mode`):

- ``"namespace"``: the candidate starts under ``unshare`` in new user (when possible), mount, PID and network
  namespaces. Before the program runs it makes every mount read-only (``mount_setattr`` recursive), mounts a
  private ``tmpfs`` on ``/tmp`` (its working directory) and empty read-only ones on ``/run`` and ``/var/run``,
  sets ``no_new_privs`` and drops every capability; it is PID 1 of its namespace, so every process it starts
  dies with it, and it has only a loopback interface that is down (no network at all). Detected by running a
  probe program that must fail to write ``/``, fail to connect to 127.0.0.1, hold no capability and be
  PID 1 (kernels before 5.12 remount each mount point read-only instead of ``mount_setattr``).
- ``"guard"`` (fallback, when ``unshare`` is missing, not permitted or the probe fails): the in-process
  guard in ``_sandbox_candidate.py`` plus resource limits. It stops accidents and naive code only; a run as
  root in this mode logs a warning.

In both modes, before the program runs: Landlock (Linux >= 5.13, unprivileged; :func:`landlock_abi`) limits
what the candidate can read to the interpreter's standard library, its site-packages without this project's
entries and the system's shared libraries (:func:`candidate_view`; the package with the benchmarks' answer
keys, its checkout, ``$JAXRLVR_DATA``, ``/etc`` and ``/proc`` are out of reach), and what it can write to its
working directory; from ABI 4 it refuses TCP, from ABI 6 signals to processes outside the sandbox (the
evaluator). In namespace mode the package folder is also covered by an empty ``tmpfs``; in guard mode as
root the program runs as ``nobody`` when the interpreter's files are readable by others. The candidate
script runs from a private copy in its temporary folder; a killed evaluation's folders are removed by the
next one. Then: resource limits (address space, CPU time, file size, no core files, ``RLIMIT_NPROC = 0``
which binds non-root users and the namespace mode), a minimal environment, stdin from ``/dev/null``, and the
guard (defence in depth). The verdict does not depend on isolation: the checker and the test code live in
another process in both modes.
"""

from __future__ import annotations

import ast
import dataclasses
import logging
import marshal
import os
import pathlib
import secrets
import shutil
import signal
import site
import subprocess
import sys
import tempfile
import threading
import time

logger = logging.getLogger(__name__)

ISOLATIONS = ("auto", "namespace", "guard")
_FILE_SIZE_LIMIT = 16 << 20  # RLIMIT_FSIZE in the candidate: stdout/stderr files and anything it writes
# Seconds the caller waits beyond ``timeout_s`` before killing the checker itself (our choice: the checker
# enforces ``timeout_s`` on the candidate; this only covers a checker that is stuck).
_BACKSTOP_S = 5.0

# The two child programs (standard library only, run by path with ``-I``).
_CANDIDATE = str(pathlib.Path(__file__).with_name("_sandbox_candidate.py"))
_CHECKER = str(pathlib.Path(__file__).with_name("_sandbox_checker.py"))

# ----------------------------------------------------------------------------------------------------------
# The caller


@dataclasses.dataclass(frozen=True)
class ExecutionResult:
    """Outcome of one run. ``status``: ``passed``, ``failed`` (the program raised while loading, a test
    failed, a call raised or returned something that is not a plain value, the program exited), ``timeout``
    (the wall-clock limit) or ``error`` (the harness itself failed). ``detail``: the checker's reason;
    ``isolation``: ``"namespace"`` or ``"guard"``; ``returncode``: the checker's exit status (the program's
    own means nothing); ``stdout`` / ``stderr``: the program's prints and tracebacks, and the checker's."""

    passed: bool
    status: str
    returncode: int | None
    stdout: str
    stderr: str
    wall_s: float
    detail: str = ""
    isolation: str = ""


def _child_env(home: str) -> dict[str, str]:
    return {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "HOME": home,
        "TMPDIR": home,
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
        "OMP_NUM_THREADS": "1",
        "OPENBLAS_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
    }


def _site_packages(python: str) -> list[str]:
    """The site-packages folders of ``python`` (the candidate starts with ``-S``: site's start-up, with
    every ``.pth`` hook of the environment, costs more than the rest of a HumanEval run)."""
    if python != sys.executable:
        if python not in _SITE_CACHE:
            out = subprocess.run(
                [python, "-I", "-c", "import site, sys; print(repr(site.getsitepackages()))"],
                capture_output=True,
                text=True,
                timeout=60,
            )
            _SITE_CACHE[python] = ast.literal_eval(out.stdout.strip() or "[]")
        return _SITE_CACHE[python]
    return [p for p in site.getsitepackages() if os.path.isdir(p)]


_SITE_CACHE: dict[str, list[str]] = {}

# What the candidate must not read: this package (the benchmarks' files, e.g. eval/data/humaneval.jsonl, and
# the project's code) and, for a checkout, the repository around it; site-packages entries that point at them.
_PACKAGE_DIR = pathlib.Path(__file__).resolve().parents[1]
_HIDDEN_NAMES = ("jaxrlvr", "__editable__", "_jaxrlvr")
# System folders holding the shared libraries that extension modules (numpy, ...) load.
_SYSTEM_LIB_DIRS = ("/lib", "/lib32", "/lib64", "/usr/lib", "/usr/lib32", "/usr/lib64")
_SYSTEM_FILES = ("/etc/ld.so.cache", "/dev/null", "/dev/zero", "/dev/urandom", "/dev/random")
_NOBODY = 65534


def hidden_paths() -> list[str]:
    """Folders hidden from candidate programs: the ``jaxrlvr`` package, its checkout (a folder with
    ``pyproject.toml`` above it) and the data folder named by ``$JAXRLVR_DATA``."""
    out = [str(_PACKAGE_DIR)]
    if (_PACKAGE_DIR.parent / "pyproject.toml").is_file():
        out.append(str(_PACKAGE_DIR.parent))
    if os.environ.get("JAXRLVR_DATA"):
        out.append(os.path.realpath(os.environ["JAXRLVR_DATA"]))
    return out


def _grants(root: str, hidden: list[str], out: dict, descend: tuple[str, ...] = ()) -> None:
    """Landlock grants that give read access below ``root`` except to ``hidden`` paths and site-packages
    entries named after this project: a folder holding something hidden (or one of the ``descend`` folders,
    site-packages, whose entries are checked by name) is only listable, its other entries readable
    (recursively)."""
    root = os.path.realpath(root)
    name = os.path.basename(root)
    if any(root == h for h in hidden) or name.startswith(_HIDDEN_NAMES) or name.endswith(".pth"):
        return
    inner = any(h.startswith(root + os.sep) for h in (*hidden, *descend))
    try:
        entries = list(os.scandir(root)) if os.path.isdir(root) else None
    except OSError:
        return
    if entries is not None and not inner:
        inner = any(e.name.startswith(_HIDDEN_NAMES) or e.name.endswith(".pth") for e in entries)
    if entries is None:
        out["files"].append(root)
    elif not inner:
        out["read"].append(root)
    else:
        out["list"].append(root)
        for e in entries:
            _grants(e.path, hidden, out, descend)


def candidate_view(python: str) -> dict[str, list[str]]:
    """What a candidate program may read (``read``: folders, ``list``: folders it may only list, ``files``):
    ``python``'s standard library and site-packages and the system's shared libraries, without the
    :func:`hidden_paths` and the site-packages entries of this project (editable-install finders and
    ``.pth`` files included). Cached per interpreter."""
    if python not in _VIEW_CACHE:
        out = subprocess.run(
            [python, "-I", "-S", "-c", "import sys; print(repr(sys.path))"], capture_output=True, text=True, timeout=60
        )
        roots = [p for p in ast.literal_eval(out.stdout.strip() or "[]") if os.path.exists(p)]
        roots += _site_packages(python) + [p for p in _SYSTEM_LIB_DIRS if os.path.isdir(p)]
        view: dict[str, list[str]] = {"read": [], "list": [], "files": []}
        site = tuple(os.path.realpath(p) for p in _site_packages(python))
        for root in dict.fromkeys(roots):
            _grants(root, hidden_paths(), view, site)
        view["files"] += [p for p in _SYSTEM_FILES if os.path.exists(p)]
        _VIEW_CACHE[python] = view
    return _VIEW_CACHE[python]


_VIEW_CACHE: dict[str, dict[str, list[str]]] = {}
_CLEANED = False


def _proc_start(pid: int) -> str | None:
    from jaxrlvr.runs_lock import _proc_start as start

    return start(pid)


def _clean_stale_workdirs() -> None:
    """Removes (once per process) the ``jaxrlvr-exec-*`` temporary folders of evaluations that were killed:
    those whose ``.owner`` (pid and start time of the process that made it) is no longer running."""
    global _CLEANED
    if _CLEANED:
        return
    _CLEANED = True
    for d in pathlib.Path(tempfile.gettempdir()).glob("jaxrlvr-exec-*"):
        try:
            pid, start = (d / ".owner").read_text().split()
        except (OSError, ValueError):
            continue  # a folder of an older version or one being created: left alone
        if _proc_start(int(pid)) != start:
            shutil.rmtree(d, ignore_errors=True)


def landlock_abi() -> int:
    """The Landlock ABI version of this kernel (0: not available). From 1 the candidate's file view is
    restricted by the kernel in both modes; from 4 also TCP; from 6 also signals to processes outside it."""
    if _ABI[0] is None:
        _ABI[0] = 0
        if sys.platform.startswith("linux"):
            import ctypes

            libc = ctypes.CDLL(None, use_errno=True)
            libc.syscall.restype = ctypes.c_long
            _ABI[0] = max(0, int(libc.syscall(444, None, ctypes.c_size_t(0), ctypes.c_uint32(1))))
    return _ABI[0]


_ABI: list = [None]


def _readable_by_others(paths: list[str]) -> bool:
    """Whether an unprivileged user can reach (every folder above) and read each of ``paths``."""
    import stat

    for p in paths:
        q = pathlib.Path(p)
        for d in (q, *q.parents):
            try:
                mode = os.stat(d).st_mode
            except OSError:
                return False
            if not mode & stat.S_IXOTH or (d == q and not mode & stat.S_IROTH):
                return False
    return True


def _read_output(path: pathlib.Path, limit: int) -> str:
    try:
        data = path.read_bytes()
    except OSError:
        return ""
    text = data.decode("utf-8", errors="replace")
    if len(text) > limit:
        text = text[:limit] + f"\n[... {len(text) - limit} characters truncated]"
    return text


_NAMESPACE_PREFIXES = (
    ("unshare", "--user", "--map-root-user", "--net", "--pid", "--fork", "--mount-proc", "--kill-child", "--"),
    ("unshare", "--net", "--pid", "--fork", "--mount-proc", "--kill-child", "--"),  # root without user ns
)
_PROBE = """
import errno, os, socket, sys
why = []
if os.getpid() != 1:
    why.append(f"pid {os.getpid()}, not 1")
try:
    fd = os.open("/@NAME@", os.O_WRONLY | os.O_CREAT, 0o600)
    os.close(fd)
    os.unlink("/@NAME@")
    why.append("could write /")
except OSError as e:
    if e.errno not in (errno.EROFS, errno.EACCES, errno.EPERM):
        why.append(f"writing / failed with {e}")
s = socket.socket()
try:
    s.settimeout(1.0)
    s.connect(("127.0.0.1", 9))
    why.append("could connect to 127.0.0.1")
except OSError as e:
    if e.errno not in (errno.ENETUNREACH, errno.EADDRNOTAVAIL):
        why.append(f"127.0.0.1 answered ({e})")
with open("/proc/self/status") as f:
    caps = [ln for ln in f if ln.startswith("CapEff:")]
if not caps or int(caps[0].split()[1], 16) != 0:
    why.append(f"capabilities left: {caps}")
print("ISOLATED" if not why else "NOT ISOLATED: " + "; ".join(why))
"""

_MODE_CACHE: dict[str, tuple[str, tuple[str, ...], str]] = {}
_MODE_LOCK = threading.Lock()
_WARNED_ROOT = False


def _probe(prefix: tuple[str, ...], python: str, remount_each: bool = False) -> str:
    """'' when ``prefix`` isolates a trivial program as promised, else why not. ``remount_each`` takes the
    path of kernels without ``mount_setattr`` (remounting every mount point read-only one by one)."""
    if shutil.which(prefix[0]) is None:
        return f"{prefix[0]} not found"
    name = "jaxrlvr-isolation-probe-" + secrets.token_hex(8)
    try:
        r = _run(
            _PROBE.replace("@NAME@", name),
            "",
            "",
            None,
            timeout_s=10.0,
            memory_mb=0,
            max_output_chars=2000,
            python=python,
            mode=("namespace", prefix),
            guard=False,
            remount_each=remount_each,
        )
    finally:
        if os.path.exists("/" + name):  # pragma: no cover - only when isolation is broken
            os.unlink("/" + name)
    if r.passed and r.stdout.strip() == "ISOLATED":
        return ""
    return (r.stdout.strip() or r.detail or r.stderr.strip()[-300:] or r.status)[:300]


def isolation_mode(python: str | None = None) -> str:
    """``"namespace"`` when this machine can run programs in namespaces (probed once per interpreter, by
    running a probe program), else ``"guard"``."""
    return _resolve("auto", python or sys.executable)[0]


def _resolve(isolation: str, python: str) -> tuple[str, tuple[str, ...]]:
    global _WARNED_ROOT
    if isolation not in ISOLATIONS:
        raise ValueError(f"isolation must be one of {ISOLATIONS}, got {isolation!r}")
    if isolation == "guard":
        mode: tuple[str, tuple[str, ...]] = ("guard", ())
    else:
        with _MODE_LOCK:
            if python not in _MODE_CACHE:
                reasons = []
                found = None
                if sys.platform.startswith("linux"):
                    for prefix in _NAMESPACE_PREFIXES:
                        why = _probe(prefix, python)
                        if not why:
                            found = prefix
                            break
                        reasons.append(f"{' '.join(prefix[:-1])}: {why}")
                else:
                    reasons.append("namespaces need Linux")
                _MODE_CACHE[python] = ("namespace", found, "") if found else ("guard", (), "; ".join(reasons))
                if found is None:
                    logger.info("code execution: no namespace isolation (%s); using the guard", reasons)
            name, prefix, why = _MODE_CACHE[python]
        if isolation == "namespace" and name != "namespace":
            raise RuntimeError(f"isolation='namespace' is not available here: {why}")
        mode = (name, prefix)
    weak = landlock_abi() < 6  # no kernel restriction of files, network and signals in guard mode
    if mode[0] == "guard" and weak and hasattr(os, "geteuid") and os.geteuid() == 0 and not _WARNED_ROOT:
        _WARNED_ROOT = True
        logger.warning(
            "running model-written code as root without operating-system isolation (no usable `unshare`, "
            "no Landlock >= 6): the in-process guard stops accidents only; see docs/ood_eval.md"
        )
    return mode


def _run(
    program: str,
    setup: str,
    test: str,
    entry_point: str | None,
    *,
    timeout_s: float,
    memory_mb: int,
    max_output_chars: int,
    python: str,
    mode: tuple[str, tuple[str, ...]],
    guard: bool = True,
    remount_each: bool = False,
) -> ExecutionResult:
    isolate = mode[0] == "namespace"
    start = time.monotonic()
    _clean_stale_workdirs()
    with tempfile.TemporaryDirectory(prefix="jaxrlvr-exec-", ignore_cleanup_errors=True) as workdir:
        wd = pathlib.Path(workdir)
        out_path, err_path = wd / "stdout.txt", wd / "stderr.txt"
        out_path.touch()
        (wd / ".owner").write_text(f"{os.getpid()} {_proc_start(os.getpid())}\n")
        # the candidate runs from a private copy: nothing in its argv or files points at the package
        candidate = shutil.copy(_CANDIDATE, wd / "candidate.py")
        home = "/tmp" if isolate else workdir
        view = candidate_view(python) if guard else None
        uid = None
        if guard and not isolate and hasattr(os, "geteuid") and os.geteuid() == 0:
            if view is not None and _readable_by_others(view["read"][:50]):
                uid = _NOBODY  # guard mode as root: the program runs as nobody (cannot signal root's processes)
                os.chown(wd, _NOBODY, _NOBODY)
        cfg = {
            "argv": [*mode[1], python, "-I", "-S", "-B", str(candidate)],
            "cwd": workdir,
            "env": _child_env(home),
            "stdout_path": str(out_path),
            "timeout_s": float(timeout_s),
            "setup": setup,
            "test": test,
            "entry_point": entry_point,
            "parent_pid": os.getpid(),
            "max_frame": 64 << 20,
        }
        header = {
            "source": program,
            "entry_point": entry_point,
            "mem": int(memory_mb) << 20,
            "cpu": max(1, int(timeout_s + 0.999)),
            "fsize": _FILE_SIZE_LIMIT,
            "isolate": isolate,
            "guard": guard,
            "remount_each": remount_each,
            "sys_path": [
                os.path.realpath(p)
                for p in _site_packages(python)
                if view is None or os.path.realpath(p) in view["read"] + view["list"]
            ],
            # over-mounted in namespace mode: the package and the data (a checkout may hold the virtualenv)
            "hide": [p for p in hidden_paths() if p != str(_PACKAGE_DIR.parent)] if isolate and guard else [],
            "view": view,
            "uid": uid,
        }
        cfg["candidate_header"] = header  # the checker sends it as the first frame, with the stdout fd
        with open(err_path, "ab") as err:
            checker = subprocess.Popen(
                [sys.executable, "-I", "-S", "-B", _CHECKER],
                cwd=workdir,
                env=_child_env(workdir),
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=err,
                start_new_session=True,
                close_fds=True,
            )
        try:
            out, _ = checker.communicate(marshal.dumps(cfg), timeout=timeout_s + _BACKSTOP_S)
        except subprocess.TimeoutExpired:
            out = b""
        finally:
            try:
                os.killpg(checker.pid, signal.SIGKILL)
            except OSError:
                pass
            checker.kill()
            checker.wait()
        wall_s = time.monotonic() - start
        stdout = _read_output(out_path, max_output_chars)
        stderr = _read_output(err_path, max_output_chars)
    try:
        verdict = marshal.loads(out)
        status, detail = verdict["status"], verdict["detail"]
    except (ValueError, EOFError, TypeError, KeyError):
        status, detail = ("timeout", "the checker did not answer in time") if not out else ("error", repr(out[:200]))
    return ExecutionResult(status == "passed", status, checker.returncode, stdout, stderr, wall_s, detail, mode[0])
