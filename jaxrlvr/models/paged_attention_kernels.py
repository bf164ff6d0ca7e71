"""Pallas paged-attention kernels of the installed JAX, behind the layout of ``models.paged_attention``
(pool ``[KV, num_pages, page, Hd]`` per layer, a page table per row, positions ``0 .. len - 1`` laid page
after page), and the choice among them for the sampler's decode (``rollout.decode_kernel``,
``Sampler.decode_kernel``; docs/sampler.md "Decode kernels").

* :func:`gpu_paged_attention`: ``jax.experimental.pallas.ops.gpu.paged_attention`` (Triton), which
  takes the pool as it is (same layout), the page table (padded here to whole compute blocks and splits;
  the kernel skips the pages past each row's length) and the lengths.
* :func:`tpu_ragged_paged_attention`: ``jax.experimental.pallas.ops.tpu.ragged_paged_attention``, which
  wants keys and values interleaved in one ``[num_pages, page, 2 KV, Hd]`` array: this wrapper builds it,
  a copy of the layer's whole pool per call (per layer and decode step), which costs more than the XLA
  path reads. So ``auto`` never picks it; ``pallas_tpu`` runs it on request. Removing the copy means
  storing the pool interleaved (``sampling.paged`` writes, prefill and page copies): not done yet.

Settings (:data:`DECODE_KERNELS`): ``auto`` (default), ``xla``, ``pallas_gpu``, ``pallas_tpu``, and the
``*_interpret`` variants that run a kernel in Pallas interpret mode on any backend (slow; for tests: a
whole paged decode on the CPU through the GPU kernel equals the XLA path's rows,
``tests/sampling/test_paged_kernels.py``). :func:`decode_kernel_error` says why a setting cannot run here
(an explicit kernel that is missing or on the wrong backend is an error, never a silent fallback);
:func:`resolve` turns a setting into the path a traced call takes (``auto``: the GPU kernel on a GPU
where it compiles at the shape, else XLA, with one warning naming why).
"""

from __future__ import annotations

import functools
import re
import warnings

import jax
import jax.numpy as jnp
import numpy as np

from jaxrlvr.models import partitioning

Array = jax.Array

DECODE_KERNELS = ("auto", "xla", "pallas_gpu", "pallas_tpu", "pallas_gpu_interpret", "pallas_tpu_interpret")
_BACKEND = {"pallas_gpu": "gpu", "pallas_tpu": "tpu"}
GPU_BLOCK_POSITIONS = 128  # positions per compute block of the GPU kernel (its default: 8 pages of 16; ours)
GPU_K_SPLITS = 16  # the GPU kernel's default split of the page table (FlashDecoding's split-K)


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


