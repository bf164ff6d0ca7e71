"""Functional entry points of the model: pure functions of (config, params, arrays).

``params`` is the plain parameter tree (no ``{"params": ...}`` wrapper, no partitioning boxes).
"""

from __future__ import annotations

import functools

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxrlvr.models.config import ModelConfig
from jaxrlvr.models.decoder import Cache, Decoder, positions_from_mask

Array = jax.Array


def _dummy_inputs():
    ids = jnp.zeros((1, 1), jnp.int32)
    return ids, ids, jnp.ones((1, 1), jnp.int32)


@functools.partial(jax.jit, static_argnums=0)
def init_params(config: ModelConfig, rng: Array) -> dict:
    """Random parameters (normal(0.02) matrices, unit norms, zero biases) in ``config.param_dtype``.

    Jitted (one compiled initialiser per config): eager linen initialisation dispatches op by op.
    """
    boxed = Decoder(config).init(rng, *_dummy_inputs(), method=Decoder.init_all)["params"]
    return nn.meta.unbox(boxed)


def abstract_params(config: ModelConfig) -> dict:
    """``jax.ShapeDtypeStruct`` tree of the parameters; allocates nothing."""
    return jax.eval_shape(lambda: init_params(config, jax.random.key(0)))


def param_logical_axes(config: ModelConfig) -> dict:
    """Tree (same structure as the params) of logical axis-name tuples, e.g. ('layers', 'embed', 'mlp')."""
    boxed = jax.eval_shape(
        lambda: Decoder(config).init(jax.random.key(0), *_dummy_inputs(), method=Decoder.init_all)["params"]
    )
    return jax.tree.map(lambda b: tuple(b.names), boxed, is_leaf=lambda x: isinstance(x, nn.Partitioned))


def hidden_states(
    config: ModelConfig,
    params: dict,
    input_ids_BT: Array,
    attention_mask_BT: Array | None = None,
    *,
    positions_BT: Array | None = None,
) -> Array:
    """Final-norm hidden states [B, T, D] (compute dtype) for full sequences, no cache.

    ``attention_mask_BT`` (1 = real token) defaults to all ones; rotary positions default to
    ``cumsum(mask) - 1`` so left-padded rows are numbered from their first real token.
    """
    if attention_mask_BT is None:
        attention_mask_BT = jnp.ones(input_ids_BT.shape, jnp.int32)
    if positions_BT is None:
        positions_BT = positions_from_mask(attention_mask_BT)
    h, _ = Decoder(config).apply({"params": params}, input_ids_BT, positions_BT, attention_mask_BT)
    return h


def lm_logits(config: ModelConfig, params: dict, h_BTD: Array) -> Array:
    """Float32 logits [B, T, V] from hidden states (tied or untied head)."""
    return Decoder(config).apply({"params": params}, h_BTD, method=Decoder.logits)


def forward(
    config: ModelConfig,
    params: dict,
    input_ids_BT: Array,
    attention_mask_BT: Array | None = None,
    *,
    positions_BT: Array | None = None,
) -> Array:
    """Float32 logits [B, T, V]. Padded positions produce finite values that callers must mask."""
    h = hidden_states(config, params, input_ids_BT, attention_mask_BT, positions_BT=positions_BT)
    return lm_logits(config, params, h)


def init_cache(config: ModelConfig, batch: int, max_len: int, dtype=None) -> Cache:
    """A zeroed KV cache {"k", "v"}: [L, B, max_len, KV, Hd] in ``dtype`` (default: the compute dtype)."""
    shape = (config.num_layers, batch, max_len, config.num_kv_heads, config.head_dim)
    dtype = dtype or config.jnp_dtype
    return {"k": jnp.zeros(shape, dtype), "v": jnp.zeros(shape, dtype)}


def forward_with_cache(
    config: ModelConfig,
    params: dict,
    input_ids_BT: Array,
    positions_BT: Array,
    kv_mask_BS: Array,
    cache: Cache,
    cache_index: Array | int,
    *,
    return_logits: bool = True,
) -> tuple[Array, Cache]:
    """Runs T new tokens written at cache slots [cache_index, cache_index + T); prefill and decode alike.

    ``kv_mask_BS`` marks the cache slots holding real tokens *after* this call's write (so it includes the
    new tokens); a query attends slots ``<= its own slot`` that the mask allows. Returns float32 logits
    [B, T, V] (or hidden states [B, T, D] with ``return_logits=False``) and the updated cache.
    """
    model = Decoder(config)
    h, new_cache = model.apply({"params": params}, input_ids_BT, positions_BT, kv_mask_BS, cache, cache_index)
    if not return_logits:
        return h, new_cache
    return model.apply({"params": params}, h, method=Decoder.logits), new_cache


@functools.partial(jax.checkpoint, static_argnums=(0, 4))
def _chunk_logp_entropy(config, params, h_BCD, targets_BC, temperature):
    logits = lm_logits(config, params, h_BCD) / temperature
    lse = jax.nn.logsumexp(logits, axis=-1)
    logp_t = jnp.take_along_axis(logits, targets_BC[..., None], axis=-1)[..., 0] - lse
    probs = jnp.exp(logits - lse[..., None])
    entropy = lse - jnp.sum(probs * logits, axis=-1)
    return logp_t, entropy


def token_logprobs_and_entropy(
    config: ModelConfig,
    params: dict,
    h_BTD: Array,
    targets_BT: Array,
    *,
    temperature: float = 1.0,
    chunk_size: int = 256,
) -> tuple[Array, Array]:
    """log softmax(logits / T)[target] and the entropy (nats) of softmax(logits / T), both float32 [B, T].

    Logits are built ``chunk_size`` positions at a time inside a rematerialised scan, so neither the
    forward nor the backward pass ever holds B*T*V float32 values (only B*chunk*V).
    """
    return map_position_chunks(
        lambda h, tg: _chunk_logp_entropy(config, params, h, tg, float(temperature)), h_BTD, targets_BT, chunk_size
    )


def map_position_chunks(fn, h_BTD: Array, targets_BT: Array, chunk_size: int) -> tuple[Array, ...]:
    """``fn(h_BCD, targets_BC) -> tuple of [B, C] arrays`` applied ``chunk_size`` positions at a time (a scan
    over chunks, the last one zero-padded); returns the tuple's arrays as [B, T]. Per-position statistics
    that need the [B, C, V] logits (log-probs, entropies, gradient proxies) use it to bound memory."""
    b, t, d = h_BTD.shape
    c = max(1, min(int(chunk_size), t))
    n = -(-t // c)
    pad = n * c - t
    if pad:
        h_BTD = jnp.pad(h_BTD, ((0, 0), (0, pad), (0, 0)))
        targets_BT = jnp.pad(targets_BT, ((0, 0), (0, pad)))
    h_NBCD = h_BTD.reshape(b, n, c, d).swapaxes(0, 1)
    tg_NBC = targets_BT.reshape(b, n, c).swapaxes(0, 1)
    _, outs = jax.lax.scan(lambda carry, xs: (carry, tuple(fn(xs[0], xs[1]))), None, (h_NBCD, tg_NBC))
    return tuple(o.swapaxes(0, 1).reshape(b, n * c)[:, :t] for o in outs)
