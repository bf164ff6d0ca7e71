"""Graceful stop on SIGTERM (what Slurm, Kubernetes and TPU VMs send before they stop a job) and SIGINT (Ctrl-C).

The first signal only sets a flag and prints one line: the loop finishes the step it is in, checkpoints it,
flushes the metrics, prints where to resume and returns (the command exits with status ``128 + signal``).
The time this takes is bounded by one step plus one checkpoint save (plus compiling, when the signal comes
during the first step). A second signal exits at once (status ``128 + signal``), losing the current step.
"""

from __future__ import annotations

import os
import signal
import threading


class GracefulStop:
    """``with GracefulStop() as stop:`` ... ``if stop.requested: ...``; the old handlers come back on exit.
    Outside the main thread (where Python cannot install handlers) it does nothing."""

    SIGNALS = (signal.SIGTERM, signal.SIGINT)

    def __init__(self):
        self.signum: int | None = None
        self._old: dict = {}

    @property
    def requested(self) -> bool:
        return self.signum is not None

    @property
    def name(self) -> str:
        return signal.Signals(self.signum).name if self.signum else ""

    def _handle(self, signum, frame) -> None:
        if self.signum is not None:
            os.write(2, f"\n{signal.Signals(signum).name} again: stopping now, without a checkpoint\n".encode())
            os._exit(128 + signum)
        self.signum = signum
        # os.write, not print: a handler may run in the middle of a print of the main thread
        os.write(
            2,
            f"\n{signal.Signals(signum).name} received: finishing the current step, then checkpointing and "
            "stopping (send it again to stop at once)\n".encode(),
        )

    def __enter__(self) -> GracefulStop:
        if threading.current_thread() is threading.main_thread():
            for s in self.SIGNALS:
                self._old[s] = signal.signal(s, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        for s, old in self._old.items():
            signal.signal(s, old)
        self._old.clear()
