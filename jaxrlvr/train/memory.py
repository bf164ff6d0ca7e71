"""Memory planning of the sharded train step: XLA's compiled memory analysis of the real ``train_step_fn``
lowered on abstract shapes (nothing is allocated). ``scripts/memory_plan.py`` prints it."""

from __future__ import annotations

import math
import time

import jax
import jax.numpy as jnp

from jaxrlvr import algos, sharding
from jaxrlvr.models import abstract_params
from jaxrlvr.train.step import TrainState, train_step_fn


def _abstract(shape, dtype, sharding):
    return jax.ShapeDtypeStruct(shape, dtype, sharding=sharding)


def train_step_memory(
    pl: sharding.Placement,
    *,
    algo_cfg,
    tx,
    mini_batch: int,
    prompt_len: int,
    response_len: int,
    micro_batch: int,
    opt_dtype=None,
    temperature: float = 1.0,
    with_ref_logp: bool = False,
    tokens_per_device: int = 0,
) -> dict:
    """Per-device memory of one sharded train step, from XLA's compiled memory analysis of the real
    ``train_step_fn`` lowered on abstract shapes (nothing is allocated).

    ``tokens_per_device`` > 0 plans the packed step instead (``train.packing``): micro-batches of one row of
    that many slots per data-parallel device (two micro-batches, the loop as it runs), with the mini-batch's
    ``[B, R]`` loss arrays, and as many response slots as slots (the most the output layer can take: a bound,
    since prompt slots never reach it); ``micro_batch`` is then ignored.

    ``opt_dtype``: dtype of the optimizer moments (default: the param dtype, as ``tx.init(params)``
    gives). Returns bytes: ``arguments`` (state + batch), ``outputs``, ``aliased`` (donated state reused
    for the new state), ``temp`` (activations, gradients, workspace), ``peak`` = arguments + outputs -
    aliased + temp, and the wall time of lowering and compiling.
    """
    cfg = pl.model_cfg
    params = abstract_params(cfg)
    opt_params = params
    if opt_dtype is not None:
        opt_params = jax.tree.map(lambda p: jax.ShapeDtypeStruct(p.shape, opt_dtype), params)
    state = jax.eval_shape(
        lambda p, q: TrainState(
            step=jnp.int32(0),
            params=p,
            opt_state=tx.init(q),
            knobs=algos.initial_step_state(algo_cfg),
            ref_params=None,
        ),
        params,
        opt_params,
    )
    state = pl.abstract_state(state, tx)
    b, t = mini_batch, prompt_len + response_len
    bs = pl.batch
    if tokens_per_device:
        micro_batch = sharding.batch_divisor(pl.mesh)
        rows = (2 * micro_batch, tokens_per_device)
        # every slot a response slot: the upper bound of the gathered output layer (train.packing.response_width)
        batch = {k: _abstract(rows, jnp.int32, bs) for k in ("input_ids", "segment_ids", "positions")}
        batch |= {k: _abstract(rows, jnp.int32, bs) for k in ("resp_slots", "targets")}
        batch["token_index"] = _abstract((b, response_len), jnp.int32, bs)
        batch["micro_index"] = _abstract((b,), jnp.int32, bs)
        batch["response_len"] = _abstract((b,), jnp.int32, bs)
    else:
        batch = {k: _abstract((b, t), jnp.int32, bs) for k in ("input_ids", "attention_mask")}
    batch |= {
        "old_logp": _abstract((b, response_len), jnp.float32, bs),
        "adv": _abstract((b, response_len), jnp.float32, bs),
        "mask": _abstract((b, response_len), jnp.int32, bs),
        "truncated": _abstract((b,), jnp.bool_, bs),
    }
    if with_ref_logp:
        batch["ref_logp"] = _abstract((b, response_len), jnp.float32, bs)
    rng = jax.eval_shape(lambda: jax.random.key(0))
    rng = jax.ShapeDtypeStruct(rng.shape, rng.dtype, sharding=pl.replicated)
    t0 = time.time()
    lowered = pl.lower_train_step(
        train_step_fn,
        state,
        batch,
        rng,
        model_cfg=cfg,
        algo_cfg=algo_cfg,
        tx=tx,
        prompt_len=prompt_len,
        temperature=temperature,
        micro_batch=micro_batch,
        lr_fn=None,
    )
    t1 = time.time()
    compiled = lowered.compile()
    t2 = time.time()
    ma = compiled.memory_analysis()
    args, outs = int(ma.argument_size_in_bytes), int(ma.output_size_in_bytes)
    alias, temp = int(ma.alias_size_in_bytes), int(ma.temp_size_in_bytes)
    state_bytes = sum(
        int(math.prod(x.sharding.shard_shape(x.shape))) * jnp.dtype(x.dtype).itemsize
        for x in jax.tree.leaves(state)
        if hasattr(x, "sharding") and not jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key)
    )
    return {
        "arguments": args,
        "outputs": outs,
        "aliased": alias,
        "temp": temp,
        "generated_code": int(ma.generated_code_size_in_bytes),
        "peak": args + outs - alias + temp,
        "state": state_bytes,
        "lower_s": t1 - t0,
        "compile_s": t2 - t1,
    }
