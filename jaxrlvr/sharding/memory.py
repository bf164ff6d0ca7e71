"""Memory planning of the sampler (abstract shapes only; nothing is allocated), the trainer and the sampler
together on one device, and the budgets of real cards. The train step's plan lives with the train step
(:func:`jaxrlvr.train.memory.train_step_memory`); ``scripts/memory_plan.py`` prints both (docs/mesh.md)."""

from __future__ import annotations

import functools
import math
import os

import jax
import jax.numpy as jnp
from jax.sharding import Mesh

from jaxrlvr.models import ModelConfig, abstract_params
from jaxrlvr.sharding.sampler import cache_shardings, sampler_param_shardings

GIB = 1024**3

# Memory per device of named cards, in GiB (2**30 bytes): what the device reports as its total, the base of
# JAX's preallocation fraction on a GPU. NVIDIA: the NVML totals (nvidia-smi) tabulated at
# https://thundergolfer.com/blog/nvidia-gpu-memory-capacity (H100 80 GB: 81,559 MiB; H200 141 GB: 143,771 MiB;
# A100 80 GB: 81,920 MiB; A100 40 GB: 40,960 MiB), not measured by us. TPU: the vendor spec's "16 GB" HBM
# per v5e chip (https://cloud.google.com/tpu/docs/v5e), read as 10**9 bytes (the smaller reading; ours).
CARDS = {
    "h100-80gb": (81559 / 1024, "gpu", "NVML total 81,559 MiB of an 'H100 80 GB' (thundergolfer.com table)"),
    "h200-141gb": (143771 / 1024, "gpu", "NVML total 143,771 MiB of an 'H200 141 GB' (thundergolfer.com table)"),
    "a100-80gb": (80.0, "gpu", "NVML total 81,920 MiB of an 'A100 80 GB' (thundergolfer.com table)"),
    "a100-40gb": (40.0, "gpu", "NVML total 40,960 MiB of an 'A100 40 GB' (thundergolfer.com table)"),
    "tpu-v5e-16gb": (16e9 / GIB, "tpu", "vendor spec 16 GB HBM per v5e chip (Cloud TPU docs), as 10^9 bytes"),
}
DEFAULT_CARD = "h100-80gb"
# JAX's default share of a GPU's total memory for its allocator (docs.jax.dev "GPU memory allocation": "JAX
# will preallocate 75% of the total GPU memory when the first JAX operation is run"), set by
# XLA_CLIENT_MEM_FRACTION (JAX 0.10; the older XLA_PYTHON_CLIENT_MEM_FRACTION still read by jaxlib).
JAX_GPU_MEM_FRACTION = 0.75
MEM_FRACTION_ENV = ("XLA_CLIENT_MEM_FRACTION", "XLA_PYTHON_CLIENT_MEM_FRACTION")


def mem_fraction_from_env(environ=None) -> tuple[float, str]:
    """(fraction, where it came from): the first of ``MEM_FRACTION_ENV`` that is set, else JAX's 0.75."""
    environ = os.environ if environ is None else environ
    for name in MEM_FRACTION_ENV:
        if environ.get(name, ""):
            return float(environ[name]), name
    return JAX_GPU_MEM_FRACTION, "JAX's default"


def card_budget_bytes(card: str, mem_fraction: float) -> int:
    """Bytes JAX may use on one device of ``card``: its total times ``mem_fraction`` on a GPU (the allocator's
    limit, ``bytes_limit``); the whole HBM on a TPU (the fraction is a GPU allocator setting)."""
    if card not in CARDS:
        raise KeyError(f"unknown card {card!r}; known: {', '.join(CARDS)}")
    gib, kind, _ = CARDS[card]
    return int(gib * GIB * (mem_fraction if kind == "gpu" else 1.0))


