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
- the **candidate** (``python -I -B``) runs the untrusted program (prompt + completion; never the test) and
  then serves calls of its entry point. Its exit status and its output mean nothing to the verdict.

Isolation of the candidate, chosen once per interpreter at first use (:func:`isolation_mode`):

- ``"namespace"``: the candidate starts under ``unshare`` in new user (when possible), mount, PID and network
  namespaces. Before the program runs it makes every mount read-only (``mount_setattr`` recursive), mounts a
  private ``tmpfs`` on ``/tmp`` (its working directory) and empty read-only ones on ``/run`` and ``/var/run``,
  sets ``no_new_privs`` and drops every capability; it is PID 1 of its namespace, so every process it starts
  dies with it, and it has only a loopback interface that is down (no network at all). Detected by running a
  probe program that must fail to write ``/``, fail to connect to 127.0.0.1 and be PID 1.
- ``"guard"`` (fallback, when ``unshare`` is missing or not permitted): the in-process guard below plus
  resource limits. It stops accidents and naive code only; a run as root in this mode logs a warning.

In both modes: resource limits (address space, CPU time, file size, no core files, ``RLIMIT_NPROC = 0``
which binds non-root users and the namespace mode), a minimal environment, stdin from ``/dev/null``, and the
guard (defence in depth). The guard's verdict-independence does not depend on isolation: the checker and
the test code live in another process in both modes.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import pathlib
import secrets
import shutil
import signal
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

# ----------------------------------------------------------------------------------------------------------
# The candidate: runs the untrusted program, then serves calls of the entry point over its stdin/stdout.
# Frames: 4-byte big-endian length + payload; candidate -> checker payloads start with a tag byte:
# K ready, L the program raised while loading, X the harness failed (isolation), R result pickle, E exception.