# ---------------------------------------------------------------------------------------------- kernels
def gpu_blocks(m: int, page: int, pages_per_compute_block: int | None = None, k_splits: int = GPU_K_SPLITS):
    """(pages per compute block, splits, padded table width) of the GPU kernel for a table of ``m``
    columns: a power-of-two block of about ``GPU_BLOCK_POSITIONS`` positions (Triton wants power-of-two
    block shapes), at most ``k_splits`` splits, the width padded to whole blocks in every split."""
    target = pages_per_compute_block or max(1, GPU_BLOCK_POSITIONS // max(page, 1))
    ppcb = 1
    while ppcb * 2 <= min(target, max(m, 1)):
        ppcb *= 2
    blocks = -(-m // ppcb)
    splits = max(1, min(k_splits, blocks))
    return ppcb, splits, ppcb * splits * -(-blocks // splits)


def gpu_paged_attention(
    q_SKGD: Array, k_pool: Array, v_pool: Array, table_SM: Array, len_S: Array, *, interpret: bool = False,
    pages_per_compute_block: int | None = None, k_splits: int = GPU_K_SPLITS,
) -> Array:  # fmt: skip
    """One query per row over its ``len_S`` positions: ``[S, KV, G, Hd]`` in ``q``'s dtype (zeros where
    ``len_S == 0``). The table is padded with page 0 to :func:`gpu_blocks`' width; the kernel reads no
    page past a row's length."""
    from jax.experimental.pallas.ops.gpu import paged_attention as gpu

    s, kv, g, hd = q_SKGD.shape
    m, page = table_SM.shape[1], k_pool.shape[2]
    ppcb, splits, width = gpu_blocks(m, page, pages_per_compute_block, k_splits)
    table = jnp.pad(table_SM.astype(jnp.int32), ((0, 0), (0, width - m)))
    q = (q_SKGD.astype(jnp.float32) * hd**-0.5).astype(k_pool.dtype).reshape(s, kv * g, hd)  # kernel: no scale
    out = gpu.paged_attention(
        q, k_pool, v_pool, table, jnp.maximum(len_S, 1).astype(jnp.int32), block_h=16,
        pages_per_compute_block=ppcb, k_splits=splits, interpret=interpret,
    )  # fmt: skip
    out = out.reshape(s, kv, g, hd)
    return jnp.where((len_S > 0)[:, None, None, None], out, 0).astype(q_SKGD.dtype)


def tpu_ragged_paged_attention(
    q_SKGD: Array, k_pool: Array, v_pool: Array, table_SM: Array, len_S: Array, *, interpret: bool = False,
    pages_per_block: int = 8, queries_per_block: int = 8,
) -> Array:  # fmt: skip
    """As :func:`gpu_paged_attention` through the TPU ragged paged-attention kernel (one query per row;
    block sizes given, so no lookup of the chip's tuned table). Copies the pool (module docstring)."""
    from jax.experimental.pallas.ops.tpu.ragged_paged_attention import kernel as tpu

    s, kv, g, hd = q_SKGD.shape
    kv_pages = jnp.stack([k_pool, v_pool], axis=1).reshape(2 * kv, *k_pool.shape[1:])  # k0 v0 k1 v1 ...
    kv_pages = kv_pages.transpose(1, 2, 0, 3)  # [num_pages, page, 2 KV, Hd]
    cu_q = jnp.arange(s + 1, dtype=jnp.int32)
    call = lambda: tpu.ragged_paged_attention(  # noqa: E731
        q_SKGD.astype(k_pool.dtype).reshape(s, kv * g, hd), kv_pages, jnp.maximum(len_S, 1).astype(jnp.int32),
        table_SM.astype(jnp.int32), cu_q, jnp.asarray([s], jnp.int32), sm_scale=hd**-0.5,
        num_kv_pages_per_block=min(pages_per_block, table_SM.shape[1]), num_queries_per_block=queries_per_block,
    )  # fmt: skip
    if interpret:
        from jax.experimental.pallas import tpu as pltpu

        with pltpu.force_tpu_interpret_mode():
            out = call()
    else:
        out = call()
    out = out.reshape(s, kv, g, hd)
    return jnp.where((len_S > 0)[:, None, None, None], out, 0).astype(q_SKGD.dtype)


KERNELS = {"pallas_gpu": gpu_paged_attention, "pallas_tpu": tpu_ragged_paged_attention}


# ----------------------------------------------------------------------------------------------- choice
@functools.cache
def interpret_error(kind: str) -> str | None:
    """None if the kernel runs in Pallas interpret mode on this JAX (a 2-row call, compiled and run on its
    own, also when asked while tracing), else the error."""
    q, pool = np.ones((2, 1, 2, 128), np.float32), np.ones((1, 4, 16, 128), np.float32)
    table, len_S = np.asarray([[0, 1], [2, 3]], np.int32), np.asarray([20, 3], np.int32)
    try:
        fn = jax.jit(functools.partial(KERNELS[kind], interpret=True)).lower(q, pool, pool, table, len_S).compile()
        jax.block_until_ready(fn(q, pool, pool, table, len_S))
    except Exception as e:  # any failure means "this interpret mode cannot run the kernel"
        return _short(e)
    return None


def decode_kernel_error(kind) -> str | None:
    """None if the decode-kernel setting ``kind`` can run here, else why not and what to set instead."""
    if kind not in DECODE_KERNELS:
        return f"must be one of {', '.join(DECODE_KERNELS)}"
    if kind in ("auto", "xla"):
        return None
    base = kind.removesuffix("_interpret")
    if not available(base):
        return f"this JAX ({jax.__version__}) has no {base} paged-attention kernel; use auto or xla"
    backend = jax.default_backend()
    if kind == base and backend != _BACKEND[base]:
        return (
            f"the {base} kernel compiles for a {_BACKEND[base].upper()} and JAX's backend here is {backend}; use auto "
            f"(the backend's kernel where there is one, else XLA), xla, or {base}_interpret (slow, for tests)"
        )
    if kind != base and (err := interpret_error(base)) is not None:
        return f"this JAX's Pallas interpret mode cannot run the {base} kernel ({err}); use xla"
    return None


@functools.lru_cache(maxsize=64)
def compiles(kind: str, s: int, kv: int, g: int, hd: int, pages: int, page: int, m: int, dtype: str) -> str | None:
    """None if the kernel compiles here for this decode shape, else the error (cached per shape: one extra
    compilation of the kernel alone). ``auto`` asks before it picks the kernel, as training attention does
    (``attention_kernels.compiles``), so a JAX / driver / Triton without the kernel's lowering falls back to
    the XLA path with a warning instead of crashing the run."""
    args = (
        jax.ShapeDtypeStruct((s, kv, g, hd), dtype),
        jax.ShapeDtypeStruct((kv, pages, page, hd), dtype),
        jax.ShapeDtypeStruct((kv, pages, page, hd), dtype),
        jax.ShapeDtypeStruct((s, m), jnp.int32),
        jax.ShapeDtypeStruct((s,), jnp.int32),
    )
    try:
        jax.jit(KERNELS[kind]).lower(*args).compile()
    except Exception as e:  # any failure to build the kernel means "use the XLA path"
        return _short(e)
    return None


def resolve(kind: str, q_SKGD, k_pool, table_SM) -> tuple[str, bool]:
    """(path, interpret) a traced decode call takes for the setting ``kind``: ``("xla", False)`` or a
    kernel of :data:`KERNELS`. An explicit kernel that cannot run here raises ValueError; ``auto`` takes
    the GPU kernel on a GPU where it compiles at this shape, else the XLA path (one warning naming why,
    except on a CPU, which has no kernel)."""
    err = decode_kernel_error(kind)
    if err is not None:
        raise ValueError(f"decode_kernel={kind!r}: {err}")
    active = partitioning.active()
    sharded = active is not None and active[0].size > 1
    if kind != "auto":
        if kind != "xla" and sharded:
            raise ValueError(
                f"decode_kernel={kind!r}: the paged-attention kernels are not wired for a mesh of "
                f"{active[0].size} devices yet; use auto or xla"
            )
        return (kind.removesuffix("_interpret"), kind.endswith("_interpret")) if kind != "xla" else ("xla", False)
    backend = jax.default_backend()
    if backend == "cpu":
        return "xla", False
    if sharded:
        _warn_once(f"decode_kernel=auto: the paged decode on a mesh of {active[0].size} devices uses the XLA path")
        return "xla", False
    if backend == "tpu":
        _warn_once(
            "decode_kernel=auto: the paged decode on a TPU uses the XLA path (the ragged paged-attention kernel "
            "wants K/V interleaved in one array: it would copy the page pool every step); decode_kernel=pallas_tpu "
            "runs it anyway"
        )
        return "xla", False
    if backend != "gpu" or not available("pallas_gpu"):
        _warn_once(f"decode_kernel=auto: no paged-attention kernel for backend {backend} in JAX {jax.__version__}")
        return "xla", False
    s, kv, g, hd = q_SKGD.shape
    shape = (s, kv, g, hd, k_pool.shape[1], k_pool.shape[2], table_SM.shape[1], jnp.dtype(k_pool.dtype).name)
    error = compiles("pallas_gpu", *shape)
    if error is None:
        return "pallas_gpu", False
    _warn_once(
        f"decode_kernel=auto: the pallas_gpu paged-attention kernel does not compile here ({error}); using the "
        "XLA path (set rollout.decode_kernel=xla to skip this check, or pallas_gpu to see the error)"
    )
    return "xla", False


def _short(e: Exception) -> str:
    """One line of an exception: the innermost ``SomeError: ...`` line of a wrapped one (a host callback's
    traceback inside a runtime error), else its first line."""
    lines = [x.strip() for x in str(e).splitlines() if x.strip()]
    inner = [x for x in lines[1:] if re.match(r"^[A-Za-z_.]*(Error|Exception): ", x)]
    return (inner[-1] if inner else f"{type(e).__name__}: {lines[0] if lines else ''}")[:300]


@functools.cache
def _warn_once(message: str) -> None:
    warnings.warn(message, RuntimeWarning, stacklevel=3)
