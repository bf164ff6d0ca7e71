"""Accelerator attention kernels behind ``models.attention``: Pallas splash (TPU) and Pallas flash (GPU).

Both kernels take the masks that training and scoring need: causal from slot 0 over one sequence of ``T``
slots (``T == S``, no cache offset), packed rows (segment ids: a query attends only its own sequence) and
padding (a kv mask). Prefill and decode (a cache offset, ``T != S``) stay on the blockwise XLA path.

How the masks are expressed (the same for both kernels):

- a padding slot gets segment id ``-1`` (``kv_mask == 0``); with ``T == S`` and no offset, query ``t`` and key
  ``t`` are the same slot, so a real query never sees padding (its segment is >= 0) and a padding query sees
  only earlier padding and itself, which is finite and never read;
- ``T`` is padded up to a multiple of the kernel block (``PAD_MULTIPLE``) with more ``-1`` slots, and the
  output cut back;
- grouped-query attention: splash runs its multi-query kernel once per kv head over that head's ``G`` query
  heads (``vmap`` over kv heads and rows); the GPU kernel wants as many kv heads as query heads, so k / v are
  repeated ``G`` times (memory ``G x`` of k / v only, never anything ``[T, S]``).

``splash`` (TPU): ``jax.experimental.pallas.ops.tpu.splash_attention``, a causal ``MultiHeadMask`` and
``SegmentIds``; its block-sparse mask info skips the fully masked (upper-triangle) block pairs.
``gpu_flash``: ``jax.experimental.pallas.ops.gpu.attention.mha`` (Triton), causal with ``segment_ids``.

On any other backend the kernel runs in Pallas interpret mode: that is how the CPU test suite checks both
against the dense formula in values and gradients (``tests/models/test_attention_kernels.py``); it is slow
and only for tests. On a mesh (inside ``partitioning.activation_sharding``, which ``Placement`` sets while
tracing), the call is wrapped in ``jax.shard_map``: rows over the activation rules' ``batch`` axes, heads over
``tensor`` where the kv heads divide, so each device runs the kernel on its own shard instead of XLA
gathering the operands of an opaque custom call.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from jax.sharding import PartitionSpec as P

from jaxrlvr.models import partitioning

PAD_MULTIPLE = 128  # splash's smallest block, and a multiple of the GPU kernel's blocks (our choice)


def supports(t: int, s: int, q_offset) -> bool:
    """Whether a kernel can take this call: one cache-free sequence of slots (training / scoring)."""
    return isinstance(q_offset, int) and q_offset == 0 and t == s and t > 1


def _segments(b: int, t: int, kv_mask_BS, segment_ids_BT):
    seg = jnp.zeros((b, t), jnp.int32) if segment_ids_BT is None else segment_ids_BT.astype(jnp.int32)
    if kv_mask_BS is not None:
        seg = jnp.where(kv_mask_BS > 0, seg, -1)
    return seg


def _round_up(x: int, m: int) -> int:
    return -(-x // m) * m


def _pad_time(x, tp, value=0):
    pad = [(0, 0)] * x.ndim
    pad[1] = (0, tp - x.shape[1])
    return jnp.pad(x, pad, constant_values=value)


def _block(tp: int, target: int) -> int:
    """The largest of 512 / 256 / 128 (at most ``target``) dividing the padded length."""
    for blk in (512, 256, 128):
        if blk <= max(target, PAD_MULTIPLE) and tp % blk == 0:
            return blk
    return PAD_MULTIPLE


# ------------------------------------------------------------------------------------------------ splash
@functools.lru_cache(maxsize=32)
def _splash_kernel(tp: int, groups: int, block: int, interpret: bool):
    from jax.experimental.pallas.ops.tpu.splash_attention import splash_attention_kernel as sk
    from jax.experimental.pallas.ops.tpu.splash_attention import splash_attention_mask as sm

    mask = sm.MultiHeadMask([sm.CausalMask((tp, tp)) for _ in range(groups)])
    sizes = sk.BlockSizes(
        block_q=block,
        block_kv=block,
        block_kv_compute=block,
        block_q_dkv=block,
        block_kv_dkv=block,
        block_kv_dkv_compute=block,
        block_q_dq=block,
        block_kv_dq=block,
    )
    return sk.make_splash_mqa(mask, block_sizes=sizes, head_shards=1, q_seq_shards=1, interpret=interpret)


def _splash_local(q_BTNH, k_BSKH, v_BSKH, seg_BT, block):
    from jax.experimental.pallas.ops.tpu.splash_attention import splash_attention_kernel as sk

    b, tp, n, hd = q_BTNH.shape
    kv = k_BSKH.shape[2]
    kernel = _splash_kernel(tp, n // kv, block, jax.default_backend() != "tpu")
    q = (q_BTNH * hd**-0.5).reshape(b, tp, kv, n // kv, hd).transpose(0, 2, 3, 1, 4)  # [B, KV, G, T, Hd]
    k = k_BSKH.transpose(0, 2, 1, 3)  # [B, KV, S, Hd]
    v = v_BSKH.transpose(0, 2, 1, 3)

    def one_head(q_GTH, k_SH, v_SH, seg_T):
        return kernel(q_GTH, k_SH, v_SH, segment_ids=sk.SegmentIds(q=seg_T, kv=seg_T))

    out = jax.vmap(jax.vmap(one_head, in_axes=(0, 0, 0, None)))(q, k, v, seg_BT)  # [B, KV, G, T, Hd]
    return out.transpose(0, 3, 1, 2, 4).reshape(b, tp, n, hd)


# --------------------------------------------------------------------------------------------- GPU flash
def _gpu_flash_local(q_BTNH, k_BSKH, v_BSKH, seg_BT, block):
    from jax.experimental.pallas.ops.gpu import attention as ga

    n, kv, hd = q_BTNH.shape[2], k_BSKH.shape[2], q_BTNH.shape[3]
    g = n // kv
    k = jnp.repeat(k_BSKH, g, axis=2) if g > 1 else k_BSKH  # query head n reads kv head n // g
    v = jnp.repeat(v_BSKH, g, axis=2) if g > 1 else v_BSKH
    blk = min(block, 128)  # the kernel's own default forward block (our cap: SRAM on smaller GPUs)
    sizes = ga.BlockSizes(block_q=blk, block_k=blk, block_q_dkv=32, block_kv_dkv=32, block_q_dq=32, block_kv_dq=32)
    return ga.mha(
        q_BTNH,
        k,
        v,
        seg_BT,
        sm_scale=hd**-0.5,
        causal=True,
        block_sizes=sizes,
        interpret=jax.default_backend() != "gpu",
    )


# ----------------------------------------------------------------------------------------------- dispatch
_LOCAL = {"pallas_tpu": _splash_local, "pallas_gpu": _gpu_flash_local}


def kernel_attention(q_BTNH, k_BSKH, v_BSKH, *, kind, kv_mask_BS=None, segment_ids_BT=None, block=512):
    """Causal attention over one cache-free sequence of slots with a Pallas kernel (``kind`` one of
    ``"pallas_tpu"``, ``"pallas_gpu"``); output [B, T, N, Hd] in ``q``'s dtype. See the module docstring."""
    b, t, n, hd = q_BTNH.shape
    if not supports(t, k_BSKH.shape[1], 0):
        raise ValueError(f"{kind} attention needs T == S > 1 and no cache offset; got T={t}, S={k_BSKH.shape[1]}")
    dtype = q_BTNH.dtype
    tp = _round_up(t, PAD_MULTIPLE)
    blk = _block(tp, block)
    seg = _pad_time(_segments(b, t, kv_mask_BS, segment_ids_BT), tp, value=-1)
    q, k, v = (_pad_time(x.astype(dtype), tp) for x in (q_BTNH, k_BSKH, v_BSKH))
    local = functools.partial(_LOCAL[kind], block=blk)

    active = partitioning.active()
    if active is not None and active[0].size > 1:
        mesh, rules = active
        local = _shard_map(local, mesh, rules, b, k.shape[2])
    return local(q, k, v, seg)[:, :t]


