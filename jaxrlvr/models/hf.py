"""Hugging Face safetensors <-> jaxrlvr (Flax) parameters for the Qwen2, Llama 3 and Qwen3 families.

The three families share tensor names; the key map adds ``self_attn.{q,k,v}_proj.bias`` when
``config.attention_bias`` (Qwen2), ``self_attn.{q,k}_norm.weight`` when ``config.qk_norm`` (Qwen3), and
``lm_head.weight`` when the head is untied.

The key map is strict in both directions: every Flax parameter slot must be filled exactly once and every
HF tensor consumed (``lm_head.weight`` of a tied model is the one tolerated extra); a missing or extra key,
a wrong shape or a non-float dtype is an error naming the tensor and its file. Tensors are read one at a
time from (possibly sharded) safetensors files and written into preallocated layer-stacked arrays, so the
host holds one copy of the model plus one tensor, never two copies.

Transforms (HF ``nn.Linear`` stores ``[out, in]``; Flax kernels are ``[in, ...out]``)::

    q/k/v_proj.weight [N*Hd, D] -> kernel [D, N, Hd]      q/k/v_proj.bias [N*Hd] -> bias [N, Hd]
    o_proj.weight     [D, H*Hd] -> kernel [H, Hd, D]      {gate,up,down}_proj.weight -> transpose
    lm_head.weight    [V, D]    -> lm_head [D, V]         embeddings and norms (q/k norms too) unchanged

Command lines: ``python -m conversion.hf_to_flax`` / ``conversion.flax_to_hf`` (or ``jaxrlvr-convert``).
"""

from __future__ import annotations

import dataclasses
import json
import os
import pathlib
from collections.abc import Callable, Iterator

import ml_dtypes
import numpy as np

from jaxrlvr.models.config import ModelConfig

_FLOAT_DTYPES = {
    "float32": np.dtype(np.float32),
    "bfloat16": np.dtype(ml_dtypes.bfloat16),
    "float16": np.dtype(np.float16),
}


class CheckpointError(ValueError):
    """A Hugging Face checkpoint folder or tensor does not match the layout its config.json describes."""


@dataclasses.dataclass(frozen=True)
class Entry:
    """One HF tensor <-> one slot of a Flax parameter (``layer`` indexes the stacked layer axis)."""

    hf_name: str
    flax_path: tuple[str, ...]
    layer: int | None
    hf_shape: tuple[int, ...]
    to_flax: Callable[[np.ndarray], np.ndarray]
    to_hf: Callable[[np.ndarray], np.ndarray]


