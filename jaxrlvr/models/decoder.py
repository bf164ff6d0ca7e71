"""The decoder of the Qwen2 / Llama 3 / Qwen3 families in Flax (linen), with an optional KV cache shared by
prefill and decode. The families differ only through ``ModelConfig`` fields: ``attention_bias`` (q/k/v
biases), ``qk_norm`` (a per-head RMSNorm on queries and keys before the rotary embedding), ``rope_scaling``
(Llama 3.1's frequency scaling, see :func:`rope_inv_freq`), ``head_dim`` and ``tie_word_embeddings``.

Parameter tree (``L`` = layers, stacked by ``nn.scan`` so compile time does not grow with depth)::

    embed/embedding                      [V, D]      ('vocab', 'embed')
    layers/input_norm/scale              [L, D]
    layers/attn/{q,k,v}_proj/kernel      [L, D, N, Hd]   N = heads (q) or kv heads (k, v)
    layers/attn/{q,k,v}_proj/bias        [L, N, Hd]      (attention_bias: Qwen2)
    layers/attn/{q,k}_norm/scale         [L, Hd]         (qk_norm: Qwen3)
    layers/attn/o_proj/kernel            [L, H, Hd, D]
    layers/post_attn_norm/scale          [L, D]
    layers/mlp/{gate,up}_proj/kernel     [L, D, I]
    layers/mlp/down_proj/kernel          [L, I, D]
    final_norm/scale                     [D]
    lm_head                              [D, V]      (untied models only)

Every parameter carries logical axis names (``nn.with_logical_partitioning``) for the sharding rules.

Attention masks: a query at cache slot ``q`` attends key slot ``s`` iff ``s <= q`` and ``kv_mask[b, s]``.
Without a cache the "slots" are the input positions and ``kv_mask`` is the attention mask, so left padding
is never attended to; rotary positions come from the mask (``cumsum(mask) - 1``), not from the column.
With a cache (``cache_index`` = slot of the first input token), prefill and one-token decode run the same
code: the new keys/values are written at ``cache_index`` and attention reads the cache.
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxrlvr.models.config import ModelConfig, RopeScaling
from jaxrlvr.models.partitioning import constrain

Array = jax.Array
Cache = dict[str, Array]  # {"k": [L, B, S, KV, Hd], "v": [L, B, S, KV, Hd]}

_NEG_INF = -1e30  # finite: a fully masked (padding) query row gives uniform weights, never NaN


def rope_inv_freq(head_dim: int, theta: float, scaling: RopeScaling | None = None) -> Array:
    """Rotary inverse frequencies [Hd/2] in float32: ``theta ** (-2i / Hd)``, then, with a ``llama3``
    ``scaling``, low frequencies (wavelength > original context / low_freq_factor) divided by ``factor``,
    high ones (wavelength < original context / high_freq_factor) kept, and the band between interpolated
    linearly in ``original context / wavelength``."""
    inv_freq = 1.0 / (theta ** (jnp.arange(0, head_dim, 2, dtype=jnp.float32) / head_dim))
    if scaling is None:
        return inv_freq
    ctx = float(scaling.original_max_position_embeddings)
    lo, hi, factor = scaling.low_freq_factor, scaling.high_freq_factor, scaling.factor
    wavelen = 2 * jnp.pi / inv_freq
    smooth = (ctx / wavelen - lo) / (hi - lo)
    interpolated = (1 - smooth) * inv_freq / factor + smooth * inv_freq
    scaled = jnp.where(wavelen > ctx / lo, inv_freq / factor, inv_freq)
    return jnp.where((wavelen <= ctx / lo) & (wavelen >= ctx / hi), interpolated, scaled)


def rope_tables(
    positions_BT: Array, head_dim: int, theta: float, scaling: RopeScaling | None = None
) -> tuple[Array, Array]:
    """cos/sin tables [B, T, Hd] in float32 for the HF half-split rotary convention."""
    inv_freq = rope_inv_freq(head_dim, theta, scaling)
    freqs = positions_BT.astype(jnp.float32)[..., None] * inv_freq[None, None, :]  # [B, T, Hd/2]
    emb = jnp.concatenate([freqs, freqs], axis=-1)
    return jnp.cos(emb), jnp.sin(emb)


def apply_rope(x_BTNH: Array, cos_BTH: Array, sin_BTH: Array) -> Array:
    """Rotates [B, T, N, Hd] by the tables (x * cos + rotate_half(x) * sin), computed in float32."""
    x = x_BTNH.astype(jnp.float32)
    half = x.shape[-1] // 2
    rotated = jnp.concatenate([-x[..., half:], x[..., :half]], axis=-1)
    out = x * cos_BTH[:, :, None, :] + rotated * sin_BTH[:, :, None, :]
    return out.astype(x_BTNH.dtype)


def positions_from_mask(mask_BT: Array) -> Array:
    """Rotary positions of a left-padded batch: 0 at each row's first real token; 0 on padding."""
    return jnp.maximum(jnp.cumsum(mask_BT.astype(jnp.int32), axis=-1) - 1, 0)


