"""A pool of verifier worker processes with a hard per-item deadline.

Why processes: math-verify (sympy) can take unbounded time on adversarial answers such as
``10^{10^{10^{10}}}``, and some of that time is spent inside C code where no signal handler runs; its own
timeout uses ``signal.alarm``, which only works in the main thread. Here each item runs in a worker process;
when an item passes its deadline the worker is killed and replaced, and the item counts as not equivalent
(``timed_out=True``). The caller's thread never blocks longer than the deadline per wave of items, and any
thread may use a pool (calls are serialised by a lock).

Workers are plain ``subprocess`` children (``python -P -c ...``) speaking length-prefixed JSON over pipes,
so they do not re-import the caller's ``__main__`` (which ``multiprocessing`` spawn would, importing jax
into every worker). A worker exits when its stdin closes, so none outlives the parent.
"""

from __future__ import annotations

import atexit
import collections
import dataclasses
import json
import os
import select
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Sequence

_HEADER = struct.Struct(">I")
_WORKER_FILE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_worker.py")
_LOADER = (
    "import importlib.util, sys\n"
    "spec = importlib.util.spec_from_file_location('_jaxrlvr_verify_worker', sys.argv[1])\n"
    "m = importlib.util.module_from_spec(spec)\n"
    "sys.modules[spec.name] = m\n"
    "spec.loader.exec_module(m)\n"
    "m.main(int(sys.argv[2]))\n"
)
# Fraction of the hard deadline after which the worker gives up by itself (and stays alive).
_SOFT_FRACTION = 0.8


@dataclasses.dataclass(frozen=True)
class EquivResult:
    """Outcome of one equivalence check."""

    equal: bool
    timed_out: bool = False
    error: str | None = None


class _Worker:
    def __init__(self, memory_limit_mb: int, python: str):
        self.proc = subprocess.Popen(
            [python, "-P", "-c", _LOADER, _WORKER_FILE, str(int(memory_limit_mb))],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=None,
            close_fds=True,
            start_new_session=True,  # a terminal Ctrl-C goes to the parent only
        )
        self.rfd = self.proc.stdout.fileno()
        self.wfd = self.proc.stdin.fileno()
        self.started = time.monotonic()
        self.ready = False

    def send(self, obj) -> None:
        data = json.dumps(obj).encode("utf-8")
        view = memoryview(_HEADER.pack(len(data)) + data)
        while view:
            k = os.write(self.wfd, view)
            view = view[k:]

    def recv(self):
        header = self._read_exact(_HEADER.size)
        if header is None:
            raise EOFError("verifier worker exited")
        body = self._read_exact(_HEADER.unpack(header)[0])
        if body is None:
            raise EOFError("verifier worker exited")
        return json.loads(body.decode("utf-8"))

    def _read_exact(self, n: int) -> bytes | None:
        chunks = []
        while n > 0:
            b = os.read(self.rfd, n)
            if not b:
                return None
            chunks.append(b)
            n -= len(b)
        return b"".join(chunks)

    def kill(self) -> None:
        try:
            self.proc.kill()
        except OSError:
            pass
        for f in (self.proc.stdin, self.proc.stdout):
            try:
                f.close()
            except OSError:
                pass
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:  # pragma: no cover
            pass

    def close(self) -> None:
        """Polite shutdown: closing stdin makes the worker exit; kill it if it does not."""
        try:
            self.proc.stdin.close()
        except OSError:
            pass
        try:
            self.proc.wait(timeout=2)
        except subprocess.TimeoutExpired:
            self.kill()
            return
        try:
            self.proc.stdout.close()
        except OSError:
            pass