def key_map(cfg: ModelConfig) -> list[Entry]:
    """Every (HF tensor, Flax slot) pair of a model of ``cfg``'s family, in HF order."""
    d, i, h, kv, hd, v = (
        cfg.hidden_size,
        cfg.intermediate_size,
        cfg.num_heads,
        cfg.num_kv_heads,
        cfg.head_dim,
        cfg.vocab_size,
    )
    ident = lambda x: x
    out: list[Entry] = [Entry("model.embed_tokens.weight", ("embed", "embedding"), None, (v, d), ident, ident)]

    def lin_in(n):  # [n*hd, d] <-> [d, n, hd]
        return (lambda w: w.T.reshape(d, n, hd)), (lambda k: k.reshape(d, n * hd).T)

    def bias(n):
        return (lambda b: b.reshape(n, hd)), (lambda b: b.reshape(n * hd))

    transpose = (lambda w: w.T), (lambda k: k.T)
    for layer in range(cfg.num_layers):
        p = f"model.layers.{layer}."
        for proj, n in (("q_proj", h), ("k_proj", kv), ("v_proj", kv)):
            out.append(
                Entry(
                    p + f"self_attn.{proj}.weight",
                    ("layers", "attn", proj, "kernel"),
                    layer,
                    (n * hd, d),
                    *lin_in(n),
                )
            )
            if cfg.attention_bias:
                out.append(
                    Entry(
                        p + f"self_attn.{proj}.bias",
                        ("layers", "attn", proj, "bias"),
                        layer,
                        (n * hd,),
                        *bias(n),
                    )
                )
        if cfg.qk_norm:
            for norm in ("q_norm", "k_norm"):
                out.append(
                    Entry(p + f"self_attn.{norm}.weight", ("layers", "attn", norm, "scale"), layer, (hd,), ident, ident)
                )
        out.append(
            Entry(
                p + "self_attn.o_proj.weight",
                ("layers", "attn", "o_proj", "kernel"),
                layer,
                (d, h * hd),
                lambda w: w.T.reshape(h, hd, d),
                lambda k: k.reshape(h * hd, d).T,
            )
        )
        out.append(
            Entry(
                p + "mlp.gate_proj.weight",
                ("layers", "mlp", "gate_proj", "kernel"),
                layer,
                (i, d),
                *transpose,
            )
        )
        out.append(Entry(p + "mlp.up_proj.weight", ("layers", "mlp", "up_proj", "kernel"), layer, (i, d), *transpose))
        out.append(
            Entry(
                p + "mlp.down_proj.weight",
                ("layers", "mlp", "down_proj", "kernel"),
                layer,
                (d, i),
                *transpose,
            )
        )
        out.append(Entry(p + "input_layernorm.weight", ("layers", "input_norm", "scale"), layer, (d,), ident, ident))
        out.append(
            Entry(
                p + "post_attention_layernorm.weight",
                ("layers", "post_attn_norm", "scale"),
                layer,
                (d,),
                ident,
                ident,
            )
        )
    out.append(Entry("model.norm.weight", ("final_norm", "scale"), None, (d,), ident, ident))
    if not cfg.tie_word_embeddings:
        out.append(Entry("lm_head.weight", ("lm_head",), None, (v, d), *transpose))
    return out


def _flax_shapes(cfg: ModelConfig) -> dict[tuple[str, ...], tuple[int, ...]]:
    import jax

    from jaxrlvr.models.model import abstract_params

    flat = jax.tree_util.tree_flatten_with_path(abstract_params(cfg))[0]
    return {tuple(k.key for k in path): tuple(leaf.shape) for path, leaf in flat}


# ------------------------------------------------------------------------------------------------ reading
def read_hf_config(path: str | os.PathLike) -> ModelConfig:
    path = pathlib.Path(path)
    if not path.is_dir():
        raise CheckpointError(f"checkpoint folder not found: {path}")
    cfg_file = path / "config.json"
    if not cfg_file.is_file():
        raise CheckpointError(f"no config.json in {path}: not a Hugging Face checkpoint folder")
    try:
        hf = json.loads(cfg_file.read_text())
    except json.JSONDecodeError as e:
        raise CheckpointError(f"{cfg_file} is not valid JSON: {e}") from None
    return ModelConfig.from_hf_config(hf)


def _safetensors_files(path: pathlib.Path) -> list[pathlib.Path]:
    index = path / "model.safetensors.index.json"
    single = path / "model.safetensors"
    if index.is_file():
        try:
            weight_map = json.loads(index.read_text())["weight_map"]
        except (json.JSONDecodeError, KeyError) as e:
            raise CheckpointError(f"{index} is not a valid safetensors index ({e})") from None
        files = sorted(set(weight_map.values()))
        missing = [f for f in files if not (path / f).is_file()]
        if missing:
            raise CheckpointError(f"{index} names shard files that do not exist: {missing}")
        return [path / f for f in files]
    if single.is_file():
        return [single]
    raise CheckpointError(f"no model.safetensors or model.safetensors.index.json in {path}")


