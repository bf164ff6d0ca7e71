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


def paged_sampler_memory(
    model_cfg: ModelConfig,
    *,
    pool_pages: int,
    page_size: int,
    slots: int,
    rows: int,
    prompt_len: int,
    max_new_tokens: int,
    pairs: int | None = None,
) -> dict:
    """Memory of the paged sampler on one device (``sampling.paged``), from XLA's compiled memory analysis
    of a real decode round (``paged.round_``) lowered on abstract shapes: nothing is allocated.

    ``pairs``: the round's pair-list size (default: one page per pool page, the largest a round of a full
    pool reads). Returns bytes: ``pool`` (the page pool), ``weights`` (the sampler's layout),
    ``arguments`` (weights + pool + slot state + outputs), ``outputs``, ``aliased`` (donated buffers
    reused), ``temp`` (the step's temporaries: gathered pages, logits, ...), ``peak`` = arguments +
    outputs - aliased + temp. With a train state resident on the same device (the trainer's
    ``train_step_memory``'s ``arguments``), both together need that plus this ``peak``."""
    from jaxrlvr.sampling import inference, paged
    from jaxrlvr.sampling.sampler import Sampler
    from jaxrlvr.sampling.strategies import SamplingParams

    sampler = Sampler(model_cfg, SamplingParams(), max_new_tokens=max_new_tokens, pad_id=0)
    ip = jax.eval_shape(functools.partial(inference.prepare_params, model_cfg), abstract_params(model_cfg))
    pool, slots_, out, first = jax.eval_shape(lambda: paged.init(sampler, slots, pool_pages, page_size, rows))
    i32 = lambda *shape: jax.ShapeDtypeStruct(shape, jnp.int32)  # noqa: E731
    cols = -(-prompt_len // page_size) + -(-(page_size + max_new_tokens) // page_size)  # page-table width
    args = (
        ip, pool, slots_, out, first, jax.ShapeDtypeStruct((2,), jnp.uint32), i32(4), i32(slots, cols),
        jax.ShapeDtypeStruct((slots,), jnp.bool_), i32(slots), i32(slots), i32(slots), i32(slots), i32(slots),
        i32(), i32(),
    )  # fmt: skip
    fn = jax.jit(functools.partial(paged.round_, sampler, pairs=int(pairs or pool_pages)), donate_argnums=(1, 2, 3))
    mem = fn.lower(*args).compile().memory_analysis()
    nbytes = lambda tree: sum(math.prod(x.shape) * jnp.dtype(x.dtype).itemsize for x in jax.tree.leaves(tree))  # noqa: E731
    arguments = int(mem.argument_size_in_bytes)
    outputs = int(mem.output_size_in_bytes)
    aliased = int(mem.alias_size_in_bytes)
    temp = int(mem.temp_size_in_bytes)
    return {
        "pool": nbytes(pool),
        "weights": nbytes(ip),
        "arguments": arguments,
        "outputs": outputs,
        "aliased": aliased,
        "temp": temp,
        "peak": arguments + outputs - aliased + temp,
    }