_CANDIDATE = r"""
import sys


def _jaxrlvr_isolate():
    import ctypes
    import os
    import struct

    libc = ctypes.CDLL(None, use_errno=True)

    def check(ret, what):
        if ret != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"{what}: {os.strerror(err)}")

    ms_rdonly, ms_nosuid, ms_nodev, ms_noexec, ms_rec, ms_private = 1, 2, 4, 8, 1 << 14, 1 << 18
    check(libc.mount(None, b"/", None, ms_rec | ms_private, None), "mount --make-rprivate /")
    attr = struct.pack("QQQQ", 1, 0, 0, 0)  # struct mount_attr {attr_set = MOUNT_ATTR_RDONLY, ...}
    check(libc.syscall(442, -100, b"/", 0x8000, attr, len(attr)), "mount_setattr(/, AT_RECURSIVE, RDONLY)")
    check(libc.mount(b"tmpfs", b"/tmp", b"tmpfs", ms_nosuid | ms_nodev, b"size=64m,mode=1777"), "tmpfs /tmp")
    for path in ("/run", "/var/run"):
        if os.path.isdir(path) and not os.path.islink(path):
            flags = ms_rdonly | ms_nosuid | ms_nodev | ms_noexec
            check(libc.mount(b"tmpfs", path.encode(), b"tmpfs", flags, b"size=4k"), f"tmpfs {path}")
    os.chdir("/tmp")
    check(libc.prctl(38, 1, 0, 0, 0), "PR_SET_NO_NEW_PRIVS")
    cap = 0
    while libc.prctl(24, cap, 0, 0, 0) == 0:  # PR_CAPBSET_DROP every capability
        cap += 1
    libc.prctl(47, 4, 0, 0, 0)  # PR_CAP_AMBIENT_CLEAR_ALL
    check(libc.capset(struct.pack("Ii", 0x20080522, 0), bytes(24)), "capset(0)")
    libc.prctl(1, 9, 0, 0, 0)  # PR_SET_PDEATHSIG SIGKILL: die with unshare


def _jaxrlvr_guard(root):
    import builtins
    import io
    import os
    import posix
    import shutil
    import subprocess

    import _io
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

    def writes(mode):
        return isinstance(mode, str) and any(c in mode for c in "wax+")

    def confine_open(fn):
        def guarded_open(file, mode="r", *args, **kwargs):
            if writes(mode) and not inside(file):
                raise PermissionError("writing outside the working directory is disabled by the harness")
            return fn(file, mode, *args, **kwargs)
        return guarded_open

    class FileIO(_io.FileIO):
        def __init__(self, file, mode="r", *args, **kwargs):
            if writes(mode) and not inside(file):
                raise PermissionError("writing outside the working directory is disabled by the harness")
            super().__init__(file, mode, *args, **kwargs)

    denied_os = (
        "system", "popen", "fork", "forkpty", "execl", "execle", "execlp", "execlpe", "execv", "execve",
        "execvp", "execvpe", "spawnl", "spawnle", "spawnlp", "spawnlpe", "spawnv", "spawnve", "spawnvp",
        "spawnvpe", "posix_spawn", "posix_spawnp", "kill", "killpg", "setsid", "setpgid", "setpgrp",
        "setuid", "setgid", "seteuid", "setegid", "setreuid", "setregid", "setresuid", "setresgid",
        "chroot", "chdir", "fchdir", "chmod", "fchmod", "lchmod", "chown", "fchown", "lchown", "lchflags",
        "chflags", "pidfd_open",
    )
    confined_os = {"remove": 1, "unlink": 1, "rmdir": 1, "removedirs": 1, "rename": 2, "renames": 2,
                   "replace": 2, "truncate": 1, "mkdir": 1, "makedirs": 1, "link": 2, "symlink": 2,
                   "mkfifo": 1, "mknod": 1}
    for module in (os, posix):
        for name in denied_os:
            if hasattr(module, name):
                setattr(module, name, deny(f"os.{name}"))
        for name, npaths in confined_os.items():
            if hasattr(module, name):
                setattr(module, name, confine(f"os.{name}", getattr(module, name), npaths))
        module.open = confine_os_open(module.open)
    builtins.open = io.open = _io.open = confine_open(io.open)
    io.FileIO = _io.FileIO = FileIO
    for name in ("rmtree", "move", "chown"):
        setattr(shutil, name, deny(f"shutil.{name}"))
    for name in ("Popen", "run", "call", "check_call", "check_output", "getoutput", "getstatusoutput"):
        setattr(subprocess, name, deny(f"subprocess.{name}"))
    for module, name in ((_posixsubprocess, "fork_exec"), (subprocess, "_fork_exec")):
        if hasattr(module, name):
            setattr(module, name, deny("fork_exec"))
    builtins.help = deny("help")
    for name in ("ctypes", "_ctypes", "cffi", "_posixsubprocess", "socket", "_socket"):
        sys.modules[name] = None


def _jaxrlvr_main():
    import builtins
    import json
    import os
    import pickle
    import resource
    import struct
    import traceback

    req, resp = os.dup(0), os.dup(1)
    fd = os.open(os.devnull, os.O_RDONLY)
    os.dup2(fd, 0)
    os.close(fd)
    header_struct = struct.Struct(">I")

    def read_exact(n):
        chunks = []
        while n > 0:
            b = os.read(req, n)
            if not b:
                return None
            chunks.append(b)
            n -= len(b)
        return b"".join(chunks)

    def recv():
        h = read_exact(4)
        return None if h is None else read_exact(header_struct.unpack(h)[0])

    def send(tag, payload=b""):
        view = memoryview(header_struct.pack(len(payload) + 1) + tag + payload)
        while view:
            view = view[os.write(resp, view):]

    def flush():
        for f in (sys.stdout, sys.stderr):
            try:
                f.flush()
            except BaseException:
                pass

    header = json.loads(recv())
    os.dup2(header["out_fd"], 1)  # the program's prints go to the stdout file, never to the checker
    os.close(header["out_fd"])
    try:
        if header["isolate"]:
            _jaxrlvr_isolate()
    except BaseException as e:
        send(b"X", f"isolation failed: {e}".encode(errors="replace"))
        os._exit(2)

    def limit(res, soft, hard):
        cur_soft, cur_hard = resource.getrlimit(res)
        if cur_hard != resource.RLIM_INFINITY:
            soft, hard = min(soft, cur_hard), min(hard, cur_hard)
        try:
            resource.setrlimit(res, (soft, hard))
        except (ValueError, OSError):
            pass

    if header["mem"] > 0:
        limit(resource.RLIMIT_AS, header["mem"], header["mem"])
    limit(resource.RLIMIT_CPU, header["cpu"], header["cpu"] + 1)
    limit(resource.RLIMIT_FSIZE, header["fsize"], header["fsize"])
    limit(resource.RLIMIT_CORE, 0, 0)
    limit(resource.RLIMIT_NPROC, 0, 0)

    write_, exit_, dumps, loads = os.write, os._exit, pickle.dumps, pickle.loads
    entry = header["entry_point"]
    try:
        code = compile(header["source"], "program.py", "exec")
        if header["guard"]:
            _jaxrlvr_guard(os.getcwd())
        namespace = {"__name__": "__humaneval__", "__builtins__": builtins}
        exec(code, namespace)
        fn = namespace[entry] if entry else None
    except BaseException:
        try:
            traceback.print_exc()
        except BaseException:
            pass
        flush()
        send(b"L")
        exit_(1)
    flush()
    send(b"K")
    while True:
        msg = recv()
        if msg is None:
            exit_(0)
        try:
            args, kwargs = loads(msg)
            payload = dumps(fn(*args, **kwargs), protocol=4)
        except BaseException as e:
            try:
                traceback.print_exc()
                text = f"{type(e).__name__}: {e}"[:2000]
            except BaseException:
                text = "an exception"
            flush()
            send(b"E", text.encode("utf-8", errors="replace"))
            continue
        flush()
        send(b"R", payload)


_jaxrlvr_main()
"""