def iter_hf_tensors(path: str | os.PathLike) -> Iterator[tuple[str, np.ndarray, pathlib.Path]]:
    """Yields (name, numpy array, file) one tensor at a time from a checkpoint folder."""
    from safetensors import safe_open

    for f in _safetensors_files(pathlib.Path(path)):
        try:
            handle = safe_open(str(f), framework="numpy")
        except Exception as e:  # safetensors raises its own error types for truncated/corrupt headers
            raise CheckpointError(f"cannot read safetensors file {f}: {e}") from None
        with handle as sf:
            for name in sf.keys():
                try:
                    arr = sf.get_tensor(name)
                except Exception as e:
                    raise CheckpointError(f"cannot read tensor {name!r} from {f} (truncated file?): {e}") from None
                yield name, arr, f


def load_hf_checkpoint(path: str | os.PathLike, dtype=None) -> tuple[ModelConfig, dict]:
    """Loads a local HF checkpoint folder (Qwen2, Llama 3 or Qwen3) into jaxrlvr parameters (jax arrays).

    Args:
      path: folder with config.json and model.safetensors (or a sharded index).
      dtype: parameter dtype (float32, bfloat16, float16 as numpy/jax dtype or name); None keeps the
        checkpoint's own dtype, which makes HF -> Flax -> HF bit-identical.
    Returns:
      (ModelConfig with ``param_dtype``/``dtype`` set to the loaded dtype, params).
    """
    import jax.numpy as jnp

    path = pathlib.Path(path)
    cfg = read_hf_config(path)
    entries = {e.hf_name: e for e in key_map(cfg)}
    shapes = _flax_shapes(cfg)
    target = None if dtype is None else np.dtype(dtype)
    if target is not None and target not in _FLOAT_DTYPES.values():
        raise CheckpointError(f"unsupported dtype {dtype!r}; use one of {sorted(_FLOAT_DTYPES)}")

    arrays: dict[tuple[str, ...], np.ndarray] = {}
    filled: set[tuple[tuple[str, ...], int | None]] = set()
    for name, arr, f in iter_hf_tensors(path):
        if name not in entries:
            if name == "lm_head.weight" and cfg.tie_word_embeddings:
                continue  # tied: the head is the embedding; some exporters still write it
            raise CheckpointError(
                f"unexpected tensor {name!r} in {f} (not part of a {cfg.model_type} model with this config.json)"
            )
        e = entries[name]
        if arr.dtype not in _FLOAT_DTYPES.values():
            raise CheckpointError(f"tensor {name!r} in {f} has dtype {arr.dtype}, expected a float dtype")
        if tuple(arr.shape) != e.hf_shape:
            raise CheckpointError(
                f"tensor {name!r} in {f} has shape {tuple(arr.shape)}, expected {e.hf_shape} from config.json"
            )
        key = (e.flax_path, e.layer)
        if key in filled:
            raise CheckpointError(f"tensor {name!r} appears twice (second time in {f})")
        if target is None:
            target = arr.dtype
        if e.flax_path not in arrays:
            arrays[e.flax_path] = np.empty(shapes[e.flax_path], dtype=target)
        value = e.to_flax(arr).astype(target, copy=False)
        if e.layer is None:
            arrays[e.flax_path][...] = value
        else:
            arrays[e.flax_path][e.layer] = value
        filled.add(key)
        del arr, value

    missing = [e.hf_name for e in entries.values() if (e.flax_path, e.layer) not in filled]
    if missing:
        more = f" and {len(missing) - 5} more" if len(missing) > 5 else ""
        raise CheckpointError(f"checkpoint {path} is missing tensors: {missing[:5]}{more}")

    params: dict = {}
    for fp in sorted(arrays):
        node = params
        for k in fp[:-1]:
            node = node.setdefault(k, {})
        node[fp[-1]] = jnp.asarray(arrays.pop(fp))  # frees the host copy leaf by leaf
    name = next(k for k, v in _FLOAT_DTYPES.items() if v == target)
    cfg = dataclasses.replace(cfg, param_dtype=name, dtype=name)
    return cfg, params


