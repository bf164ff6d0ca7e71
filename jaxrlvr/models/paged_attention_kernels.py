"""Pallas paged-attention kernels of the installed JAX, behind the layout of ``models.paged_attention``
(pool ``[KV, num_pages, page, Hd]`` per layer, a page table per row, positions ``0 .. len - 1`` laid page
after page). Parity with the XLA path is tested in Pallas interpret mode on a CPU
(``tests/sampling/test_continuous.py``); on an accelerator ``interpret=False`` compiles the kernel.

* :func:`gpu_paged_attention`: ``jax.experimental.pallas.ops.gpu.paged_attention`` (Triton), which
  takes the pool as it is (same layout), the page table and the lengths.
* :func:`tpu_ragged_paged_attention`: ``jax.experimental.pallas.ops.tpu.ragged_paged_attention``, which
  wants keys and values interleaved in one ``[num_pages, page, 2 KV, Hd]`` array: this wrapper builds it
  (a copy of the pool per call: a parity reference, not yet the production layout on TPU).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

Array = jax.Array


def available(kind: str) -> bool:
    """Whether the installed JAX has the kernel (``"pallas_gpu"`` or ``"pallas_tpu"``)."""
    try:
        if kind == "pallas_gpu":
            from jax.experimental.pallas.ops.gpu import paged_attention  # noqa: F401
        elif kind == "pallas_tpu":
            from jax.experimental.pallas.ops.tpu.ragged_paged_attention import kernel  # noqa: F401
        else:
            return False
    except ImportError:
        return False
    return True


def gpu_paged_attention(
    q_SKGD: Array, k_pool: Array, v_pool: Array, table_SM: Array, len_S: Array, *, interpret: bool = False,
    pages_per_compute_block: int = 8, k_splits: int = 16,
) -> Array:  # fmt: skip
    """One query per row over its ``len_S`` positions: ``[S, KV, G, Hd]`` (zeros where ``len_S == 0``).
    ``pages_per_compute_block`` must divide the table's width (the wrapper lowers it until it does)."""
    from jax.experimental.pallas.ops.gpu import paged_attention as gpu

    s, kv, g, hd = q_SKGD.shape
    m = table_SM.shape[1]
    ppcb = max(1, min(pages_per_compute_block, m))
    while m % ppcb:
        ppcb -= 1
    splits = max(1, min(k_splits, m // ppcb))
    while (m // ppcb) % splits:
        splits -= 1
    q = (q_SKGD.astype(jnp.float32) * hd**-0.5).astype(q_SKGD.dtype).reshape(s, kv * g, hd)  # the kernel does not scale
    out = gpu.paged_attention(
        q, k_pool, v_pool, table_SM, jnp.maximum(len_S, 1), block_h=max(16, g), pages_per_compute_block=ppcb,
        k_splits=splits, interpret=interpret,
    )  # fmt: skip
    out = out.reshape(s, kv, g, hd)
    return jnp.where((len_S > 0)[:, None, None, None], out, 0).astype(q_SKGD.dtype)


def tpu_ragged_paged_attention(
    q_SKGD: Array, k_pool: Array, v_pool: Array, table_SM: Array, len_S: Array, *, interpret: bool = False
) -> Array:
    """As :func:`gpu_paged_attention` through the TPU ragged paged-attention kernel (one query per row)."""
    from jax.experimental.pallas.ops.tpu.ragged_paged_attention import kernel as tpu

    s, kv, g, hd = q_SKGD.shape
    kv_pages = jnp.stack([k_pool, v_pool], axis=1).reshape(2 * kv, *k_pool.shape[1:])  # k0 v0 k1 v1 ...
    kv_pages = kv_pages.transpose(1, 2, 0, 3)  # [num_pages, page, 2 KV, Hd]
    cu_q = jnp.arange(s + 1, dtype=jnp.int32)
    call = lambda: tpu.ragged_paged_attention(  # noqa: E731
        q_SKGD.reshape(s, kv * g, hd), kv_pages, jnp.maximum(len_S, 1), table_SM, cu_q, jnp.asarray([s], jnp.int32),
        sm_scale=hd**-0.5,
    )  # fmt: skip
    if interpret:
        from jax.experimental.pallas import tpu as pltpu

        with pltpu.force_tpu_interpret_mode():
            out = call()
    else:
        out = call()
    out = out.reshape(s, kv, g, hd)
    return jnp.where((len_S > 0)[:, None, None, None], out, 0).astype(q_SKGD.dtype)
