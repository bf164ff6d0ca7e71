"""Metrics writers: one JSON object per step in ``DIR/metrics.jsonl`` and TensorBoard event files.

Values are converted to plain Python floats/ints on write; non-finite floats are written as null in JSON
(strict JSON has no NaN) and skipped in TensorBoard.

TensorBoard events are written synchronously by the training thread (tensorboardX's record writer, without
its background thread): a full disk or a vanished folder raises here, in the loop, as a :class:`WriterError`
(one line), instead of killing a writer thread and leaving the loop blocked on its queue.
"""

from __future__ import annotations

import json
import math
import os
import pathlib
from collections.abc import Mapping

import numpy as np

from jaxrlvr.runs import read_metrics  # noqa: F401 (re-exported; the reader lives with the other run files)


def to_python(v):
    if isinstance(v, (np.generic, np.ndarray)) or hasattr(v, "__array__"):
        v = np.asarray(v)
        v = v.item() if v.ndim == 0 else v.tolist()
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


class WriterError(RuntimeError):
    """Writing metrics failed (a full disk, a read-only or vanished folder)."""


class _TensorBoard:
    """Scalars into one TensorBoard event file, written and flushed by the caller's thread."""

    def __init__(self, logdir: pathlib.Path):
        from tensorboardX.event_file_writer import EventsWriter

        logdir.mkdir(parents=True, exist_ok=True)
        self._w = EventsWriter(str(logdir / "events"))

    def write(self, step: int, scalars: dict[str, float]) -> None:
        import time

        from tensorboardX.proto.event_pb2 import Event
        from tensorboardX.summary import scalar

        for k, v in scalars.items():
            self._w.write_event(Event(wall_time=time.time(), step=int(step), summary=scalar(k, v)))
        self._w.flush()

    def close(self) -> None:
        self._w.close()


class MetricsWriter:
    """Appends step records to ``metrics.jsonl`` (resumes by appending) and mirrors scalars to TensorBoard."""

    def __init__(self, workdir: str | os.PathLike, *, tensorboard: bool = True, filename: str = "metrics.jsonl"):
        self.dir = pathlib.Path(workdir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.path = self.dir / filename
        self._f = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 (closed in close())
        self._tb = _TensorBoard(self.dir / "tensorboard") if tensorboard else None

    def truncate_after(self, step: int) -> None:
        """Drops records with ``step > step`` (a resumed run rewrites the steps after its checkpoint). The file
        is rewritten atomically (a temporary file renamed over it): a kill during the rewrite leaves either
        the old or the new file. A torn last line (a kill during an append) is dropped with a warning; a
        malformed line elsewhere is an error naming the file and line."""
        self._f.close()
        recs = read_metrics(self.path, torn_tail="drop")
        keep = [json.dumps(r, sort_keys=True) for r in recs if r.get("step", -1) <= step]
        tmp = self.path.with_name(self.path.name + ".tmp")
        with open(tmp, "w", encoding="utf-8") as f:
            f.write("".join(k + "\n" for k in keep))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)
        self._f = open(self.path, "a", encoding="utf-8")  # noqa: SIM115

    def write(self, step: int, metrics: Mapping[str, object]) -> None:
        record = {"step": int(step)}
        record.update({k: to_python(v) for k, v in metrics.items()})
        scalars = {
            k: v
            for k, v in record.items()
            if k != "step" and isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
        }
        try:
            self._f.write(json.dumps(record, sort_keys=True) + "\n")
            self._f.flush()
            if self._tb is not None:
                self._tb.write(step, scalars)
        except OSError as e:
            raise WriterError(
                f"writing the metrics of step {step} to {self.dir} failed: {e.strerror or e}; the last complete "
                "checkpoint is intact (free space and re-run to resume)"
            ) from e

    def close(self) -> None:
        for f in (self._f.close, self._tb.close if self._tb is not None else None):
            try:
                if f is not None:
                    f()
            except OSError:  # a full disk at the very end: the write that failed has said so
                pass
