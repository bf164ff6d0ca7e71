"""One-query (decode) attention over a paged KV cache that reads only each row's live pages.

Layout (``jaxrlvr.sampling.paged``): a pool of fixed-size pages per layer, keys and values each
``[KV, num_pages, page, Hd]``; a row's keys are its positions ``0 .. len - 1`` laid page after page over
the pages listed in its row of the page table ``table_SM`` (the prompt's full pages first, shared
read-only by the ``G`` samples of a prompt, then the row's own pages, the first of which starts with a
copy of the prompt's partly filled last page), so the first ``ceil(len / page)`` columns are live. This
is the contiguous-positions layout the Pallas paged kernels take (``paged_attention_kernels.py``).

Portable XLA path (:func:`ragged_pairs` + :func:`paged_attention`): the live (row, page) pairs of all rows
are laid end to end in a flat list of static length ``pairs`` (``>= sum(count_S)``; the sampler's host loop
picks it from a ladder of sizes per round), each pair gathers its page and scores it against its row's
query; per-pair softmax statistics (max, normaliser, weighted values) are then merged per row (the online
softmax merge of Milakov & Gimelshein 2018, as in FlashDecoding's split-K). So a step reads
``pairs * page`` positions, not ``rows x longest row``: padding pairs read page 0 and are masked out.
On a CPU the pair scores and weighted values are elementwise products and sums rather than batched
tiny matmuls (:func:`paged_attention`'s ``form``), which XLA:CPU runs about 4/3 as fast.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jaxrlvr.models import paged_attention_kernels as pk

Array = jax.Array

NEG_INF = -1e30


def ragged_pairs(count_S: Array, pairs: int) -> tuple[Array, Array, Array]:
    """The flat (row, page-column) list of ``count_S`` live pages per row, padded to ``pairs`` (static).

    Returns ``slot_L`` (row of each pair), ``col_L`` (its column in the page table) and ``valid_L``; padding
    entries (``l >= sum(count_S)``) are row 0, column 0, invalid. Rows appear in order, columns ascending.
    The row of pair ``l`` is the number of rows whose pairs end at or before ``l``: a cumulative sum of
    end markers (no search loop in the decode step).
    """
    s = count_S.shape[0]
    cum_S = jnp.cumsum(count_S.astype(jnp.int32))
    l_L = jnp.arange(pairs, dtype=jnp.int32)
    ends_L = jnp.zeros((pairs,), jnp.int32).at[cum_S].add(1, mode="drop")
    slot_L = jnp.minimum(jnp.cumsum(ends_L), s - 1)
    valid_L = l_L < cum_S[-1]
    col_L = l_L - (cum_S[slot_L] - count_S[slot_L])
    return jnp.where(valid_L, slot_L, 0), jnp.where(valid_L, col_L, 0), valid_L


def pair_keep(col_L: Array, valid_L: Array, slot_L: Array, len_S: Array, page: int) -> Array:
    """Bool ``[L, page]``: which positions of each pair's page hold a key its row attends: a row's keys
    are its positions ``0 .. len - 1`` laid page after page (column ``c`` holds ``c * page ..``)."""
    o = jnp.arange(page, dtype=jnp.int32)[None, :]
    return valid_L[:, None] & (col_L[:, None] * page + o < len_S[slot_L][:, None])


def gather_pages(pool: Array, page_L: Array) -> Array:
    """``[KV, L, page, Hd]``: pages ``page_L`` of a pool ``[KV, num_pages, page, Hd]``, gathered as whole
    ``page * Hd`` rows (XLA:CPU copies those about twice as fast as 4-d slices)."""
    kv, n, page, hd = pool.shape
    return jnp.take(pool.reshape(kv, n, page * hd), page_L, axis=1, mode="clip").reshape(kv, -1, page, hd)


def _pair_stats(q_KLGD, k_KLPD, v_KLPD, keep_LP, form: str):
    """Per pair and query head: the max score ``m``, the normaliser ``den`` ``[KV, L, G]`` and the
    unnormalised weighted values ``o`` ``[KV, L, G, Hd]`` (float32), over the pair's kept positions."""
    dtype, hd = q_KLGD.dtype, q_KLGD.shape[-1]
    f32 = jnp.float32
    if form == "dot":
        sc = jnp.einsum("klgd,klpd->klgp", q_KLGD, k_KLPD.astype(dtype), preferred_element_type=f32)
    else:  # the same products, summed by a reduction XLA:CPU vectorises (no batch of tiny dots)
        sc = jnp.sum(q_KLGD.astype(f32)[:, :, :, None, :] * k_KLPD.astype(dtype).astype(f32)[:, :, None], axis=-1)
    sc = sc * hd**-0.5
    ok = keep_LP[None, :, None, :]
    sc = jnp.where(ok, sc, NEG_INF)
    m = jnp.max(sc, axis=-1)
    p = jnp.where(ok, jnp.exp(sc - m[..., None]), 0.0)
    den = jnp.sum(p, axis=-1)
    p = p.astype(dtype)  # probabilities in the compute dtype (the contiguous path's numerics)
    if form == "dot":
        o = jnp.einsum("klgp,klpd->klgd", p, v_KLPD.astype(dtype), preferred_element_type=f32)
    else:
        o = jnp.sum(p.astype(f32)[..., None] * v_KLPD.astype(dtype).astype(f32)[:, :, None], axis=-2)
    return m, den, o