# ----------------------------------------------------------------------------------------------------------
# The checker: trusted code only. Reads its configuration (JSON) on stdin, writes one JSON verdict line on
# stdout: {"status": "passed" | "failed" | "timeout" | "error", "detail": str}.

_CHECKER = r"""
import builtins
import io
import json
import os
import pickle
import select
import signal
import struct
import subprocess
import sys
import time
import traceback

_H = struct.Struct(">I")
_PLAIN_CALLABLES = {("builtins", "complex"): complex, ("builtins", "bytearray"): bytearray,
                    ("builtins", "set"): set, ("builtins", "frozenset"): frozenset}


class Timeout(BaseException):
    pass


class CandidateError(Exception):
    pass


class PlainUnpickler(pickle.Unpickler):
    def find_class(self, module, name):
        fn = _PLAIN_CALLABLES.get((module, name))
        if fn is None:
            raise pickle.UnpicklingError(f"{module}.{name} is not a plain value")
        return fn


def libc():
    if not sys.platform.startswith("linux"):
        return None
    try:
        import ctypes
        return ctypes.CDLL(None, use_errno=True)
    except OSError:
        return None


def children_of(pid):
    out = []
    try:
        names = os.listdir("/proc")
    except OSError:
        return out
    for d in names:
        if d.isdigit():
            try:
                with open(f"/proc/{d}/stat", "rb") as f:
                    fields = f.read().rsplit(b")", 1)[1].split()
                if int(fields[1]) == pid:
                    out.append(int(d))
            except (OSError, ValueError, IndexError):
                pass
    return out


def main():
    cfg = json.loads(sys.stdin.read())
    verdict_fd = os.dup(1)
    os.dup2(2, 1)
    deadline = time.monotonic() + cfg["timeout_s"]
    lib = libc()
    if lib is not None:
        lib.prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG: die with the caller
        if os.getppid() != cfg["parent_pid"]:
            os._exit(3)
        lib.prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER: orphans of the candidate come to us

    def arm_child():
        if lib is not None:
            lib.prctl(1, signal.SIGKILL, 0, 0, 0)

    req_r, req_w = os.pipe()
    resp_r, resp_w = os.pipe()
    out_fd = os.open(cfg["stdout_path"], os.O_WRONLY | os.O_APPEND)
    proc = subprocess.Popen(
        cfg["argv"], stdin=req_r, stdout=resp_w, stderr=2, pass_fds=(out_fd,), cwd=cfg["cwd"], env=cfg["env"],
        start_new_session=True, preexec_fn=arm_child,
    )
    for fd in (req_r, resp_w, out_fd):
        os.close(fd)
    buf = bytearray()

    def send(payload):
        view = memoryview(_H.pack(len(payload)) + payload)
        while view:
            view = view[os.write(req_w, view):]

    def recv():
        while True:
            if len(buf) >= 4:
                n = _H.unpack(buf[:4])[0]
                if len(buf) >= 4 + n:
                    frame = bytes(buf[4:4 + n])
                    del buf[:4 + n]
                    return frame[:1], frame[1:]
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([resp_r], [], [], left)[0]:
                raise Timeout()
            chunk = os.read(resp_r, 1 << 20)
            if not chunk:
                raise CandidateError("the program exited")
            buf.extend(chunk)
            if len(buf) > cfg["max_frame"]:
                raise CandidateError("the program sent more than the frame limit")

    def candidate(*args, **kwargs):
        try:
            send(pickle.dumps((args, kwargs), protocol=4))
        except OSError:
            raise CandidateError("the program exited") from None
        tag, payload = recv()
        if tag == b"R":
            try:
                return PlainUnpickler(io.BytesIO(payload)).load()
            except Exception as e:
                raise CandidateError(f"the program returned something that is not a plain value ({e})") from None
        if tag == b"E":
            raise CandidateError(payload.decode("utf-8", errors="replace"))
        raise CandidateError(f"unexpected reply {tag!r}")

    status, detail = "error", ""
    try:
        send(json.dumps(dict(cfg["candidate_header"], out_fd=out_fd)).encode())
        tag, payload = recv()
        if tag == b"X":
            status, detail = "error", payload.decode("utf-8", errors="replace")
        elif tag != b"K":
            status, detail = "failed", "the program raised while loading"
        elif not cfg["test"]:
            status = "passed"
        else:
            scope = {"__name__": "__jaxrlvr_check__", "__builtins__": builtins}
            exec(compile(cfg["setup"], "prompt", "exec"), scope)
            exec(compile(cfg["test"], "test", "exec"), scope)
            scope[cfg["entry_point"]] = candidate  # some tests call the function by its name
            scope["check"](candidate)
            status = "passed"
    except Timeout:
        status, detail = "timeout", "wall-clock limit"
    except CandidateError as e:
        status, detail = "failed", str(e)
    except BaseException as e:
        status, detail = "failed", f"{type(e).__name__}: {e}"
        traceback.print_exc()
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except OSError:
            pass
        proc.kill()
        proc.wait()
        end = time.monotonic() + 2.0
        while time.monotonic() < end:
            kids = children_of(os.getpid())
            for pid in kids:
                try:
                    os.kill(pid, signal.SIGKILL)
                except OSError:
                    pass
            while True:
                try:
                    if os.waitpid(-1, os.WNOHANG)[0] == 0:
                        break
                except ChildProcessError:
                    break
            if not kids:
                break
            time.sleep(0.005)
    os.write(verdict_fd, (json.dumps({"status": status, "detail": detail[:2000]}) + "\n").encode())


main()
"""