def device_bytes_limit(device=None) -> int | None:
    """``memory_stats()["bytes_limit"]`` of a live device (what JAX's allocator may hand out: on a GPU the
    card's total times the preallocation fraction), or None where the backend reports none (CPU)."""
    device = device or jax.devices()[0]
    try:
        st = device.memory_stats() or {}
    except Exception:  # a backend without memory statistics
        return None
    return int(st["bytes_limit"]) if st.get("bytes_limit") else None


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


def _nbytes(tree) -> int:
    return sum(int(math.prod(x.shape)) * jnp.dtype(x.dtype).itemsize for x in jax.tree.leaves(tree))


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
    group_size: int = 1,
    open_prompts: int = 0,
) -> dict:
    """Memory of the paged sampler on one device (``sampling.paged``), from XLA's compiled memory analysis
    of its jitted programs lowered on abstract shapes (nothing is allocated): a decode round
    (``paged.round_``, the pool, slot state and outputs donated as the sampler runs it) and, with
    ``open_prompts`` = Q > 0, the prefill of Q prompts of ``prompt_len`` tokens into their pages
    (``paged.open_prompts``; the sampler opens at most a power of two of the prompts one round admits).

    ``pairs``: the round's pair-list size (default ``paged.pair_bucket(pool_pages)``: the largest a round of a
    full pool reads). Returns bytes: ``pool`` (the page pool: pages x page x layers x 2 x KV x Hd x dtype),
    ``weights`` (the sampler's copy of the params, ``inference.prepare_params``: fused, cast to the compute
    dtype), and for the round ``arguments`` (weights + pool + slot state + outputs), ``outputs``,
    ``aliased`` (donated buffers reused), ``temp`` (gathered pages, logits [S, V], ...), ``peak`` =
    arguments + outputs - aliased + temp; ``prefill_peak`` / ``prefill_temp`` likewise (0 without
    ``open_prompts``); ``sampler_peak`` = the larger peak. With a train state resident on the same device,
    both together need its bytes plus ``sampler_peak`` (:func:`colocated_memory`)."""
    from jaxrlvr.sampling import inference, paged
    from jaxrlvr.sampling.sampler import Sampler
    from jaxrlvr.sampling.strategies import SamplingParams

    sampler = Sampler(
        model_cfg, SamplingParams(), max_new_tokens=max_new_tokens, pad_id=0, num_samples=max(1, group_size)
    )
    ip = jax.eval_shape(functools.partial(inference.prepare_params, model_cfg), abstract_params(model_cfg))
    pool, slots_, out, first = jax.eval_shape(lambda: paged.init(sampler, slots, pool_pages, page_size, rows))
    i32 = lambda *shape: jax.ShapeDtypeStruct(shape, jnp.int32)  # noqa: E731
    key = jax.ShapeDtypeStruct((2,), jnp.uint32)
    m_prompt = -(-prompt_len // page_size)
    cols = m_prompt + max(1, -(-(max_new_tokens - 1) // page_size))  # the page table's width (paged.run)
    args = (
        ip, pool, slots_, out, first, key, i32(4), i32(slots, cols),
        jax.ShapeDtypeStruct((slots,), jnp.bool_), i32(slots), i32(slots), i32(slots), i32(slots), i32(slots),
        i32(), i32(),
    )  # fmt: skip
    pairs = int(pairs or paged.pair_bucket(pool_pages))
    fn = jax.jit(functools.partial(paged.round_, sampler, pairs=pairs), donate_argnums=(1, 2, 3))
    r = _analysis(fn.lower(*args))
    p = {"peak": 0, "temp": 0}
    if open_prompts:
        q = int(open_prompts)
        fn = jax.jit(functools.partial(paged.open_prompts, sampler), donate_argnums=(1, 2))
        p = _analysis(fn.lower(ip, pool, first, key, i32(q, prompt_len), i32(q), i32(q, m_prompt), i32(q)))
    return {
        "pool": _nbytes(pool),
        "weights": _nbytes(ip),
        "pairs": pairs,
        **r,
        "prefill_peak": p["peak"],
        "prefill_temp": p["temp"],
        "sampler_peak": max(r["peak"], p["peak"]),
    }


def _analysis(lowered) -> dict:
    mem = lowered.compile().memory_analysis()
    a, o = int(mem.argument_size_in_bytes), int(mem.output_size_in_bytes)
    al, t = int(mem.alias_size_in_bytes), int(mem.temp_size_in_bytes)
    return {"arguments": a, "outputs": o, "aliased": al, "temp": t, "peak": a + o - al + t}


def colocated_memory(
    model_cfg: ModelConfig,
    *,
    budget: int,
    train_state: int,
    train_peak: int,
    prompts: int,
    group_size: int,
    prompt_len: int,
    max_new_tokens: int,
    page_size: int,
) -> dict:
    """The trainer and the paged sampler on one device (colocated, the default), phase by phase as the
    synchronous loop runs them. All sizes in bytes.

    - The update: ``train_peak`` (``train_step_memory``'s ``peak``: the train state, the batch, the step's
      temporaries).
    - The rollout: the train state stays resident (``train_state``: params + optimizer state), the sampler
      adds its weights copy, then sizes its pool from what is left exactly as the sampler does
      (``paged_sizing.pool_pages_from_free``, ``POOL_FRACTION`` of ``budget - train_state - weights``; at
      least one row's pages, at most every row's: ``paged.run``), its slots by
      ``paged_sizing.default_num_slots``, and runs its programs (:func:`paged_sampler_memory`, compiled at
      those shapes): ``rollout_peak`` = ``train_state`` + the sampler's peak.

    ``fits``: both phases within ``budget``. Assumes ``rollout.max_staleness = 0`` (phases in turn); see
    :func:`overlap_peak` for a colocated asynchronous run."""
    from jaxrlvr.sampling import inference, paged_sizing

    rows = prompts * group_size
    page = int(page_size)
    weights = _nbytes(
        jax.eval_shape(functools.partial(inference.prepare_params, model_cfg), abstract_params(model_cfg))
    )
    free = budget - train_state - weights
    from_free = paged_sizing.pool_pages_from_free(model_cfg, page, free)
    least = paged_sizing.min_pool_pages(prompt_len, max_new_tokens, page)
    every = paged_sizing.pages_for_every_row([prompt_len] * prompts, prompts * group_size, max_new_tokens, page)
    pool_pages = max(least, min(from_free, every))
    slots = paged_sizing.default_num_slots(rows, pool_pages, page, prompt_len, max_new_tokens, group_size)
    opened = 1 << (-(-slots // group_size) - 1).bit_length()  # the first round's prompts, to a power of 2
    sm = paged_sampler_memory(
        model_cfg, pool_pages=pool_pages, page_size=page, slots=slots, rows=rows, prompt_len=prompt_len,
        max_new_tokens=max_new_tokens, group_size=group_size, open_prompts=opened,
    )  # fmt: skip
    rollout_peak = train_state + sm["sampler_peak"]
    return {
        "budget": budget,
        "free_for_sampler": free,
        "pool_pages_from_free": from_free,
        "pool_pages_every_row": every,
        "pool_pages_min": least,
        "pool_pages": pool_pages,
        "pool_capped_by_rows": from_free > every,
        "page_bytes": paged_sizing.page_bytes(model_cfg, page),
        "slots": slots,
        "rows": rows,
        "sampler": sm,
        "train_peak": train_peak,
        "rollout_peak": rollout_peak,
        "peak": max(train_peak, rollout_peak),
        "fits": max(train_peak, rollout_peak) <= budget,
    }


def overlap_peak(plan: dict, *, params: int, staleness: int) -> int:
    """Worst case of a colocated asynchronous run (``rollout.max_staleness = k >= 1``): the update and a
    rollout at once, plus the ``k`` params snapshots the jobs in flight sample with (``train/async_rollout``).
    The pool is sized from the free memory when the rollout starts, so it shrinks if the update's
    temporaries are live then: an upper bound, not a plan."""
    return plan["train_peak"] + staleness * params + plan["sampler"]["sampler_peak"]