def paged_attention(
    q_SKGD: Array, k_pool: Array, v_pool: Array, page_L: Array, slot_L: Array, keep_LP: Array,
    *, form: str = "auto",
):  # fmt: skip
    """Attention of one query per row over its live pages (XLA gather path).

    ``q_SKGD``: queries ``[S, KV, G, Hd]`` (G query heads per K/V head); ``k_pool`` / ``v_pool``:
    ``[KV, num_pages, page, Hd]``; ``page_L`` / ``slot_L``: page and row of each pair; ``keep_LP``: the
    positions each pair attends. Scores and softmax in float32, probabilities in the compute dtype (the
    contiguous path's numerics). Returns ``[S, KV, G, Hd]`` in ``q``'s dtype (zeros for a row without a
    pair).

    ``form``: ``"dot"`` scores each pair by a batched matmul over the gathered pages (one
    ``(G x Hd) . (Hd x page)`` product per pair and K/V head: the GPU / TPU fallback); ``"elementwise"``
    by a product and a sum over ``Hd`` (and the values by a product and a sum over the page), which
    XLA:CPU runs as plain vectorised reductions: the same float32 sums (bitwise equal on the development
    machine) in about 3/4 of the dot form's time at the rollout bench's shapes (docs/sampler.md, "The
    XLA paged step on a CPU"); ``"auto"``: elementwise on a CPU backend, else dot. Both keep K/V heads
    before pairs (``[KV, L, ...]``, the gathered pages' order), so XLA inserts no transposed copy.
    """
    s, kv, g, hd = q_SKGD.shape
    if form == "auto":
        form = "elementwise" if jax.default_backend() == "cpu" else "dot"
    if form not in ("dot", "elementwise"):
        raise ValueError(f"form must be auto, dot or elementwise, got {form!r}")
    q_KLGD = jnp.take(q_SKGD.swapaxes(0, 1), slot_L, axis=1)
    stats = _pair_stats(q_KLGD, gather_pages(k_pool, page_L), gather_pages(v_pool, page_L), keep_LP, form)
    m_L, l_L, o_L = (x.swapaxes(0, 1) for x in stats)  # [L, KV, G(, Hd)]: small
    m_S = jax.ops.segment_max(m_L, slot_L, num_segments=s)
    w_L = jnp.exp(m_L - jnp.take(m_S, slot_L, axis=0))
    den_S = jax.ops.segment_sum(l_L * w_L, slot_L, num_segments=s)
    num_S = jax.ops.segment_sum(o_L * w_L[..., None], slot_L, num_segments=s)
    return (num_S / jnp.where(den_S > 0, den_S, 1.0)[..., None]).astype(q_SKGD.dtype)


def reference_paged_attention(q_SKGD, k_pool, v_pool, table_SM, len_S):
    """The dense formula over each row's whole page-table row (every column gathered, masked beyond the
    row's length ``len_S``): for tests."""
    s, kv, g, hd = q_SKGD.shape
    m, page = table_SM.shape[1], k_pool.shape[2]
    rows = lambda x: jnp.take(x, table_SM, axis=1, mode="clip").transpose(1, 2, 3, 0, 4).reshape(s, m * page, kv, hd)  # noqa: E731
    k, v = rows(k_pool), rows(v_pool)
    keep = jnp.arange(m * page, dtype=jnp.int32)[None, :] < len_S[:, None]
    sc = jnp.einsum("skgd,spkd->skgp", q_SKGD, k, preferred_element_type=jnp.float32) * hd**-0.5
    sc = jnp.where(keep[:, None, None, :], sc, NEG_INF)
    w = jax.nn.softmax(sc, axis=-1)
    w = jnp.where(jnp.any(keep, axis=-1)[:, None, None, None], w, 0.0)
    return jnp.einsum("skgp,spkd->skgd", w, v.astype(jnp.float32)).astype(q_SKGD.dtype)


def decode_attention(q_SKGD, k_pool, v_pool, table_SM, len_S, pairs, *, kernel: str = "auto"):
    """The sampler's decode attention: one query per row over its ``len_S`` positions, through the path
    the setting ``kernel`` resolves to (``paged_attention_kernels.resolve``: ``auto``, ``xla``, a Pallas
    kernel, or one in interpret mode). ``pairs`` = ``(page_L, slot_L, keep_LP)`` of the XLA path
    (:func:`ragged_pairs`, :func:`pair_keep`); the kernels take the page table ``table_SM`` and
    ``len_S`` instead. Returns ``[S, KV, G, Hd]`` in ``q``'s dtype."""
    impl, interpret = pk.resolve(kernel, q_SKGD, k_pool, table_SM)
    if impl == "xla":
        return paged_attention(q_SKGD, k_pool, v_pool, *pairs)
    return pk.KERNELS[impl](q_SKGD, k_pool, v_pool, table_SM, len_S, interpret=interpret)
