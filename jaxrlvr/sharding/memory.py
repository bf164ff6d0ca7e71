"""Memory planning of the sampler on a mesh (abstract shapes only; nothing is allocated). The train step's
plan lives with the train step (:func:`jaxrlvr.train.memory.train_step_memory`)."""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
from jax.sharding import Mesh

from jaxrlvr.models import ModelConfig, abstract_params
from jaxrlvr.sharding.sampler import cache_shardings, sampler_param_shardings

GIB = 1024**3


def sampler_cache_memory(mesh: Mesh, model_cfg: ModelConfig, batch: int, tokens: int) -> dict:
    """Bytes of the sampler's KV cache for ``batch`` rows of ``tokens`` slots (prompt + response), in
    total and per device under :func:`cache_shardings`, plus the decoding weights per device
    (:func:`sampler_param_shardings`). Abstract shapes only."""
    from jaxrlvr.sampling import inference

    chunks = inference.cache_chunks(tokens, 1, None, 1)  # one chunk of `tokens` slots: same bytes as any split
    cache = jax.eval_shape(lambda: inference.init_cache(model_cfg, batch, chunks))
    sh = cache_shardings(mesh, model_cfg, cache)

    def nbytes(tree, shardings):
        return sum(
            int(math.prod(s.shard_shape(x.shape))) * jnp.dtype(x.dtype).itemsize
            for x, s in zip(jax.tree.leaves(tree), jax.tree.leaves(shardings), strict=True)
        )

    total = sum(int(math.prod(x.shape)) * jnp.dtype(x.dtype).itemsize for x in jax.tree.leaves(cache))
    ip = jax.eval_shape(functools.partial(inference.prepare_params, model_cfg), abstract_params(model_cfg))
    return {
        "batch": batch,
        "tokens": tokens,
        "dtype": model_cfg.dtype,
        "cache_total": total,
        "cache_per_device": nbytes(cache, sh),
        "weights_per_device": nbytes(ip, sampler_param_shardings(mesh, model_cfg, ip)),
    }