# ------------------------------------------------------------------------------------------------ writing
def _flat_params(params: dict) -> dict[tuple[str, ...], object]:
    import jax

    flat = jax.tree_util.tree_flatten_with_path(params)[0]
    return {tuple(k.key for k in path): leaf for path, leaf in flat}


def save_hf_checkpoint(
    config: ModelConfig,
    params: dict,
    path: str | os.PathLike,
    *,
    max_shard_bytes: int = 5 * 1024**3,
) -> pathlib.Path:
    """Writes config.json and model.safetensors (or shards + index) that transformers loads.

    Tensors keep the params' dtype. Shards are written as they fill, so the host holds at most one shard
    of converted tensors besides the params.
    """
    from safetensors.numpy import save_file

    path = pathlib.Path(path)
    path.mkdir(parents=True, exist_ok=True)
    flat = _flat_params(params)
    expected = _flax_shapes(config)
    if set(flat) != set(expected):
        extra, missing = sorted(set(flat) - set(expected)), sorted(set(expected) - set(flat))
        raise CheckpointError(f"params do not match the config: missing {missing}, unexpected {extra}")
    for k, shape in expected.items():
        if tuple(flat[k].shape) != shape:
            raise CheckpointError(f"parameter {'/'.join(k)} has shape {tuple(flat[k].shape)}, expected {shape}")

    dtypes = {np.dtype(v.dtype) for v in flat.values()}
    if len(dtypes) != 1:
        raise CheckpointError(f"params mix dtypes {sorted(map(str, dtypes))}; cast them to one dtype first")
    only = dtypes.pop()
    dtype_name = next(k for k, v in _FLOAT_DTYPES.items() if v == only)
    hf_cfg = dataclasses.replace(config, param_dtype=dtype_name).to_hf_config()
    (path / "config.json").write_text(json.dumps(hf_cfg, indent=2) + "\n")

    shards: list[dict[str, np.ndarray]] = [{}]
    size = 0
    written: list[tuple[str, list[str]]] = []

    def flush():
        nonlocal size
        if not shards[-1]:
            return
        tmp_name = f"shard-{len(written):05d}.safetensors"
        save_file(shards[-1], str(path / tmp_name), metadata={"format": "pt"})
        written.append((tmp_name, list(shards[-1])))
        shards[-1] = {}
        size = 0

    # Leaf-major order: each stacked leaf is brought to the host once and written layer by layer.
    current: tuple[tuple[str, ...], np.ndarray] | None = None
    for e in sorted(key_map(config), key=lambda e: (e.flax_path, e.layer or 0)):
        if current is None or current[0] != e.flax_path:
            current = (e.flax_path, np.asarray(flat[e.flax_path]))
        leaf = current[1]
        t = np.ascontiguousarray(e.to_hf(leaf if e.layer is None else leaf[e.layer]))
        if size and size + t.nbytes > max_shard_bytes:
            flush()
        shards[-1][e.hf_name] = t
        size += t.nbytes
    flush()

    for old in list(path.glob("model*.safetensors")) + [path / "model.safetensors.index.json"]:
        if old.exists() and old.name not in {w[0] for w in written}:
            old.unlink()
    if len(written) == 1:
        os.replace(path / written[0][0], path / "model.safetensors")
    else:
        n = len(written)
        weight_map = {}
        for j, (tmp, names) in enumerate(written):
            final = f"model-{j + 1:05d}-of-{n:05d}.safetensors"
            os.replace(path / tmp, path / final)
            weight_map.update({name: final for name in names})
        total = sum(int(np.prod(v.shape)) * np.dtype(v.dtype).itemsize for v in flat.values())
        (path / "model.safetensors.index.json").write_text(
            json.dumps({"metadata": {"total_size": total}, "weight_map": weight_map}, indent=2) + "\n"
        )
    return path
