"""A decode-specialised decoder forward for the sampler: pure functions over a fused, per-layer parameter
layout, with a KV cache laid out for one-token attention.

The training model (``jaxrlvr.models.decoder``) stores layers stacked for ``nn.scan`` and q/k/v, gate/up as
separate kernels. Decoding one token per row is bound by reading weights (large models) or by the number
of XLA operations (small ones), so once per ``generate`` call :func:`prepare_params` rewrites the
parameters (one copy of the layer weights, in the compute dtype):

* q/k/v kernels concatenated into one ``wqkv`` and gate/up into one ``wgu`` (one matmul each);
* a kernel that widens (out > in) and is large is stored ``[out, in]``, the others ``[in, out]``: the
  layouts XLA:CPU's small-batch matmuls stream fastest (measured; GPUs do not care);
* layers unstacked into a tuple, so the decode step is an unrolled loop with no per-step slicing of
  stacked weights (and, on GPU, no while loop over layers);
* the LM head by the same rule (a large tied head is the embedding itself, ``[V, D]``: no copy).

The math is the model's: RMSNorm and rotary embedding in float32, matmuls in ``config.dtype``, attention
scores and softmax in float32, float32 logits. Tests check the cached logits against ``models.forward``.

KV cache: slots ``[0, P)`` hold the left-padded prompt, slot ``P + i - 1`` the i-th generated token. A row
attends slots ``start_B <= s <= current slot`` where ``start_B = P - prompt_length``, so padding is never
attended to; rotary positions count real tokens only (``models.positions_from_mask``). The slots are split
into *chunks*, separate arrays (:func:`cache_chunks`): chunk 0 holds the prompt and the first generated
tokens, the others the next ones. A decode step writes into one chunk and attends only chunks up to it, so
attention reads the filled part of the cache without slicing it (a slice of a loop-carried buffer is a
copy on XLA:CPU). A layer's cache is ``(k chunks, v chunks)``, with ``k [B, KV, Hd, C]`` (keys transposed:
the one-query score product contracts the contiguous head dim and streams the cache) and
``v [B, KV, C, Hd]``, in the compute dtype.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from jaxrlvr.models.config import ModelConfig
from jaxrlvr.models.decoder import apply_rope, rope_tables

Array = jax.Array
Cache = tuple[tuple[tuple[Array, ...], tuple[Array, ...]], ...]

_NEG_INF = -1e30
_PREFILL_QUERY_BLOCK = 512  # prefill attention scores are [P, H, 512, <= T] at a time


_TRANSPOSE_MIN_SIZE = 1 << 20
_CPU_KERNEL_MIN_SIZE = 1 << 16  # weights smaller than this stay with XLA's fused matmuls
LAYOUTS = ("auto", "out_in")


def _out_in(n_in: int, n_out: int, layout: str = "auto") -> bool:
    """Whether a [n_in -> n_out] kernel is stored [out, in] (else [in, out]): every kernel with layout
    ``"out_in"`` (the CPU kernel's layout), else the large widening ones (XLA:CPU's fastest choice)."""
    return layout == "out_in" or (n_out > n_in and n_in * n_out >= _TRANSPOSE_MIN_SIZE)


def _kernel(w_IO: Array, dtype, layout: str) -> Array:
    n_in, n_out = w_IO.shape
    return (w_IO.T if _out_in(n_in, n_out, layout) else w_IO).astype(dtype)


def _linear(x: Array, w: Array, *, out_in: bool, cpu_kernel: bool = False) -> Array:
    """x [..., in] times a kernel stored [out, in] (``out_in``) or [in, out].

    Accumulates in float32 and returns the input dtype: XLA:CPU only has a native bf16 x bf16 -> f32
    matmul; asking for a bf16 result makes it convert the whole weight to f32 every call. With
    ``cpu_kernel`` a large float32 [out, in] weight goes through ``jaxrlvr.kernels.small_matmul`` (the
    decode step on CPU; the caller checked ``kernels.available()``).
    """
    if cpu_kernel and out_in and w.size >= _CPU_KERNEL_MIN_SIZE and w.dtype == x.dtype == jnp.float32:
        from jaxrlvr import kernels

        y = kernels.small_matmul(x.reshape(-1, x.shape[-1]), w)
        return y.reshape(x.shape[:-1] + (w.shape[0],))
    spec = "...i,oi->...o" if out_in else "...i,io->...o"
    return jnp.einsum(spec, x, w, preferred_element_type=jnp.float32).astype(x.dtype)


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class LayerParams:
    """One decoder layer in the inference layout (kernels [in, out] or [out, in], see ``_out_in``)."""

    ln1: Array  # [D]
    wqkv: Array  # D -> (H + 2 KV) Hd
    bqkv: Array | None  # [(H + 2 KV) Hd]
    q_norm: Array | None  # [Hd] (config.qk_norm: Qwen3)
    k_norm: Array | None  # [Hd]
    wo: Array  # H Hd -> D
    ln2: Array  # [D]
    wgu: Array  # D -> 2 I  (gate features, then up features)
    wd: Array  # I -> D


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class InferenceParams:
    """Parameters rewritten for sampling by :func:`prepare_params`."""

    embed: Array  # [V, D] (param dtype)
    lm_head: Array | None  # D -> V kernel in the compute dtype; None: use the embedding ([V, D]) itself
    final_norm: Array  # [D]
    layers: tuple[LayerParams, ...]
    layout: str = dataclasses.field(default="auto", metadata=dict(static=True))  # see ``prepare_params``


def prepare_params(config: ModelConfig, params: dict, layout: str = "auto") -> InferenceParams:
    """Model params (``models.init_params`` tree) -> :class:`InferenceParams`. Jit it (config, layout static).

    ``layout``: ``"auto"`` stores large widening kernels [out, in] and the others [in, out] (the fastest
    choice for XLA:CPU's matmuls and what the mesh placement uses); ``"out_in"`` stores every kernel
    [out, in], the layout of the CPU decode kernel (``jaxrlvr.kernels``).
    """
    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {LAYOUTS}, got {layout!r}")
    dt = config.jnp_dtype
    d, h, kv, hd = config.hidden_size, config.num_heads, config.num_kv_heads, config.head_dim
    lay = params["layers"]
    attn, mlp = lay["attn"], lay["mlp"]
    layers = []
    for i in range(config.num_layers):
        q = attn["q_proj"]["kernel"][i].reshape(d, h * hd)
        k = attn["k_proj"]["kernel"][i].reshape(d, kv * hd)
        v = attn["v_proj"]["kernel"][i].reshape(d, kv * hd)
        bqkv = None
        if config.attention_bias:
            bqkv = jnp.concatenate([attn[n]["bias"][i].reshape(-1) for n in ("q_proj", "k_proj", "v_proj")]).astype(dt)
        layers.append(
            LayerParams(
                ln1=lay["input_norm"]["scale"][i],
                wqkv=_kernel(jnp.concatenate([q, k, v], axis=1), dt, layout),
                bqkv=bqkv,
                q_norm=attn["q_norm"]["scale"][i] if config.qk_norm else None,
                k_norm=attn["k_norm"]["scale"][i] if config.qk_norm else None,
                wo=_kernel(attn["o_proj"]["kernel"][i].reshape(h * hd, d), dt, layout),
                ln2=lay["post_attn_norm"]["scale"][i],
                wgu=_kernel(
                    jnp.concatenate([mlp["gate_proj"]["kernel"][i], mlp["up_proj"]["kernel"][i]], 1), dt, layout
                ),
                wd=_kernel(mlp["down_proj"]["kernel"][i], dt, layout),
            )
        )
    embed = params["embed"]["embedding"]
    v = config.vocab_size
    if config.tie_word_embeddings and _out_in(d, v, layout) and embed.dtype == dt:
        lm_head = None  # the embedding is already the [out, in] kernel: no copy
    else:
        lm_head = _kernel(embed.T if config.tie_word_embeddings else params["lm_head"], dt, layout)
    return InferenceParams(
        embed=embed,
        lm_head=lm_head,
        final_norm=params["final_norm"]["scale"],
        layers=tuple(layers),
        layout=layout,
    )


# ------------------------------------------------------------------------------------------ building blocks
def _rms_norm(config: ModelConfig, x: Array, scale: Array) -> Array:
    x32 = x.astype(jnp.float32)
    y = x32 * jax.lax.rsqrt(jnp.mean(x32 * x32, axis=-1, keepdims=True) + config.rms_norm_eps)
    scale = scale.astype(jnp.float32).reshape((1,) * (x.ndim - 1) + scale.shape)
    return (y * scale).astype(config.jnp_dtype)


def _qkv(config: ModelConfig, lp: LayerParams, h_BTD: Array, cos: Array, sin: Array, layout: str, ck: bool):
    """Rotated q [B, T, H, Hd], k [B, T, KV, Hd] and v [B, T, KV, Hd] in the compute dtype."""
    b, t, d = h_BTD.shape
    nh, kv, hd = config.num_heads, config.num_kv_heads, config.head_dim
    qkv = _linear(h_BTD, lp.wqkv, out_in=_out_in(d, (nh + 2 * kv) * hd, layout), cpu_kernel=ck)
    if lp.bqkv is not None:
        qkv = qkv + lp.bqkv.reshape((1, 1, -1))
    q = qkv[..., : nh * hd].reshape(b, t, nh, hd)
    k = qkv[..., nh * hd : (nh + kv) * hd].reshape(b, t, kv, hd)
    v = qkv[..., (nh + kv) * hd :].reshape(b, t, kv, hd)
    if lp.q_norm is not None:
        q, k = _rms_norm(config, q, lp.q_norm), _rms_norm(config, k, lp.k_norm)
    return apply_rope(q, cos, sin), apply_rope(k, cos, sin), v


def _mlp_residual(config: ModelConfig, lp: LayerParams, x: Array, layout: str, ck: bool) -> Array:
    h = _rms_norm(config, x, lp.ln2)
    d, i = config.hidden_size, config.intermediate_size
    gu = _linear(h, lp.wgu, out_in=_out_in(d, 2 * i, layout), cpu_kernel=ck)
    return x + _linear(jax.nn.silu(gu[..., :i]) * gu[..., i:], lp.wd, out_in=_out_in(i, d, layout), cpu_kernel=ck)


def logits(config: ModelConfig, ip: InferenceParams, h_BD: Array, cpu_kernel: bool = False) -> Array:
    """float32 logits [B, V] of final-norm hidden states [B, D]."""
    if ip.lm_head is None:
        w, out_in = ip.embed.astype(h_BD.dtype), True
    else:
        w, out_in = ip.lm_head, _out_in(config.hidden_size, config.vocab_size, ip.layout)
    if cpu_kernel and out_in and w.dtype == h_BD.dtype == jnp.float32:
        return _linear(h_BD, w, out_in=True, cpu_kernel=True)
    spec = "bd,vd->bv" if out_in else "bd,dv->bv"
    return jnp.einsum(spec, h_BD, w, preferred_element_type=jnp.float32)


def cache_chunks(prompt_len: int, max_new_tokens: int, block: int | None, max_chunks: int) -> tuple[int, ...]:
    """Static chunk lengths of a cache of ``P + N - 1`` slots (see the module docstring).

    Chunk 0 holds the prompt and the first ``block`` generated tokens, each other chunk ``block`` tokens;
    ``block`` doubles until there are at most ``max_chunks`` chunks. ``None``: one chunk.
    """
    total = prompt_len + max(max_new_tokens - 1, 0)
    steps = max_new_tokens - 1
    if not block or steps <= 0:
        return (total,)
    while -(-steps // block) > max_chunks:
        block *= 2
    lengths = [min(prompt_len + block, total)]
    while sum(lengths) < total:
        lengths.append(min(block, total - sum(lengths)))
    return tuple(lengths)


def init_cache(config: ModelConfig, batch: int, chunks: tuple[int, ...]) -> Cache:
    """A zeroed cache in the sampler's layout (see the module docstring)."""
    kv, hd, dt = config.num_kv_heads, config.head_dim, config.jnp_dtype
    return tuple(
        (
            tuple(jnp.zeros((batch, kv, hd, c), dt) for c in chunks),
            tuple(jnp.zeros((batch, kv, c, hd), dt) for c in chunks),
        )
        for _ in range(config.num_layers)
    )


# ---------------------------------------------------------------------------------------------------- prefill
def prefill(
    config: ModelConfig,
    ip: InferenceParams,
    ids_PT: Array,
    start_P: Array,
    *,
    num_samples: int,
    chunks: tuple[int, ...],
) -> tuple[Array, Cache]:
    """Runs left-padded prompts ``ids_PT`` (real tokens in columns ``[start_P, T)``) once.

    Returns the float32 logits at the last column [P, V] and a cache of chunk lengths ``chunks`` (the
    first one >= T) for ``P * num_samples`` rows, prompt ``p`` copied to rows ``p*G .. p*G+G-1``.
    """
    p, t = ids_PT.shape
    g = num_samples
    nh, kv, hd = config.num_heads, config.num_kv_heads, config.head_dim
    col = jnp.arange(t, dtype=jnp.int32)
    valid_PT = col[None, :] >= start_P[:, None]
    pos_PT = jnp.maximum(col[None, :] - start_P[:, None], 0)
    cos, sin = rope_tables(pos_PT, hd, config.rope_theta, config.rope_scaling)
    x = ip.embed[ids_PT].astype(config.jnp_dtype)
    empty = init_cache(config, p * g, chunks[1:])[0] if len(chunks) > 1 else ((), ())
    cache = []
    for lp in ip.layers:
        h = _rms_norm(config, x, lp.ln1)
        q, k, v = _qkv(config, lp, h, cos, sin, ip.layout, False)
        qg = q.reshape(p, t, kv, nh // kv, hd)
        outs = []
        for lo in range(0, t, _PREFILL_QUERY_BLOCK):  # bounded [.., Tq, Tk] scores; causal: keys < hi
            hi = min(lo + _PREFILL_QUERY_BLOCK, t)
            s = jnp.einsum("btkgd,bskd->bkgts", qg[:, lo:hi], k[:, :hi], preferred_element_type=jnp.float32) * (
                hd**-0.5
            )
            allowed = (col[lo:hi, None] >= col[None, :hi])[None] & valid_PT[:, None, :hi]
            s = jnp.where(allowed[:, None, None], s, _NEG_INF)
            w = jax.nn.softmax(s, axis=-1).astype(config.jnp_dtype)
            outs.append(jnp.einsum("bkgts,bskd->btkgd", w, v[:, :hi], preferred_element_type=jnp.float32))
        o = outs[0] if len(outs) == 1 else jnp.concatenate(outs, axis=1)
        o = o.astype(config.jnp_dtype).reshape(p, t, nh * hd)
        x = x + _linear(o, lp.wo, out_in=_out_in(nh * hd, config.hidden_size, ip.layout))
        x = _mlp_residual(config, lp, x, ip.layout, False)
        k0 = jnp.repeat(k.transpose(0, 2, 3, 1), g, axis=0)  # [P G, KV, Hd, T]
        v0 = jnp.repeat(v.transpose(0, 2, 1, 3), g, axis=0)  # [P G, KV, T, Hd]
        k0 = jnp.pad(k0, ((0, 0), (0, 0), (0, 0), (0, chunks[0] - t)))
        v0 = jnp.pad(v0, ((0, 0), (0, 0), (0, chunks[0] - t), (0, 0)))
        cache.append(((k0, *empty[0]), (v0, *empty[1])))
    h_last = _rms_norm(config, x[:, -1], ip.final_norm)
    return logits(config, ip, h_last), tuple(cache)


# ----------------------------------------------------------------------------------------------------- decode
def decode_step(
    config: ModelConfig,
    ip: InferenceParams,
    cache: Cache,
    tok_B: Array,
    slot: Array,
    pos_B: Array,
    start_B: Array,
    *,
    chunk: int,
    cpu_kernel: bool = False,
) -> tuple[Array, Cache]:
    """One token per row at cache ``slot`` (same for all rows) and rotary position ``pos_B``.

    ``cpu_kernel``: large float32 [out, in] matmuls through ``jaxrlvr.kernels`` (CPU only).

    ``slot`` lies in chunk number ``chunk`` (static; the caller guarantees it). Attention reads only chunks
    ``0 .. chunk``, so early steps do not pay for the whole preallocated cache. Returns float32 logits
    [B, V] and the cache with this token's keys/values written (in place when the cache is donated).
    """
    b = tok_B.shape[0]
    nh, kv, hd = config.num_heads, config.num_kv_heads, config.head_dim
    lengths = [kc.shape[-1] for kc in cache[0][0][: chunk + 1]]
    offset = sum(lengths[:-1])
    attn_len = sum(lengths)
    cos, sin = rope_tables(pos_B[:, None], hd, config.rope_theta, config.rope_scaling)
    s_iota = jnp.arange(attn_len, dtype=jnp.int32)
    allowed_BA = (s_iota[None, :] <= slot) & (s_iota[None, :] >= start_B[:, None])
    x = ip.embed[tok_B][:, None, :].astype(config.jnp_dtype)  # [B, 1, D]
    new_cache = []
    for lp, (k_cs, v_cs) in zip(ip.layers, cache, strict=True):
        h = _rms_norm(config, x, lp.ln1)
        q, k, v = _qkv(config, lp, h, cos, sin, ip.layout, cpu_kernel)
        at = slot - offset
        k_cs, v_cs = list(k_cs), list(v_cs)
        k_w, v_w = k_cs[chunk], v_cs[chunk]
        k_cs[chunk] = jax.lax.dynamic_update_slice(k_w, k.reshape(b, kv, hd, 1).astype(k_w.dtype), (0, 0, 0, at))
        v_cs[chunk] = jax.lax.dynamic_update_slice(v_w, v.reshape(b, kv, 1, hd).astype(v_w.dtype), (0, 0, at, 0))
        new_cache.append((tuple(k_cs), tuple(v_cs)))
        qg = q.reshape(b, kv, nh // kv, hd)
        s = [jnp.einsum("bkgd,bkds->bkgs", qg, kc, preferred_element_type=jnp.float32) for kc in k_cs[: chunk + 1]]
        s = (jnp.concatenate(s, axis=-1) if len(s) > 1 else s[0]) * (hd**-0.5)
        s = jnp.where(allowed_BA[:, None, None, :], s, _NEG_INF)
        w = jax.nn.softmax(s, axis=-1).astype(config.jnp_dtype)
        o, lo = None, 0
        for vc, n in zip(v_cs[: chunk + 1], lengths, strict=True):
            part = jnp.einsum(
                "bkgs,bksd->bkgd",
                w[..., lo : lo + n] if len(lengths) > 1 else w,
                vc,
                preferred_element_type=jnp.float32,
            )
            o = part if o is None else o + part
            lo += n
        x = x + _linear(
            o.astype(config.jnp_dtype).reshape(b, 1, nh * hd),
            lp.wo,
            out_in=_out_in(nh * hd, config.hidden_size, ip.layout),
            cpu_kernel=cpu_kernel,
        )
        x = _mlp_residual(config, lp, x, ip.layout, cpu_kernel)
    h_last = _rms_norm(config, x[:, 0], ip.final_norm)
    return logits(config, ip, h_last, cpu_kernel), tuple(new_cache)
