"""Orbax checkpoints of a training run: ``WORKDIR/checkpoints/<step>/{state, extra, model}``.

- ``state``: the ``TrainState`` pytree (params, optimizer state, update count, algorithm knobs).
- ``extra``: JSON: the RL step, the data iterator state (grain), controller and bookkeeping values.
- ``model``: JSON: the ``ModelConfig`` (so evaluation can rebuild the model from the folder alone).

``load_params(path)`` accepts a run's workdir, its ``checkpoints`` folder, one step folder, or a
conversion checkpoint (``model_config.json`` + ``params/``) and returns ``(ModelConfig, params)``.
"""

from __future__ import annotations

import dataclasses
import os
import pathlib

from jaxrlvr.models import ModelConfig
from jaxrlvr.runs import load_params  # noqa: F401 (re-exported: the run layout is read in jaxrlvr.runs)


class RunCheckpointer:
    """Save / restore of the whole run state every ``every`` steps, keeping the last ``keep``."""

    def __init__(self, workdir: str | os.PathLike, *, every: int, keep: int = 2):
        import orbax.checkpoint as ocp

        self.dir = pathlib.Path(workdir).absolute() / "checkpoints"
        self.every = every
        self._ocp = ocp
        self.manager = ocp.CheckpointManager(
            self.dir,
            options=ocp.CheckpointManagerOptions(max_to_keep=keep, create=True, enable_async_checkpointing=False),
        )

    def latest_step(self) -> int | None:
        return self.manager.latest_step()

    def save(self, step: int, state, extra: dict, model_cfg: ModelConfig, *, force: bool = False) -> bool:
        ocp = self._ocp
        if not force and (self.every <= 0 or step % self.every):
            return False
        args = ocp.args.Composite(
            state=ocp.args.StandardSave(state),
            extra=ocp.args.JsonSave(extra),
            model=ocp.args.JsonSave(dataclasses.asdict(model_cfg)),
        )
        self.manager.save(step, args=args, force=True)
        self.manager.wait_until_finished()
        return True

    def restore(self, step: int, abstract_state) -> tuple[object, dict]:
        ocp = self._ocp
        args = ocp.args.Composite(state=ocp.args.StandardRestore(abstract_state), extra=ocp.args.JsonRestore())
        out = self.manager.restore(step, args=args)
        return out["state"], out["extra"]

    def close(self):
        self.manager.close()