# ----------------------------------------------------------------------------------------------------------
# The caller


@dataclasses.dataclass(frozen=True)
class ExecutionResult:
    """Outcome of one run. ``status``: ``passed``, ``failed`` (the program raised while loading, a test
    failed, a call raised or returned something that is not a plain value, the program exited), ``timeout``
    (the wall-clock limit) or ``error`` (the harness itself failed). ``detail``: the checker's reason;
    ``isolation``: ``"namespace"`` or ``"guard"``."""

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


def _probe(prefix: tuple[str, ...], python: str) -> str:
    """'' when ``prefix`` isolates a trivial program as promised, else why not."""
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
    if mode[0] == "guard" and hasattr(os, "geteuid") and os.geteuid() == 0 and not _WARNED_ROOT:
        _WARNED_ROOT = True
        logger.warning(
            "running model-written code as root without operating-system isolation (no usable `unshare`): the "
            "in-process guard stops accidents only; see docs/ood_eval.md"
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
) -> ExecutionResult:
    isolate = mode[0] == "namespace"
    start = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="jaxrlvr-exec-", ignore_cleanup_errors=True) as workdir:
        wd = pathlib.Path(workdir)
        out_path, err_path = wd / "stdout.txt", wd / "stderr.txt"
        out_path.touch()
        home = "/tmp" if isolate else workdir
        cfg = {
            "argv": [*mode[1], python, "-I", "-B", "-c", _CANDIDATE],
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
        }
        cfg["candidate_header"] = header  # the checker sends it as the first frame, with the stdout fd
        with open(err_path, "ab") as err:
            checker = subprocess.Popen(
                [sys.executable, "-I", "-S", "-B", "-c", _CHECKER],
                cwd=workdir,
                env=_child_env(workdir),
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=err,
                start_new_session=True,
                close_fds=True,
            )
        try:
            out, _ = checker.communicate(json.dumps(cfg).encode(), timeout=timeout_s + _BACKSTOP_S)
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
        verdict = json.loads(out.decode().strip().splitlines()[-1])
        status, detail = verdict["status"], verdict["detail"]
    except (ValueError, IndexError, KeyError):
        status, detail = ("timeout", "the checker did not answer in time") if not out else ("error", repr(out[:200]))
    return ExecutionResult(status == "passed", status, checker.returncode, stdout, stderr, wall_s, detail, mode[0])