class VerifierPool:
    """Worker processes that check answer equivalence with a hard deadline per item.

    Args:
      workers: the most worker processes this pool runs at once (they start lazily, on first use).
      memory_limit_mb: address-space limit of each worker (0 = none); a worker over it fails the item.
      startup_timeout_s: how long a starting worker may take to import math-verify before it is an error.
      python: the interpreter for the workers (default: this one).
    """

    def __init__(
        self,
        workers: int = 2,
        *,
        memory_limit_mb: int = 4096,
        startup_timeout_s: float = 120.0,
        python: str | None = None,
    ):
        if workers < 1:
            raise ValueError(f"VerifierPool workers must be >= 1, got {workers}")
        self.workers = int(workers)
        self.memory_limit_mb = int(memory_limit_mb)
        self.startup_timeout_s = float(startup_timeout_s)
        self.python = python or sys.executable
        self._idle: list[_Worker] = []
        self._starting: dict[int, _Worker] = {}  # spawned, not yet ready (kept across calls)
        self._lock = threading.Lock()
        self._closed = False
        self.stats = collections.Counter()  # items, timeouts, errors, restarts

    # -------------------------------------------------------------------------------- lifecycle
    def __enter__(self) -> VerifierPool:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        with self._lock:
            self._closed = True
            for w in self._idle:
                w.close()
            self._idle.clear()
            for w in self._starting.values():
                w.kill()
            self._starting.clear()

    @property
    def num_live_workers(self) -> int:
        return len(self._idle) + len(self._starting)

    # -------------------------------------------------------------------------------- work
    def check(
        self,
        items: Sequence[tuple[str, Sequence[str]]],
        *,
        timeout_s: float = 5.0,
        max_workers: int | None = None,
        fast_path: bool = True,
    ) -> list[EquivResult]:
        """Checks each ``(pred, golds)``: is ``pred`` equivalent to any of ``golds``? In input order.

        ``timeout_s`` is the hard deadline of each item, counted from when a ready worker receives it.
        ``fast_path=False`` makes the workers skip the string shortcuts (every item goes through sympy).
        """
        if timeout_s <= 0:
            raise ValueError(f"timeout_s must be > 0, got {timeout_s}")
        n = len(items)
        if n == 0:
            return []
        want = min(self.workers if max_workers is None else max(1, min(max_workers, self.workers)), n)
        with self._lock:
            if self._closed:
                raise RuntimeError("VerifierPool is closed")
            return self._run(items, float(timeout_s), want, bool(fast_path))

    def _spawn(self) -> _Worker:
        self.stats["spawned"] += 1
        return _Worker(self.memory_limit_mb, self.python)

    def _run(self, items, timeout_s: float, want: int, fast_path: bool = True) -> list[EquivResult]:
        results: list[EquivResult | None] = [None] * len(items)
        pending = collections.deque(range(len(items)))
        idle = self._idle[:want]
        del self._idle[:want]
        starting: dict[int, _Worker] = dict(self._starting)
        self._starting.clear()
        for _ in range(want - len(idle) - len(starting)):
            w = self._spawn()
            starting[w.rfd] = w
        busy: dict[int, tuple[_Worker, int, float]] = {}
        soft = timeout_s * _SOFT_FRACTION
        try:
            while pending or busy:
                # hand out work
                while pending and idle:
                    w = idle.pop()
                    i = pending.popleft()
                    pred, golds = items[i]
                    try:
                        w.send({"pred": pred, "golds": list(golds), "soft_timeout": soft, "fast_path": fast_path})
                    except OSError:
                        # the worker died while idle; replace it and retry the item
                        w.kill()
                        pending.appendleft(i)
                        nw = self._spawn()
                        starting[nw.rfd] = nw
                        self.stats["restarts"] += 1
                        continue
                    busy[w.rfd] = (w, i, time.monotonic() + timeout_s)
                if not pending and not busy:
                    break
                if not busy and not starting:
                    nw = self._spawn()
                    starting[nw.rfd] = nw
                now = time.monotonic()
                deadlines = [d for (_, _, d) in busy.values()]
                deadlines += [w.started + self.startup_timeout_s for w in starting.values()]
                wait_s = max(0.0, min(deadlines) - now)
                readable, _, _ = select.select(list(busy) + list(starting), [], [], wait_s)
                for fd in readable:
                    if fd in starting:
                        w = starting.pop(fd)
                        try:
                            msg = w.recv()
                        except (EOFError, OSError, ValueError) as e:
                            w.kill()
                            raise RuntimeError(
                                f"a verifier worker failed to start (is math-verify installed for {self.python}?): {e}"
                            ) from e
                        if not msg.get("ready"):
                            w.kill()
                            raise RuntimeError(f"unexpected start-up message from a verifier worker: {msg}")
                        w.ready = True
                        idle.append(w)
                        continue
                    w, i, _ = busy.pop(fd)
                    try:
                        msg = w.recv()
                    except (EOFError, OSError, ValueError):
                        # crashed (e.g. killed for memory): the item fails, the worker is replaced
                        w.kill()
                        results[i] = EquivResult(False, error="worker crashed")
                        self.stats["errors"] += 1
                        self.stats["restarts"] += 1
                        nw = self._spawn()
                        starting[nw.rfd] = nw
                        continue
                    idle.append(w)
                    if msg.get("timeout"):
                        results[i] = EquivResult(False, timed_out=True)
                        self.stats["timeouts"] += 1
                    elif "error" in msg:
                        results[i] = EquivResult(False, error=str(msg["error"]))
                        self.stats["errors"] += 1
                    else:
                        results[i] = EquivResult(bool(msg.get("ok")))
                now = time.monotonic()
                for fd, (w, i, deadline) in list(busy.items()):
                    if now < deadline or fd in readable:
                        continue
                    # a last non-blocking look: an answer that arrived in time still counts
                    ready_now, _, _ = select.select([fd], [], [], 0)
                    if ready_now:
                        continue
                    busy.pop(fd)
                    w.kill()
                    results[i] = EquivResult(False, timed_out=True)
                    self.stats["timeouts"] += 1
                    self.stats["restarts"] += 1
                    if pending:
                        nw = self._spawn()
                        starting[nw.rfd] = nw
                for w in list(starting.values()):
                    if now - w.started > self.startup_timeout_s:
                        w.kill()
                        raise RuntimeError(f"a verifier worker did not start within {self.startup_timeout_s:.0f} s")
        except BaseException:
            for w, _, _ in busy.values():
                w.kill()
            for w in starting.values():
                w.kill()
            busy.clear()
            starting.clear()
            raise
        finally:
            # Workers still starting are kept for the next call.
            self._starting.update(starting)
            self._idle.extend(idle)
        self.stats["items"] += len(items)
        return [r if r is not None else EquivResult(False, error="lost") for r in results]


_DEFAULT_POOL: VerifierPool | None = None
_DEFAULT_LOCK = threading.Lock()


def default_pool(workers: int | None = None) -> VerifierPool:
    """The process-wide shared pool, grown to at least ``workers`` workers (closed at exit).

    Created with ``workers`` workers, or ``min(8, os.cpu_count())`` when None; workers start on demand.
    """
    global _DEFAULT_POOL
    with _DEFAULT_LOCK:
        if _DEFAULT_POOL is None or _DEFAULT_POOL._closed:
            _DEFAULT_POOL = VerifierPool(workers or max(1, min(8, os.cpu_count() or 1)))
            atexit.register(_DEFAULT_POOL.close)
        elif workers is not None and workers > _DEFAULT_POOL.workers:
            _DEFAULT_POOL.workers = int(workers)
        return _DEFAULT_POOL