@functools.lru_cache(maxsize=64)
def compiles(kind: str, t: int, n: int, kv: int, hd: int, dtype: str, block: int = 512) -> str | None:
    """None if the kernel's forward and backward compile here for this shape (one row), else the error.

    ``attention(impl="auto")`` asks before it picks a kernel and falls back to the blockwise path with a
    warning when it does not compile (a JAX / driver / Triton version without the kernel's lowering), so
    the default never turns a working run into a crash; an explicit ``impl`` gets no fallback. Cached per
    shape: one extra compilation of the kernel alone, per distinct shape."""
    tp = _round_up(t, PAD_MULTIPLE)
    local = functools.partial(_LOCAL[kind], block=_block(tp, block))

    def loss(q, k, v, seg):
        return jnp.sum(local(q, k, v, seg).astype(jnp.float32))

    args = (
        jax.ShapeDtypeStruct((1, tp, n, hd), dtype),
        jax.ShapeDtypeStruct((1, tp, kv, hd), dtype),
        jax.ShapeDtypeStruct((1, tp, kv, hd), dtype),
        jax.ShapeDtypeStruct((1, tp), jnp.int32),
    )
    try:
        jax.jit(jax.grad(loss, argnums=(0, 1, 2))).lower(*args).compile()
    except Exception as e:  # any failure to build the kernel means "use the XLA path"
        return f"{type(e).__name__}: {str(e).splitlines()[0][:300] if str(e) else ''}"
    return None


def _shard_map(local, mesh, rules, b: int, kv_heads: int):
    batch = rules.get("batch")
    batch_t = () if batch is None else (batch,) if isinstance(batch, str) else tuple(batch)
    rows = 1
    for a in batch_t:
        rows *= mesh.shape[a]
    row_axes = batch if batch_t and b % rows == 0 else None
    heads = "tensor" if "tensor" in mesh.shape and kv_heads % mesh.shape["tensor"] == 0 else None
    qkv = P(row_axes, None, heads, None)
    return jax.shard_map(local, mesh=mesh, in_specs=(qkv, qkv, qkv, P(row_axes, None)), out_specs=qkv, check_vma=False)
