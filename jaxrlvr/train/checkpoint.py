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

import jax

from jaxrlvr.models import ModelConfig
from jaxrlvr.models import checkpoint as model_ckpt


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


def _latest_step_dir(ckpt_dir: pathlib.Path) -> pathlib.Path:
    steps = sorted((int(p.name), p) for p in ckpt_dir.iterdir() if p.is_dir() and p.name.isdigit())
    if not steps:
        raise FileNotFoundError(f"no step folders in {ckpt_dir}")
    return steps[-1][1]


def load_params(path: str | os.PathLike) -> tuple[ModelConfig, dict]:
    """(ModelConfig, params) from a run workdir / checkpoints folder / step folder / conversion output."""
    import orbax.checkpoint as ocp

    from jaxrlvr.models import abstract_params

    path = pathlib.Path(path).absolute()
    if (path / model_ckpt.CONFIG_FILE).is_file():
        return model_ckpt.load_params(path)
    if (path / "checkpoints").is_dir():
        path = path / "checkpoints"
    if not (path / "state").is_dir() and path.is_dir():
        path = _latest_step_dir(path)
    if not (path / "model").exists() or not (path / "state").is_dir():
        raise FileNotFoundError(f"{path} is neither a jaxrlvr run checkpoint nor a model checkpoint")
    with ocp.Checkpointer(ocp.JsonCheckpointHandler()) as c:
        model_cfg = ModelConfig(**c.restore(path / "model"))
    target = {"params": abstract_params(model_cfg)}
    # Onto this process's first device, whatever mesh (or number of processes) wrote the checkpoint.
    device = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
    with ocp.PyTreeCheckpointer() as c:
        restored = c.restore(
            path / "state",
            args=ocp.args.PyTreeRestore(
                item=target,
                restore_args=jax.tree.map(
                    lambda x: ocp.ArrayRestoreArgs(sharding=device, global_shape=x.shape, dtype=x.dtype), target
                ),
                partial_restore=True,
            ),
        )
    return model_cfg, restored["params"]
