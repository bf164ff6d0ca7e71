"""The checker process of :mod:`jaxrlvr.eval.sandbox` (trusted code only; standard library only).

Reads its configuration (JSON) on stdin, starts the candidate, runs the problem's setup and test code with
``candidate`` bound to a proxy, and writes one JSON verdict line on stdout:
``{"status": "passed" | "failed" | "timeout" | "error", "detail": str}``.
"""

from __future__ import annotations

import _pickle
import builtins
import io
import marshal
import os
import select
import signal
import struct
import sys
import time

_H = struct.Struct(">I")
_PLAIN_CALLABLES = {
    ("builtins", "complex"): complex,
    ("builtins", "bytearray"): bytearray,
    ("builtins", "set"): set,
    ("builtins", "frozenset"): frozenset,
}


class Timeout(BaseException):
    pass


class CandidateError(Exception):
    pass


class PlainUnpickler(_pickle.Unpickler):
    def find_class(self, module, name):
        fn = _PLAIN_CALLABLES.get((module, name))
        if fn is None:
            raise _pickle.UnpicklingError(f"{module}.{name} is not a plain value")
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
    cfg = marshal.loads(sys.stdin.buffer.read())
    verdict_fd = os.dup(1)
    os.dup2(2, 1)
    deadline = time.monotonic() + cfg["timeout_s"]
    lib = libc()
    if lib is not None:
        lib.prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG: die with the caller
        if os.getppid() != cfg["parent_pid"]:
            os._exit(3)
        lib.prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER: orphans of the candidate come to us

    req_r, req_w = os.pipe()
    resp_r, resp_w = os.pipe()
    out_fd = os.open(cfg["stdout_path"], os.O_WRONLY | os.O_APPEND)
    pid = os.fork()  # (not subprocess: its import costs more than the rest of this process)
    if pid == 0:
        try:
            os.setsid()
            if lib is not None:
                lib.prctl(1, signal.SIGKILL, 0, 0, 0)  # die with the checker
            os.dup2(req_r, 0)
            os.dup2(resp_w, 1)
            if out_fd != 3:
                os.dup2(out_fd, 3)
            os.closerange(4, 1 << 16)
            os.chdir(cfg["cwd"])
            os.execvpe(cfg["argv"][0], cfg["argv"], cfg["env"])
        finally:
            os._exit(127)
    for fd in (req_r, resp_w, out_fd):
        os.close(fd)
    buf = bytearray()

    def send(payload):
        view = memoryview(_H.pack(len(payload)) + payload)
        while view:
            view = view[os.write(req_w, view) :]

    def recv():
        while True:
            if len(buf) >= 4:
                n = _H.unpack(buf[:4])[0]
                if len(buf) >= 4 + n:
                    frame = bytes(buf[4 : 4 + n])
                    del buf[: 4 + n]
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
            send(_pickle.dumps((args, kwargs), protocol=4))
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
        send(marshal.dumps(dict(cfg["candidate_header"], out_fd=3)))
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
        __import__("traceback").print_exc()
    finally:
        for kill in (os.killpg, os.kill):
            try:
                kill(pid, signal.SIGKILL)
            except OSError:
                pass
        os.waitpid(pid, 0)
        end = time.monotonic() + 2.0
        while time.monotonic() < end:
            try:
                os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break  # no process left that was re-parented to us
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
    os.write(verdict_fd, marshal.dumps({"status": status, "detail": detail[:2000]}))


if __name__ == "__main__":
    main()
