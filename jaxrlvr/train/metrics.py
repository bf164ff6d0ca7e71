"""Metrics writers: one JSON object per step in ``DIR/metrics.jsonl`` and TensorBoard event files.

Values are converted to plain Python floats/ints on write; non-finite floats are written as null in JSON
(strict JSON has no NaN) and skipped in TensorBoard.

TensorBoard events are written synchronously by the training thread (tensorboardX's record writer, without
its background thread): a full disk or a vanished folder raises here, in the loop, as a :class:`WriterError`
(one line), instead of killing a writer thread and leaving the loop blocked on its queue.

With ``log.wandb=True`` the same scalars also go to a Weights & Biases run (the optional ``wandb`` extra;
docs/training.md "Logging"): :class:`WandbLogger`.
"""

from __future__ import annotations

import json
import math
import os
import pathlib
import secrets
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


def wandb_mode(mode: str, env: Mapping[str, str] | None = None) -> str:
    """The W&B mode that ``log.wandb_mode`` means: "auto" is ``$WANDB_MODE`` when set, else "online" with
    credentials (``$WANDB_API_KEY`` or an ``api.wandb.ai`` entry in ``~/.netrc``) and "offline" without."""
    if mode != "auto":
        return mode
    env = os.environ if env is None else env
    if env.get("WANDB_MODE"):
        return env["WANDB_MODE"]
    if env.get("WANDB_API_KEY"):
        return "online"
    netrc = pathlib.Path(env.get("NETRC") or pathlib.Path.home() / ".netrc")
    try:
        return "online" if "api.wandb.ai" in netrc.read_text(errors="replace") else "offline"
    except OSError:
        return "offline"


class WandbLogger:
    """Mirrors the step scalars into a W&B run whose id is kept in ``DIR/wandb_run_id``, so a resumed
    training continues the same run. Steps are logged as the ``step`` metric (every other key is plotted
    against it) rather than as W&B's own step, which must only grow: after a resume the steps since the last
    checkpoint are logged again (metrics.jsonl drops the old rows; W&B keeps both). Files go to ``$WANDB_DIR``
    or else ``DIR/wandb``. Online start-up that fails (no network) falls back to offline with one warning."""

    def __init__(self, workdir: pathlib.Path, *, project: str, name: str, mode: str, config: dict, log=print):
        try:
            import wandb
        except ImportError as e:  # config.validate says this first; here for direct library use
            raise ValueError(
                "log.wandb=True but the wandb package is not installed; install the extra with "
                "pip install -e '.[wandb]' (or leave log.wandb=False)"
            ) from e
        id_file = workdir / "wandb_run_id"
        run_id = id_file.read_text().strip() if id_file.is_file() else secrets.token_hex(4)
        id_file.write_text(run_id + "\n")
        wdir = os.environ.get("WANDB_DIR") or str(workdir / "wandb")
        pathlib.Path(wdir).mkdir(parents=True, exist_ok=True)
        mode = wandb_mode(mode)
        kw = dict(
            project=project, name=name or workdir.resolve().name, id=run_id, resume="allow", dir=wdir, config=config
        )
        settings = wandb.Settings(console="off", silent=True, disable_git=True, save_code=False)
        try:
            self._run = wandb.init(mode=mode, settings=settings, **kw)
        except Exception as e:  # noqa: BLE001 (wandb raises its own errors for network and auth failures)
            if mode != "online":
                raise WriterError(f"starting the W&B run (log.wandb_mode={mode!r}) failed: {e}") from e
            log(
                f"warning: W&B online start failed ({str(e).splitlines()[0] if str(e) else type(e).__name__}); "
                f"logging offline in {wdir} (upload later with `wandb sync`)"
            )
            self._run = wandb.init(mode="offline", settings=settings, **kw)
        self._run.define_metric("step")
        self._run.define_metric("*", step_metric="step")
        self.mode = self._run.settings.mode
        self.dir = pathlib.Path(self._run.dir).parent  # offline-run-*/ or run-*/ under WANDB_DIR/wandb

    def write(self, step: int, scalars: dict[str, float]) -> None:
        self._run.log({**scalars, "step": int(step)})

    def close(self) -> None:
        if self._run is not None:
            run, self._run = self._run, None
            run.finish()


class MetricsWriter:
    """Appends step records to ``metrics.jsonl`` (resumes by appending) and mirrors scalars to TensorBoard."""

    def __init__(
        self,
        workdir: str | os.PathLike,
        *,
        tensorboard: bool = True,
        filename: str = "metrics.jsonl",
        wandb: dict | None = None,
    ):
        """``wandb``: None, or the keyword arguments of :class:`WandbLogger` (project, name, mode, config)."""
        self.dir = pathlib.Path(workdir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.path = self.dir / filename
        self._f = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 (closed in close())
        self._tb = _TensorBoard(self.dir / "tensorboard") if tensorboard else None
        self._wandb = WandbLogger(self.dir, **wandb) if wandb is not None else None

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
            if self._wandb is not None:
                self._wandb.write(step, scalars)
        except OSError as e:
            raise WriterError(
                f"writing the metrics of step {step} to {self.dir} failed: {e.strerror or e}; the last complete "
                "checkpoint is intact (free space and re-run to resume)"
            ) from e

    def close(self) -> None:
        closers = (self._f.close, self._tb.close if self._tb else None, self._wandb.close if self._wandb else None)
        for f in closers:
            try:
                if f is not None:
                    f()
            except OSError:  # a full disk at the very end: the write that failed has said so
                pass