class RMSNorm(nn.Module):
    eps: float
    dtype: Any
    param_dtype: Any

    @nn.compact
    def __call__(self, x):
        scale = self.param(
            "scale",
            nn.with_logical_partitioning(nn.initializers.ones, ("norm",)),
            (x.shape[-1],),
            self.param_dtype,
        )
        x32 = x.astype(jnp.float32)
        y = x32 * jax.lax.rsqrt(jnp.mean(x32 * x32, axis=-1, keepdims=True) + self.eps)
        scale = scale.astype(jnp.float32).reshape((1,) * (x.ndim - 1) + scale.shape)
        return (y * scale).astype(self.dtype)


def _dense(features, axis, kernel_axes, use_bias, cfg: ModelConfig, name, bias_axes=None):
    init = nn.initializers.normal(0.02)
    return nn.DenseGeneral(
        features=features,
        axis=axis,
        use_bias=use_bias,
        dtype=cfg.jnp_dtype,
        param_dtype=cfg.jnp_param_dtype,
        kernel_init=nn.with_logical_partitioning(init, kernel_axes),
        bias_init=nn.with_logical_partitioning(nn.initializers.zeros, bias_axes or ()),
        precision=None,
        name=name,
    )


class Attention(nn.Module):
    cfg: ModelConfig

    @nn.compact
    def __call__(self, x_BTD, cos, sin, kv_mask_BS, cache_index, layer_cache):
        cfg = self.cfg
        h, kv, hd = cfg.num_heads, cfg.num_kv_heads, cfg.head_dim
        q = _dense(
            (h, hd),
            -1,
            ("embed", "q_heads", "head_dim"),
            cfg.attention_bias,
            cfg,
            "q_proj",
            ("q_heads", "head_dim"),
        )(x_BTD)
        k = _dense(
            (kv, hd),
            -1,
            ("embed", "kv_heads", "head_dim"),
            cfg.attention_bias,
            cfg,
            "k_proj",
            ("kv_heads", "head_dim"),
        )(x_BTD)
        v = _dense(
            (kv, hd),
            -1,
            ("embed", "kv_heads", "head_dim"),
            cfg.attention_bias,
            cfg,
            "v_proj",
            ("kv_heads", "head_dim"),
        )(x_BTD)
        if cfg.qk_norm:  # Qwen3: RMSNorm over each head's features, before the rotary embedding
            q = RMSNorm(cfg.rms_norm_eps, cfg.jnp_dtype, cfg.jnp_param_dtype, name="q_norm")(q)
            k = RMSNorm(cfg.rms_norm_eps, cfg.jnp_dtype, cfg.jnp_param_dtype, name="k_norm")(k)
        q = apply_rope(q, cos, sin)
        k = apply_rope(k, cos, sin)

        b, t = x_BTD.shape[:2]
        if layer_cache is not None:
            k_all = jax.lax.dynamic_update_slice(
                layer_cache["k"], k.astype(layer_cache["k"].dtype), (0, cache_index, 0, 0)
            )
            v_all = jax.lax.dynamic_update_slice(
                layer_cache["v"], v.astype(layer_cache["v"].dtype), (0, cache_index, 0, 0)
            )
            new_cache = {"k": k_all, "v": v_all}
        else:
            k_all, v_all, new_cache = k, v, None
        s = k_all.shape[1]

        q_slots = cache_index + jnp.arange(t)
        allowed = (jnp.arange(s)[None, :] <= q_slots[:, None])[None] & (kv_mask_BS[:, None, :] > 0)  # [B,T,S]
        qg = q.reshape(b, t, kv, h // kv, hd)
        scores = jnp.einsum("btkgd,bskd->bkgts", qg, k_all.astype(q.dtype), preferred_element_type=jnp.float32) * (
            hd**-0.5
        )
        scores = jnp.where(allowed[:, None, None], scores, _NEG_INF)
        probs = jax.nn.softmax(scores, axis=-1).astype(cfg.jnp_dtype)
        out = jnp.einsum("bkgts,bskd->btkgd", probs, v_all.astype(cfg.jnp_dtype)).reshape(b, t, h, hd)
        out = _dense(cfg.hidden_size, (-2, -1), ("q_heads", "head_dim", "embed"), False, cfg, "o_proj")(out)
        return out, new_cache


class MLP(nn.Module):
    cfg: ModelConfig

    @nn.compact
    def __call__(self, x):
        cfg = self.cfg
        gate = _dense(cfg.intermediate_size, -1, ("embed", "mlp"), False, cfg, "gate_proj")(x)
        up = _dense(cfg.intermediate_size, -1, ("embed", "mlp"), False, cfg, "up_proj")(x)
        return _dense(cfg.hidden_size, -1, ("mlp", "embed"), False, cfg, "down_proj")(nn.silu(gate) * up)


class DecoderLayer(nn.Module):
    cfg: ModelConfig

    @nn.compact
    def __call__(self, x, layer_cache, cos, sin, kv_mask_BS, cache_index):
        cfg = self.cfg
        x = constrain(x, ("batch", "length", "embed_act"))  # a no-op outside a mesh placement
        norm = lambda name: RMSNorm(cfg.rms_norm_eps, cfg.jnp_dtype, cfg.jnp_param_dtype, name=name)
        attn_out, new_cache = Attention(cfg, name="attn")(
            norm("input_norm")(x), cos, sin, kv_mask_BS, cache_index, layer_cache
        )
        x = x + attn_out
        x = x + MLP(cfg, name="mlp")(norm("post_attn_norm")(x))
        return x, new_cache


class Decoder(nn.Module):
    """The decoder of every family. ``__call__`` returns (final-norm hidden states [B, T, D], new cache or None)."""

    cfg: ModelConfig

    def setup(self):
        cfg = self.cfg
        self.embed = nn.Embed(
            cfg.vocab_size,
            cfg.hidden_size,
            dtype=cfg.jnp_dtype,
            param_dtype=cfg.jnp_param_dtype,
            embedding_init=nn.with_logical_partitioning(nn.initializers.normal(0.02), ("vocab", "embed")),
        )
        layer_cls = DecoderLayer
        if cfg.remat != "none":
            policy = None if cfg.remat == "full" else jax.checkpoint_policies.checkpoint_dots_with_no_batch_dims
            layer_cls = nn.remat(DecoderLayer, prevent_cse=False, policy=policy)
        self.layers = nn.scan(
            layer_cls,
            variable_axes={"params": 0},
            split_rngs={"params": True},
            in_axes=(0, nn.broadcast, nn.broadcast, nn.broadcast, nn.broadcast),
            length=cfg.num_layers,
            metadata_params={nn.PARTITION_NAME: "layers"},
        )(cfg, name="layers")
        self.final_norm = RMSNorm(cfg.rms_norm_eps, cfg.jnp_dtype, cfg.jnp_param_dtype, name="final_norm")
        if not cfg.tie_word_embeddings:
            self.lm_head = self.param(
                "lm_head",
                nn.with_logical_partitioning(nn.initializers.normal(0.02), ("embed", "vocab")),
                (cfg.hidden_size, cfg.vocab_size),
                cfg.jnp_param_dtype,
            )

    def __call__(self, input_ids_BT, positions_BT, kv_mask_BS, cache=None, cache_index=0):
        cfg = self.cfg
        cos, sin = rope_tables(positions_BT, cfg.head_dim, cfg.rope_theta, cfg.rope_scaling)
        x = self.embed(input_ids_BT)
        x, new_cache = self.layers(x, cache, cos, sin, kv_mask_BS, cache_index)
        return self.final_norm(x), new_cache

    def logits(self, h_BTD):
        """LM head: float32 logits [..., V] (matmul accumulates in float32 whatever the compute dtype)."""
        w_DV = self.embed.embedding.T if self.cfg.tie_word_embeddings else self.lm_head
        return jnp.einsum("...d,dv->...v", h_BTD, w_DV.astype(h_BTD.dtype), preferred_element_type=jnp.float32)

    def init_all(self, input_ids_BT, positions_BT, kv_mask_BS):
        h, _ = self(input_ids_BT, positions_BT, kv_mask_BS)
        return self.logits(h)
