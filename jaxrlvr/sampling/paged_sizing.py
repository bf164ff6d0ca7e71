"""Sizing of the paged sampler (``paged.py``): page size, pool size from free device memory, slot count,
compaction floor. Pure host-side arithmetic (docs/sampler.md, "Paged KV cache")."""

from __future__ import annotations

import os

import jax
import jax.numpy as jnp

from jaxrlvr.models.config import ModelConfig

# Positions per page. Ours: vLLM's default block size; a row over-reads at most one partly filled page of
# its prompt and one of its own (< 1% of the positions at the papers' ~2.5k-token rows, ~10% at the CPU
# benchmark's ~150), and pages this small keep the pairs list of a step close to the positions needed.
PAGE_SIZE = 16
# Share of a device's free memory (after the weights and whatever else is resident, e.g. the train state)
# given to the page pool. Ours: leaves the other half for the decode step's temporaries (logits [S, V],
# the gathered pages) and XLA's workspace.
POOL_FRACTION = 0.5
# Smallest slot count compaction goes down to on an accelerator (as continuous.MIN_SLOTS: a decode step of
# <= 32 rows costs about the same there, weight-bound). On a CPU a step costs about its rows (the rollout
# benchmark: the same time per slot-step at 32 and 130 slots), so compaction goes down to 1 (CPU_MIN_SLOTS).
MIN_SLOTS = 32
CPU_MIN_SLOTS = 1


def page_bytes(config: ModelConfig, page: int) -> int:
    """Bytes of one page (all layers, keys and values, compute dtype)."""
    item = jnp.dtype(config.jnp_dtype).itemsize
    return 2 * config.num_layers * config.num_kv_heads * config.head_dim * page * item


def free_device_bytes(device=None) -> int:
    """Free bytes of a device: ``memory_stats``' ``bytes_limit - bytes_in_use`` (what JAX's allocator may
    still hand out: on a GPU ``bytes_limit`` is ``XLA_CLIENT_MEM_FRACTION`` (or the older
    ``XLA_PYTHON_CLIENT_MEM_FRACTION``; default 0.75) of the card's total, docs/mesh.md "Memory planning"); on
    a CPU (no statistics) the machine's available memory."""
    device = device or jax.devices()[0]
    try:
        st = device.memory_stats() or {}
    except Exception:  # a backend without memory statistics
        st = {}
    if st.get("bytes_limit"):
        return max(0, int(st["bytes_limit"]) - int(st.get("bytes_in_use", 0)))
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_AVPHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 8 << 30


def min_pool_pages(prompt_len: int, max_new_tokens: int, page: int) -> int:
    """Enough pages for one row of a ``prompt_len``-token bucket to run to the cap (its prompt's pages,
    then its own: the copy of the prompt's partly filled page and the generated tokens)."""
    return -(-prompt_len // page) + -(-(page - 1 + max(max_new_tokens - 1, 1)) // page)


def pool_pages_from_free(
    config: ModelConfig, page: int, free_bytes: int, fraction: float = POOL_FRACTION, kv_split: int = 1
) -> int:
    """Pages of ``page`` positions in ``fraction`` of ``free_bytes``: the pool's sizing rule, shared by the
    sampler (:func:`default_pool_pages`, free bytes measured on the device; on a mesh
    ``sharding.sampler.paged_pool_share``) and the memory plan (``sharding.colocated_memory``, free bytes =
    the budget less the train state and the sampler's weights). ``kv_split``: devices the K/V heads are
    split over, so a device holds ``page_bytes / kv_split`` of each page."""
    return int(fraction * max(int(free_bytes), 0)) // (page_bytes(config, page) // kv_split)


def default_pool_pages(config: ModelConfig, page: int, device=None, fraction: float = POOL_FRACTION) -> int:
    """``fraction`` of the device's free memory (:func:`free_device_bytes`, measured now: after the weights
    and any resident train state) in pages (:func:`pool_pages_from_free`)."""
    return pool_pages_from_free(config, page, free_device_bytes(device), fraction)


def pages_for_every_row(prompt_lengths, rows: int, max_new_tokens: int, page: int) -> int:
    """Pages that ``rows`` rows of the prompts ``prompt_lengths`` (0: a padding prompt) at the cap need at
    once: each prompt's pages plus each row's own (the copy of the partly filled prompt page and the
    generated tokens). The pool is never sized above this (``paged.run``, per shard)."""
    own = -(-(page + max_new_tokens - 1) // page)
    return sum(-(-int(x) // page) for x in prompt_lengths if x > 0) + rows * own


def default_min_slots(platform: str) -> int:
    """The compaction floor on a platform (see ``MIN_SLOTS``)."""
    return CPU_MIN_SLOTS if platform == "cpu" else MIN_SLOTS


def default_num_slots(rows: int, pool_pages: int, page: int, prompt_len: int, max_new_tokens: int, g: int) -> int:
    """Decode slots: the rows whose expected footprint fits the pool, at most ``rows``. Ours: a row is
    counted at its share of its prompt's pages plus ``N / 4`` positions (twice the mean of long-tailed
    lengths like the papers', whose mean is ~N/7, and a row holds on average half its final length over its
    life), so the pool rarely runs dry (then rows are preempted, which costs their restart)."""
    per_row = -(-prompt_len // g) + max(page, max_new_tokens // 4)
    return max(1, min(rows, pool_pages * page // per_row))
