"""A pool of verifier worker processes with a hard per-item deadline.

Why processes: math-verify (sympy) can take unbounded time on adversarial answers such as
``10^{10^{10^{10}}}``, and some of that time is spent inside C code where no signal handler runs; its own
timeout uses ``signal.alarm``, which only works in the main thread. Here each item runs in a worker process;
when an item passes its deadline the worker is killed and replaced, and the item counts as not equivalent
(``timed_out=True``). The caller's thread never blocks longer than the deadline per wave of items, and any
thread may use a pool (calls are serialised by a lock).

Workers are plain ``subprocess`` children (``python -P -c ...``) speaking length-prefixed JSON over pipes,
so they do not re-import the caller's ``__main__`` (which ``multiprocessing`` spawn would, importing jax
into every worker). A worker exits when its stdin closes, and on Linux the kernel kills it when the process
that started it dies (``PR_SET_PDEATHSIG``; elsewhere a watchdog thread polls the parent pid), even while it
is stuck in C code. Because that signal follows the *thread* that started the process, workers are started
by one long-lived thread of this module.

Failures: a worker that dies in the middle of an item (killed, out of memory) is replaced and the item is
retried once on the fresh worker; a second death fails the item (``error="worker crashed twice"``). A
worker that dies while starting is restarted; three deaths in a row raise an error that says how the last
one ended (exit status, signal, the end of its stderr). A worker that cannot import math-verify says so.
"""

from __future__ import annotations

import atexit
import collections
import concurrent.futures
import dataclasses
import json
import logging
import os
import queue
import select
import signal
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence

logger = logging.getLogger(__name__)

_HEADER = struct.Struct(">I")
_WORKER_FILE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_worker.py")
_LOADER = (
    "import importlib.util, sys\n"
    "spec = importlib.util.spec_from_file_location('_jaxrlvr_verify_worker', sys.argv[1])\n"
    "m = importlib.util.module_from_spec(spec)\n"
    "sys.modules[spec.name] = m\n"
    "spec.loader.exec_module(m)\n"
    "m.main(int(sys.argv[2]), int(sys.argv[3]))\n"
)
# Consecutive start-up deaths after which the pool gives up (our choice: a transient kill is retried, a
# broken interpreter fails fast).
_MAX_START_FAILURES = 3
# Attempts per item when its worker dies while checking it (our choice: one retry on a fresh worker).
_MAX_ATTEMPTS = 2
# Fraction of the hard deadline after which the worker gives up by itself (and stays alive).
_SOFT_FRACTION = 0.8


@dataclasses.dataclass(frozen=True)
class EquivResult:
    """Outcome of one equivalence check."""

    equal: bool
    timed_out: bool = False
    error: str | None = None


_SPAWN_QUEUE: queue.SimpleQueue = queue.SimpleQueue()
_SPAWN_THREAD: tuple[int, threading.Thread] | None = None
_SPAWN_LOCK = threading.Lock()


def _spawn_loop() -> None:
    while True:
        fn, fut = _SPAWN_QUEUE.get()
        try:
            fut.set_result(fn())
        except BaseException as e:  # noqa: BLE001 - handed to the caller
            fut.set_exception(e)


def _in_spawn_thread(fn: Callable):
    """Runs ``fn`` in this module's long-lived thread (the parent-death signal of a child follows the thread
    that started it, so a worker started by a short-lived caller thread would die with that thread)."""
    global _SPAWN_THREAD
    with _SPAWN_LOCK:
        if _SPAWN_THREAD is None or _SPAWN_THREAD[0] != os.getpid() or not _SPAWN_THREAD[1].is_alive():
            t = threading.Thread(target=_spawn_loop, name="jaxrlvr-verifier-spawn", daemon=True)
            t.start()
            _SPAWN_THREAD = (os.getpid(), t)
    fut: concurrent.futures.Future = concurrent.futures.Future()
    _SPAWN_QUEUE.put((fn, fut))
    return fut.result()


class _Worker:
    def __init__(self, memory_limit_mb: int, python: str):
        self.stderr = tempfile.TemporaryFile()  # read back when the worker dies, to say why
        argv = [python, "-P", "-c", _LOADER, _WORKER_FILE, str(int(memory_limit_mb)), str(os.getpid())]
        self.proc = _in_spawn_thread(
            lambda: subprocess.Popen(
                argv,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=self.stderr,
                close_fds=True,
                start_new_session=True,  # a terminal Ctrl-C goes to the parent only
            )
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

    def how_it_ended(self) -> str:
        """The exit status (or signal) of a dead worker and the end of its stderr."""
        try:
            code = self.proc.wait(timeout=2)
        except subprocess.TimeoutExpired:
            code = None
        if code is None:
            what = "did not exit"
        elif code < 0:
            try:
                what = f"was killed by {signal.Signals(-code).name}"
            except ValueError:
                what = f"was killed by signal {-code}"
        else:
            what = f"exited with status {code}"
        try:
            self.stderr.seek(0, os.SEEK_END)
            self.stderr.seek(max(0, self.stderr.tell() - 800))
            tail = self.stderr.read().decode("utf-8", errors="replace").strip()
        except (OSError, ValueError):
            tail = ""
        return what + (f"; its stderr ends with: {tail}" if tail else "; no stderr output")

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
        self.stderr.close()

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
        self.stderr.close()


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
        self.stats = collections.Counter()  # items, timeouts, errors, restarts, retries, start_failures

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
        attempts = collections.Counter()
        start_failures = 0
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
                    attempts[i] += 1
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
                        except (EOFError, OSError, ValueError):
                            how = w.how_it_ended()
                            w.kill()
                            start_failures += 1
                            self.stats["start_failures"] += 1
                            if start_failures >= _MAX_START_FAILURES:
                                raise RuntimeError(
                                    f"a verifier worker ({self.python}) failed to start {start_failures} times in "
                                    f"a row; the last one {how}"
                                ) from None
                            logger.warning("a verifier worker died while starting (%s); starting another", how)
                            nw = self._spawn()
                            starting[nw.rfd] = nw
                            continue
                        if not msg.get("ready"):
                            w.kill()
                            raise RuntimeError(
                                f"a verifier worker ({self.python}) cannot start: {msg.get('error', msg)}"
                                " (is math-verify installed for that interpreter?)"
                            )
                        start_failures = 0
                        w.ready = True
                        idle.append(w)
                        continue
                    w, i, _ = busy.pop(fd)
                    try:
                        msg = w.recv()
                    except (EOFError, OSError, ValueError):
                        # died (killed, out of memory): the worker is replaced and the item retried once
                        how = w.how_it_ended()
                        w.kill()
                        self.stats["restarts"] += 1
                        if attempts[i] < _MAX_ATTEMPTS:
                            self.stats["retries"] += 1
                            logger.warning("a verifier worker died on an item (%s); retrying it", how)
                            pending.appendleft(i)
                        else:
                            results[i] = EquivResult(False, error="worker crashed twice")
                            self.stats["errors"] += 1
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
