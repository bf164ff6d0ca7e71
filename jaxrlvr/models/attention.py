"""Attention whose memory is linear in the sequence length: blockwise, online softmax, flash-style backward.

One function, ``attention(q, k, v, ...)``, for training, scoring, prefill and decode. Shapes: queries
``[B, T, N, Hd]``, keys / values ``[B, S, KV, Hd]`` with ``N % KV == 0`` (grouped-query attention; query head
``n`` reads kv head ``n // (N // KV)``, as in HF Qwen2). Query ``t`` sits at slot ``q_offset + t`` (the cache
index in prefill / decode, 0 without a cache) and key ``s`` at slot ``s``. A query attends key ``s`` iff

    s <= q_offset + t                          (causal, by slot)
    and kv_mask[b, s]                          (real token; default all)
    and q_segment_ids[b, t] == kv_segment_ids[b, s]   (packed rows: never across sequences; default one segment)

Implementations (``impl``):
  ``"dense"``: the plain formula, float32 scores ``[B, KV, G, T, S]`` (``reference_attention``); for tests and
    tiny problems.
  ``"xla_blockwise"``: queries in blocks of ``block_q``, keys in blocks of ``block_k``; for each query block a
    loop over only the key blocks that can hold an allowed key (a per-block-pair table from block summaries of
    slots, segment ids and the kv mask, for all rows at once so the batch axis stays shardable; fully masked
    pairs are skipped with ``lax.cond``), keeping a running
    max / normaliser / accumulator (online softmax, Milakov & Gimelshein 2018; FlashAttention, Dao et al.
    2022). The backward is a ``custom_vjp`` that recomputes each block's probabilities from the saved
    log-sum-exp (FlashAttention-2's backward, Dao 2023), so neither pass stores anything ``[T, S]``: memory
    is ``O(B T N Hd)`` plus one block pair. The reference path and the CPU path.
  ``"cudnn"``: ``jax.nn.dot_product_attention(implementation="cudnn")``; supports only masks it can express
    (causal from slot 0 with ``T == S``, no segment ids, no kv mask or a right-padding one given as
    ``kv_lengths``); anything else raises.
  ``"pallas_tpu"`` / ``"pallas_gpu"``: the Pallas splash (TPU) / flash (GPU, Triton) kernels of
    ``models.attention_kernels``, for cache-free calls (training, scoring: ``T == S``, no offset) with any
    segment ids and kv mask; on another backend they run in Pallas interpret mode (tests only: slow).
  ``"auto"``: for bf16 / f16 compute on an accelerator, cuDNN on GPU where it supports the mask, else the
    Pallas kernel of the backend (splash on TPU, flash on GPU) where it takes the call and compiles there
    (checked once per shape; a kernel that does not compile gives one warning and the blockwise path);
    otherwise blockwise.
    On any backend the dense formula when the scores are no larger than one block pair
    (``T * S <= block_q * block_k``: decode steps, tiny tests), where blocking saves nothing. float32
    compute always takes the XLA paths (the reference numbers).

A query with no allowed key (a padding query) gets a zero output and zero gradients from the blockwise path;
the dense path gives it the mean of all values (uniform weights) as the model always did. Either way it is
finite and no real token ever reads it.
"""

from __future__ import annotations

import functools
import warnings

import jax
import jax.numpy as jnp

from jaxrlvr.models import attention_kernels

Array = jax.Array

NEG_INF = -1e30  # finite: a fully masked row of the dense formula gives uniform weights, never NaN
IMPLS = ("auto", "dense", "xla_blockwise", "cudnn", "pallas_tpu", "pallas_gpu")


def allowed_mask(t: int, s: int, q_offset, kv_mask_BS=None, q_segment_ids_BT=None, kv_segment_ids_BS=None) -> Array:
    """Bool [B or 1, T, S]: which keys each query may attend (the rule in the module docstring)."""
    ok = (jnp.arange(s)[None, :] <= (q_offset + jnp.arange(t))[:, None])[None]
    if kv_mask_BS is not None:
        ok = ok & (kv_mask_BS[:, None, :] > 0)
    if q_segment_ids_BT is not None:
        ok = ok & (q_segment_ids_BT[:, :, None] == kv_segment_ids_BS[:, None, :])
    return ok


