"""One writer per folder: a lock file naming its holder (host, pid, start time), taken before anything is written.

Used by training (``WORKDIR/.jaxrlvr.lock``) and by evaluation (``OUT_DIR/.jaxrlvr.lock``). Reading a folder
(analysis, evaluating a run's checkpoint) takes no lock, so it stays allowed while the folder is written.

How a holder is judged alive:

- an ``fcntl.flock`` on the lock file, held for the life of the process: the kernel drops it when the process
  dies (SIGKILL included), so on one host a lock whose process is gone is taken over at once;
- the JSON inside (host, pid, process start time, ``lease_until``) says who holds it and, for a holder on
  another host (a shared filesystem where flock does not reach across hosts), until when: a background thread
  renews the lease every ``LEASE_S / 4`` seconds; a lock of another host whose lease expired is taken over.
  On one host, where flock is unavailable (some network filesystems), the pid and its start time decide.

A taken-over lock prints one warning line. A held lock is a :class:`WorkdirLocked` (a ``ValueError``: the
command-line entry points print it as one ``error:`` line, exit status 2).
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import pathlib
import socket
import sys
import threading
import time

LOCK_NAME = ".jaxrlvr.lock"
# Lease of a holder on another host (ours: long enough that a busy filesystem never lets it lapse while the
# renewing thread lives, short enough that a dead host's run can be resumed elsewhere a few minutes later).
LEASE_S = 300.0


class WorkdirLocked(ValueError):
    """The folder is being written by another live process."""


def _proc_start(pid: int) -> str | None:
    """The start time (clock ticks since boot) of process ``pid``, or None when it is gone / unknown."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[1].split()[19].decode()
    except (OSError, IndexError):
        return None


def _alive(info: dict) -> bool:
    """Whether the holder named in ``info`` still runs (same host: its pid with the same start time; another
    host: its lease has not expired)."""
    if info.get("host") != socket.gethostname():
        return float(info.get("lease_until", 0)) > time.time()
    pid = int(info.get("pid", -1))
    if pid <= 0:
        return False
    start = _proc_start(pid)
    if start is not None:
        return info.get("proc_start") in (None, start)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def describe(info: dict) -> str:
    started = info.get("started")
    when = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(started)) if started else "?"
    return f"{info.get('what', 'a run')} on host {info.get('host', '?')} pid {info.get('pid', '?')} started {when}"


class WorkdirLock:
    """``with WorkdirLock(folder, what="training"):`` holds the folder's lock (see the module docstring)."""

    def __init__(self, folder: str | os.PathLike, *, what: str = "training", log=print, lease_s: float = LEASE_S):
        self.folder = pathlib.Path(folder)
        self.path = self.folder / LOCK_NAME
        self.what = what
        self.log = log
        self.lease_s = lease_s
        self._fd: int | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._info: dict = {}

    # ------------------------------------------------------------------ taking and giving back
    def acquire(self) -> WorkdirLock:
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as e:
            raise ValueError(f"cannot write to {self.folder} ({e.strerror}); give a writable folder") from None
        try:
            self._take(fd)
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd
        self._thread = threading.Thread(target=self._renew_forever, name="jaxrlvr-lock-lease", daemon=True)
        self._thread.start()
        return self

    def _take(self, fd: int) -> None:
        flocked = True
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise WorkdirLocked(self._held_message(_read(fd))) from None
        except OSError as e:  # no flock on this filesystem: the file's contents decide alone
            if e.errno not in (errno.ENOLCK, errno.EOPNOTSUPP, errno.EINVAL):
                raise
            flocked = False
        try:
            if os.fstat(fd).st_ino != os.stat(self.path).st_ino:  # released (unlinked) while we opened it
                raise WorkdirLocked(f"{self.path} changed while taking it; run again")
        except FileNotFoundError:
            raise WorkdirLocked(f"{self.path} changed while taking it; run again") from None
        old = _read(fd)
        if old:
            other_host = old.get("host") != socket.gethostname()
            if (other_host or not flocked) and _alive(old):
                raise WorkdirLocked(self._held_message(old))
            self.log(f"warning: taking over the stale lock {self.path} of {describe(old)} (no longer running)")
        self._info = {
            "what": self.what,
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "proc_start": _proc_start(os.getpid()),
            "started": time.time(),
            "command": " ".join(sys.argv)[:500],
        }
        self._write(fd)

    def _held_message(self, info: dict) -> str:
        holder = describe(info) if info else "another process"
        return (
            f"{self.folder} is in use by {holder} (lock {self.path}); wait for it to finish, stop it, or use "
            "another folder (reading it, e.g. analysis or evaluation, is allowed meanwhile)"
        )

    def _write(self, fd: int) -> None:
        info = dict(self._info, lease_until=time.time() + self.lease_s)
        data = (json.dumps(info, indent=1) + "\n").encode()
        os.ftruncate(fd, 0)
        os.pwrite(fd, data, 0)

    def _renew_forever(self) -> None:
        while not self._stop.wait(self.lease_s / 4):
            try:
                if self._fd is not None:
                    self._write(self._fd)
            except OSError:  # a full or vanished disk: the run's own writes report it
                pass

    def release(self) -> None:
        self._stop.set()
        if self._fd is None:
            return
        try:
            os.unlink(self.path)
        except OSError:
            pass
        os.close(self._fd)  # drops the flock
        self._fd = None

    def __enter__(self) -> WorkdirLock:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


def _read(fd: int) -> dict:
    try:
        data = os.pread(fd, 1 << 16, 0)
        return json.loads(data) if data.strip() else {}
    except (OSError, ValueError):
        return {}


def read_lock(folder: str | os.PathLike) -> dict | None:
    """The holder recorded in ``folder``'s lock when a live process holds it, else None."""
    path = pathlib.Path(folder) / LOCK_NAME
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        info = _read(fd)
    finally:
        os.close(fd)
    return info if info and _alive(info) else None
