"""Flax-side model checkpoints: ``DIR/model_config.json`` + ``DIR/params`` (an orbax PyTree checkpoint).

This is the format `python -m conversion.hf_to_flax` writes and `conversion.flax_to_hf` reads; trainer
checkpoints store params the same way inside their step folders.
"""

from __future__ import annotations

import dataclasses
import json
import os
import pathlib

import jax

from jaxrlvr.models.config import ModelConfig

CONFIG_FILE = "model_config.json"
PARAMS_DIR = "params"


def save_params(path: str | os.PathLike, config: ModelConfig, params: dict, *, force: bool = False) -> pathlib.Path:
    """Writes the model config and params; an existing checkpoint is an error unless ``force``."""
    import orbax.checkpoint as ocp

    path = pathlib.Path(path).absolute()
    path.mkdir(parents=True, exist_ok=True)
    (path / CONFIG_FILE).write_text(json.dumps(dataclasses.asdict(config), indent=2) + "\n")
    with ocp.StandardCheckpointer() as ckptr:
        ckptr.save(path / PARAMS_DIR, params, force=force)
    return path


def read_config(path: str | os.PathLike) -> ModelConfig:
    path = pathlib.Path(path)
    f = path / CONFIG_FILE
    if not f.is_file():
        raise FileNotFoundError(f"no {CONFIG_FILE} in {path}: not a jaxrlvr model checkpoint")
    raw = json.loads(f.read_text())
    known = {fld.name for fld in dataclasses.fields(ModelConfig)}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise ValueError(f"{f} has unknown ModelConfig fields {unknown}")
    return ModelConfig(**raw)


def load_params(path: str | os.PathLike, *, shardings=None) -> tuple[ModelConfig, dict]:
    """Restores (config, params); ``shardings`` (a tree of jax.sharding.Sharding) places them on a mesh."""
    import orbax.checkpoint as ocp

    from jaxrlvr.models.model import abstract_params

    path = pathlib.Path(path).absolute()
    config = read_config(path)
    if not (path / PARAMS_DIR).is_dir():
        raise FileNotFoundError(f"no {PARAMS_DIR}/ folder in {path}")
    target = abstract_params(config)
    if shardings is not None:
        target = jax.tree.map(lambda a, s: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=s), target, shardings)
    with ocp.StandardCheckpointer() as ckptr:
        params = ckptr.restore(path / PARAMS_DIR, target)
    return config, params
