"""The verifier worker process: reads requests on stdin, answers on stdout (length-prefixed JSON frames).

Started by :class:`jaxrlvr.rewards.pool.VerifierPool` as ``python -P -c <loader>``; the loader executes this
file by path, so the worker never imports the ``jaxrlvr`` package (and so never imports jax). It loads
``_verify_core.py`` from the same folder the same way.

Protocol (each frame: 4-byte big-endian length + UTF-8 JSON):
  worker -> parent, once at start-up:  {"ready": true} | {"ready": false, "error": "why"}
  parent -> worker:  {"pred": str, "golds": [str, ...], "soft_timeout": float, "fast_path": bool}
  worker -> parent:  {"ok": bool} | {"timeout": true} | {"error": "message"}

The worker runs in its own main thread, so it can use SIGALRM for a *soft* timeout (a little below the
parent's hard deadline); a soft timeout answers ``{"timeout": true}`` and keeps the worker alive. Work that
never returns to the interpreter (a huge integer power inside C) is caught by the parent's hard deadline,
which kills the process.

The worker dies with the process that started it (``parent_pid``): on Linux through ``PR_SET_PDEATHSIG``
(delivered by the kernel even while the worker is stuck in C code), elsewhere through a watchdog thread.
"""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import struct
import sys

_HEADER = struct.Struct(">I")


class _SoftTimeout(BaseException):
    """Raised by SIGALRM; a BaseException so that library code catching Exception does not swallow it."""


def _on_alarm(signum, frame):
    raise _SoftTimeout()


def _read_exact(fd: int, n: int) -> bytes | None:
    chunks = []
    while n > 0:
        b = os.read(fd, n)
        if not b:
            return None
        chunks.append(b)
        n -= len(b)
    return b"".join(chunks)


def _write_frame(fd: int, obj) -> None:
    data = json.dumps(obj).encode("utf-8")
    view = memoryview(_HEADER.pack(len(data)) + data)
    while view:
        k = os.write(fd, view)
        view = view[k:]


def _load_core():
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_verify_core.py")
    spec = importlib.util.spec_from_file_location("_jaxrlvr_verify_core", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def _die_with_parent(parent_pid: int) -> None:
    if sys.platform.startswith("linux"):
        try:
            import ctypes

            pr_set_pdeathsig = 1
            if ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGKILL, 0, 0, 0) == 0:
                if os.getppid() != parent_pid:  # the parent died before the prctl
                    os._exit(0)
                return
        except (OSError, AttributeError):  # pragma: no cover - no libc prctl
            pass

    def watch():  # pragma: no cover - non-Linux fallback
        import time

        while os.getppid() == parent_pid:
            time.sleep(0.5)
        os._exit(0)

    import threading

    threading.Thread(target=watch, daemon=True).start()


def main(memory_limit_mb: int = 0, parent_pid: int | None = None) -> None:
    if parent_pid is not None:
        _die_with_parent(parent_pid)
    # Keep the protocol channel private: anything the libraries print goes to stderr.
    out_fd = os.dup(1)
    os.dup2(2, 1)
    in_fd = sys.stdin.fileno()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles Ctrl-C and cleans us up
    signal.signal(signal.SIGALRM, _on_alarm)
    if memory_limit_mb > 0:
        import resource

        limit = memory_limit_mb * 1024 * 1024
        try:
            resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
        except (ValueError, OSError):  # pragma: no cover - platform dependent
            pass
    try:
        core = _load_core()
        core._math_verify()  # import math_verify + sympy now, before announcing readiness
    except Exception as e:  # noqa: BLE001 - reported to the parent, which raises with this message
        _write_frame(out_fd, {"ready": False, "error": f"{type(e).__name__}: {e}"})
        return
    _write_frame(out_fd, {"ready": True})
    while True:
        header = _read_exact(in_fd, _HEADER.size)
        if header is None:
            return  # parent closed the pipe (or died)
        body = _read_exact(in_fd, _HEADER.unpack(header)[0])
        if body is None:
            return
        try:
            req = json.loads(body.decode("utf-8"))
            soft = float(req.get("soft_timeout", 0.0))
            if soft > 0:
                signal.setitimer(signal.ITIMER_REAL, soft)
            try:
                ok = core.check_any(req["pred"], req["golds"], fast_path=bool(req.get("fast_path", True)))
            finally:
                signal.setitimer(signal.ITIMER_REAL, 0)
            reply = {"ok": bool(ok)}
        except _SoftTimeout:
            reply = {"timeout": True}
        except MemoryError:
            reply = {"error": "MemoryError"}
        except RecursionError:
            reply = {"error": "RecursionError"}
        except Exception as e:  # noqa: BLE001 - a verifier failure is a False answer, never a crash
            reply = {"error": f"{type(e).__name__}"}
        _write_frame(out_fd, reply)