def reference_attention(
    q_BTNH, k_BSKH, v_BSKH, *, q_offset=0, kv_mask_BS=None, q_segment_ids_BT=None, kv_segment_ids_BS=None
) -> Array:
    """The dense formula: float32 scores [B, KV, G, T, S], masked softmax, probabilities in the compute dtype."""
    b, t, n, hd = q_BTNH.shape
    s, kv = k_BSKH.shape[1], k_BSKH.shape[2]
    ok = allowed_mask(t, s, q_offset, kv_mask_BS, q_segment_ids_BT, kv_segment_ids_BS)
    qg = q_BTNH.reshape(b, t, kv, n // kv, hd)
    scores = jnp.einsum("btkgd,bskd->bkgts", qg, k_BSKH.astype(q_BTNH.dtype), preferred_element_type=jnp.float32)
    scores = jnp.where(ok[:, None, None], scores * hd**-0.5, NEG_INF)
    probs = jax.nn.softmax(scores, axis=-1).astype(q_BTNH.dtype)
    out = jnp.einsum("bkgts,bskd->btkgd", probs, v_BSKH.astype(q_BTNH.dtype))
    return out.reshape(b, t, n, hd)


def _check(q, k, v, q_segment_ids_BT, kv_segment_ids_BS):
    if q.ndim != 4 or k.ndim != 4 or k.shape != v.shape or q.shape[0] != k.shape[0] or q.shape[3] != k.shape[3]:
        raise ValueError(f"attention needs q [B,T,N,Hd] and k = v [B,S,KV,Hd]; got {q.shape}, {k.shape}, {v.shape}")
    if q.shape[2] % k.shape[2]:
        raise ValueError(f"query heads {q.shape[2]} must be a multiple of kv heads {k.shape[2]}")
    if (q_segment_ids_BT is None) != (kv_segment_ids_BS is None):
        raise ValueError("pass both q_segment_ids_BT and kv_segment_ids_BS, or neither")


def attention(
    q_BTNH,
    k_BSKH,
    v_BSKH,
    *,
    q_offset=0,
    kv_mask_BS=None,
    q_segment_ids_BT=None,
    kv_segment_ids_BS=None,
    kv_lengths_B=None,
    impl: str = "auto",
    block_q: int = 512,
    block_k: int = 512,
) -> Array:
    """Masked causal attention [B, T, N, Hd] (compute dtype of ``q``); see the module docstring.

    ``kv_lengths_B`` (optional, int32 [B]) says the kv mask is a right padding (``s < len``), which is the
    one kv mask cuDNN takes; when given, ``kv_mask_BS`` may be omitted.
    """
    _check(q_BTNH, k_BSKH, v_BSKH, q_segment_ids_BT, kv_segment_ids_BS)
    if impl not in IMPLS:
        raise ValueError(f"attention impl must be one of {IMPLS}, got {impl!r}")
    b, t = q_BTNH.shape[:2]
    s = k_BSKH.shape[1]
    if kv_lengths_B is not None and kv_mask_BS is None:
        kv_mask_BS = jnp.arange(s)[None, :] < kv_lengths_B[:, None]
    if impl == "auto":
        impl = _auto(
            q_BTNH, t, s, q_offset, kv_mask_BS, kv_lengths_B, q_segment_ids_BT, block_q, block_k, k_BSKH.shape[2]
        )
    if impl == "dense":
        return reference_attention(
            q_BTNH,
            k_BSKH,
            v_BSKH,
            q_offset=q_offset,
            kv_mask_BS=kv_mask_BS,
            q_segment_ids_BT=q_segment_ids_BT,
            kv_segment_ids_BS=kv_segment_ids_BS,
        )
    if impl in ("pallas_tpu", "pallas_gpu"):
        return attention_kernels.kernel_attention(
            q_BTNH,
            k_BSKH,
            v_BSKH,
            kind=impl,
            kv_mask_BS=kv_mask_BS,
            segment_ids_BT=q_segment_ids_BT,
            block=max(block_q, block_k),
        )
    if impl == "cudnn":
        if not _cudnn_mask_ok(t, s, q_offset, kv_mask_BS, kv_lengths_B, q_segment_ids_BT):
            raise ValueError(
                "impl='cudnn' supports causal attention from slot 0 with T == S, no segment ids and a kv mask "
                "only as kv_lengths_B; use impl='auto' or 'xla_blockwise' for this mask"
            )
        return jax.nn.dot_product_attention(
            q_BTNH,
            k_BSKH.astype(q_BTNH.dtype),
            v_BSKH.astype(q_BTNH.dtype),
            is_causal=True,
            key_value_seq_lengths=None if kv_lengths_B is None else kv_lengths_B.astype(jnp.int32),
            implementation="cudnn",
        )
    bq, bk = _block(t, block_q), _block(s, block_k)
    q_slots = jnp.broadcast_to(q_offset + jnp.arange(t, dtype=jnp.int32), (b, t))
    kv_valid = jnp.ones((b, s), bool) if kv_mask_BS is None else kv_mask_BS > 0
    if q_segment_ids_BT is None:
        q_seg, kv_seg = jnp.zeros((b, t), jnp.int32), jnp.zeros((b, s), jnp.int32)
    else:
        q_seg, kv_seg = q_segment_ids_BT.astype(jnp.int32), kv_segment_ids_BS.astype(jnp.int32)
    return _blockwise(
        q_BTNH, k_BSKH.astype(q_BTNH.dtype), v_BSKH.astype(q_BTNH.dtype), q_slots, q_seg, kv_seg, kv_valid, bq, bk
    )


def _block(n: int, target: int) -> int:
    """A block of at most ``target`` that divides ``n`` if one of target, target/2, target/4 does (no padding)."""
    if n <= target:
        return _round_up(n, 8)
    for blk in (target, target // 2, target // 4):
        if blk >= 8 and n % blk == 0:
            return blk
    return target


def _round_up(x: int, m: int) -> int:
    return -(-x // m) * m


def _cudnn_mask_ok(t, s, q_offset, kv_mask_BS, kv_lengths_B, q_segment_ids_BT) -> bool:
    static_zero = isinstance(q_offset, int) and q_offset == 0
    return static_zero and t == s and q_segment_ids_BT is None and (kv_mask_BS is None or kv_lengths_B is not None)


def _auto(q, t, s, q_offset, kv_mask_BS, kv_lengths_B, q_segment_ids_BT, block_q, block_k, kv_heads) -> str:
    if t == 1 or t * s <= block_q * block_k:
        return "dense"
    backend = jax.default_backend()
    if backend in ("gpu", "tpu") and q.dtype in (jnp.bfloat16, jnp.float16):
        if _cudnn_supported(q, t, s, q_offset, kv_mask_BS, kv_lengths_B, q_segment_ids_BT):
            return "cudnn"
        if attention_kernels.supports(t, s, q_offset):
            kind = "pallas_tpu" if backend == "tpu" else "pallas_gpu"
            n, hd = q.shape[2], q.shape[3]
            error = attention_kernels.compiles(kind, t, n, kv_heads, hd, jnp.dtype(q.dtype).name, max(block_q, block_k))
            if error is None:
                return kind
            _warn_once(
                f"attention: the {kind} kernel does not compile here ({error}); using the blockwise XLA path "
                f"(set model.attention_impl=xla_blockwise to skip this check, or {kind} to see the error)"
            )
    return "xla_blockwise"


@functools.cache
def _warn_once(message: str) -> None:
    warnings.warn(message, RuntimeWarning, stacklevel=3)


def _cudnn_supported(q, t, s, q_offset, kv_mask_BS, kv_lengths_B, q_segment_ids_BT) -> bool:
    if jax.default_backend() != "gpu" or q.dtype not in (jnp.bfloat16, jnp.float16) or q.shape[-1] % 8:
        return False
    return t > 1 and _cudnn_mask_ok(t, s, q_offset, kv_mask_BS, kv_lengths_B, q_segment_ids_BT)


# ----------------------------------------------------------------------------------------------- blockwise


def _pad_to(x, n, axis, value):
    pad = n - x.shape[axis]
    if not pad:
        return x
    widths = [(0, 0)] * x.ndim
    widths[axis] = (0, pad)
    return jnp.pad(x, widths, constant_values=value)


def _block_table(q_slots, q_seg, kv_seg, kv_valid, bq, bk):
    """needed [B, nQ, nK]: False only where no (query, key) pair of the two blocks can be allowed.

    Conservative (from per-block ranges), so a True block may still be fully masked; its exact mask is
    applied inside. Padded query rows (beyond T) carry slot -1 and never extend a range."""
    b, tp = q_slots.shape
    sp = kv_seg.shape[1]
    nq, nk = tp // bq, sp // bk
    big = jnp.iinfo(jnp.int32).max
    qs = q_slots.reshape(b, nq, bq)
    qg = q_seg.reshape(b, nq, bq)
    real_q = qs >= 0
    q_max_slot = jnp.max(qs, axis=-1)
    q_min_seg = jnp.min(jnp.where(real_q, qg, big), axis=-1)
    q_max_seg = jnp.max(jnp.where(real_q, qg, -big), axis=-1)
    kvv = kv_valid.reshape(b, nk, bk)
    kg = kv_seg.reshape(b, nk, bk)
    k_slots = jnp.arange(sp, dtype=jnp.int32).reshape(nk, bk)
    k_min_slot = jnp.min(jnp.where(kvv, k_slots[None], big), axis=-1)
    k_min_seg = jnp.min(jnp.where(kvv, kg, big), axis=-1)
    k_max_seg = jnp.max(jnp.where(kvv, kg, -big), axis=-1)
    return (
        (k_min_slot[:, None, :] <= q_max_slot[:, :, None])
        & (k_min_seg[:, None, :] <= q_max_seg[:, :, None])
        & (k_max_seg[:, None, :] >= q_min_seg[:, :, None])
    )


def _range(needed_row):
    """[lo, hi) of the True entries of a 1-d bool row (lo = hi = 0 when none)."""
    n = needed_row.shape[0]
    idx = jnp.arange(n, dtype=jnp.int32)
    lo = jnp.min(jnp.where(needed_row, idx, n))
    hi = jnp.max(jnp.where(needed_row, idx + 1, 0))
    return jnp.minimum(lo, hi), hi


def _slice(x, i, size):
    """Block ``i`` of ``size`` along axis 1 (the sequence axis of every [B, T, ...] array)."""
    return jax.lax.dynamic_slice_in_dim(x, i * size, size, axis=1)


def _pair(q, k, q_slots, q_seg, kv_seg, kv_valid, scale):
    """Scores [B, KV, G, bq, bk] (float32, scaled) and the exact mask [B, bq, bk] of one block pair
    (``q_slots`` relative to the key block's first slot)."""
    s = jnp.einsum("bqkgd,bskd->bkgqs", q, k, preferred_element_type=jnp.float32) * scale
    ok = (jnp.arange(k.shape[1])[None, None, :] <= q_slots[:, :, None]) & kv_valid[:, None, :]
    ok = ok & (q_seg[:, :, None] == kv_seg[:, None, :])
    return s, ok


def _prepare(q, k, v, q_slots, q_seg, kv_seg, kv_valid, bq, bk):
    b, t, n, hd = q.shape
    s, kv = k.shape[1], k.shape[2]
    tp, sp = _round_up(t, bq), _round_up(s, bk)
    q = _pad_to(q, tp, 1, 0).reshape(b, tp, kv, n // kv, hd)
    k, v = _pad_to(k, sp, 1, 0), _pad_to(v, sp, 1, 0)
    q_slots = _pad_to(q_slots, tp, 1, -1)
    q_seg = _pad_to(q_seg, tp, 1, 0)
    kv_seg = _pad_to(kv_seg, sp, 1, 0)
    kv_valid = _pad_to(kv_valid, sp, 1, False)
    # Blocks are processed for all rows at once (the batch axis stays a parallel axis that a mesh can
    # shard); a block pair is visited if any row needs it, and the loops run over the union of the rows'
    # ranges (contiguous for causal, left-padded and packed rows, so little is visited in vain).
    needed = jnp.any(_block_table(q_slots, q_seg, kv_seg, kv_valid, bq, bk), axis=0)  # [nQ, nK]
    return q, k, v, q_slots, q_seg, kv_seg, kv_valid, needed


@functools.partial(jax.custom_vjp, nondiff_argnums=(7, 8))
def _blockwise(q, k, v, q_slots, q_seg, kv_seg, kv_valid, bq, bk):
    return _blockwise_fwd(q, k, v, q_slots, q_seg, kv_seg, kv_valid, bq, bk)[0]


def _blockwise_fwd(q, k, v, q_slots, q_seg, kv_seg, kv_valid, bq, bk):
    b, t, n, hd = q.shape
    kv = k.shape[2]
    g = n // kv
    scale = hd**-0.5
    qp, kp, vp, qsl, qsg, ksg, kvv, needed = _prepare(q, k, v, q_slots, q_seg, kv_seg, kv_valid, bq, bk)
    nq = qp.shape[1] // bq

    def one_q_block(qi):
        qb, qs, qg = _slice(qp, qi, bq), _slice(qsl, qi, bq), _slice(qsg, qi, bq)
        row = needed[qi]
        lo, hi = _range(row)

        def step(j, carry):
            def compute(carry):
                m, norm, acc = carry
                vb = _slice(vp, j, bk)
                sc, ok = _pair(qb, _slice(kp, j, bk), qs - j * bk, qg, _slice(ksg, j, bk), _slice(kvv, j, bk), scale)
                ok = ok[:, None, None]
                sc = jnp.where(ok, sc, NEG_INF)
                m_new = jnp.maximum(m, jnp.max(sc, axis=-1))
                p = jnp.where(ok, jnp.exp(sc - m_new[..., None]), 0.0)
                corr = jnp.exp(m - m_new)
                norm = norm * corr + jnp.sum(p, axis=-1)
                pv = jnp.einsum("bkgqs,bskd->bkgqd", p.astype(vb.dtype), vb, preferred_element_type=jnp.float32)
                return m_new, norm, acc * corr[..., None] + pv

            return jax.lax.cond(row[j], compute, lambda c: c, carry)

        init = (
            jnp.full((b, kv, g, bq), NEG_INF, jnp.float32),
            jnp.zeros((b, kv, g, bq), jnp.float32),
            jnp.zeros((b, kv, g, bq, hd), jnp.float32),
        )
        m, norm, acc = jax.lax.fori_loop(lo, hi, step, init)
        has = norm > 0
        safe = jnp.where(has, norm, 1.0)
        out = acc / safe[..., None]
        lse = jnp.where(has, m + jnp.log(safe), 0.0)
        return out.transpose(0, 3, 1, 2, 4), lse.transpose(0, 3, 1, 2)  # [B, bq, KV, G, Hd], [B, bq, KV, G]

    out, lse = jax.lax.map(one_q_block, jnp.arange(nq))  # [nQ, B, bq, ...]
    out = out.swapaxes(0, 1).reshape(b, nq * bq, n, hd)[:, :t].astype(q.dtype)
    lse = lse.swapaxes(0, 1).reshape(b, nq * bq, kv, g)
    return out, (q, k, v, q_slots, q_seg, kv_seg, kv_valid, out, lse)


def _blockwise_bwd(bq, bk, res, d_out):
    q, k, v, q_slots, q_seg, kv_seg, kv_valid, out, lse = res
    b, t, n, hd = q.shape
    s, kv = k.shape[1], k.shape[2]
    g = n // kv
    scale = hd**-0.5
    qp, kp, vp, qsl, qsg, ksg, kvv, needed = _prepare(q, k, v, q_slots, q_seg, kv_seg, kv_valid, bq, bk)
    tp, sp = qp.shape[1], kp.shape[1]
    nq, nk = tp // bq, sp // bk
    do = _pad_to(d_out.astype(jnp.float32), tp, 1, 0).reshape(b, tp, kv, g, hd)
    delta = jnp.sum(do * _pad_to(out.astype(jnp.float32), tp, 1, 0).reshape(b, tp, kv, g, hd), axis=-1)  # [B,Tp,KV,G]

    def probs(qi, j):
        """Block pair (qi, j): probabilities p and d(scores) [B, KV, G, bq, bk], and the q / k / dout blocks."""
        qb, kb, vb = _slice(qp, qi, bq), _slice(kp, j, bk), _slice(vp, j, bk)
        sc, ok = _pair(
            qb, kb, _slice(qsl, qi, bq) - j * bk, _slice(qsg, qi, bq), _slice(ksg, j, bk), _slice(kvv, j, bk), scale
        )
        lb = _slice(lse, qi, bq).transpose(0, 2, 3, 1)  # [B, KV, G, bq]
        dob = _slice(do, qi, bq)  # [B, bq, KV, G, Hd]
        db = _slice(delta, qi, bq).transpose(0, 2, 3, 1)
        p = jnp.where(ok[:, None, None], jnp.exp(sc - lb[..., None]), 0.0)
        dp = jnp.einsum("bqkgd,bskd->bkgqs", dob, vb.astype(jnp.float32))
        ds = p * (dp - db[..., None])
        return p, ds, qb, kb, dob

    def dq_block(qi):
        row = needed[qi]
        lo, hi = _range(row)

        def step(j, acc):
            def compute(acc):
                _, ds, _, kb, _ = probs(qi, j)
                return acc + jnp.einsum("bkgqs,bskd->bqkgd", ds, kb.astype(jnp.float32)) * scale

            return jax.lax.cond(row[j], compute, lambda a: a, acc)

        return jax.lax.fori_loop(lo, hi, step, jnp.zeros((b, bq, kv, g, hd), jnp.float32))

    def dkv_block(j):
        col = needed[:, j]
        lo, hi = _range(col)

        def step(qi, carry):
            def compute(carry):
                dk, dv = carry
                p, ds, qb, _, dob = probs(qi, j)
                dv = dv + jnp.einsum("bkgqs,bqkgd->bskd", p, dob)
                dk = dk + jnp.einsum("bkgqs,bqkgd->bskd", ds, qb.astype(jnp.float32)) * scale
                return dk, dv

            return jax.lax.cond(col[qi], compute, lambda c: c, carry)

        zero = jnp.zeros((b, bk, kv, hd), jnp.float32)
        return jax.lax.fori_loop(lo, hi, step, (zero, zero))

    dq = jax.lax.map(dq_block, jnp.arange(nq)).swapaxes(0, 1).reshape(b, tp, n, hd)[:, :t]
    dk, dv = jax.lax.map(dkv_block, jnp.arange(nk))
    dk = dk.swapaxes(0, 1).reshape(b, sp, kv, hd)[:, :s]
    dv = dv.swapaxes(0, 1).reshape(b, sp, kv, hd)[:, :s]
    return dq.astype(q.dtype), dk.astype(k.dtype), dv.astype(v.dtype), None, None, None, None


_blockwise.defvjp(_blockwise_fwd, _blockwise_bwd)
