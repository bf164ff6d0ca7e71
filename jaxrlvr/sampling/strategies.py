"""Sampling strategies: greedy, temperature, top-k and top-p (nucleus), as small pure functions.

Everything is float32 and exact; no strategy sorts the whole vocabulary in the common case.

* The strategy itself is a frozen, hashable :class:`SamplingParams`, a static argument of the jitted
  sampler (a new temperature or top-p compiles once more).
* :func:`sample_tokens` maps logits ``[B, V]`` and one PRNG key per row to the sampled tokens and their
  log-probabilities under ``softmax(logits / temperature)`` over the *full* vocabulary (no top-k / top-p
  renormalisation: this is the behaviour policy's log-prob that RL losses need).

Semantics (those of ``transformers``' warpers, applied in this order): scale by ``1 / temperature``; keep
the ``top_k`` most probable tokens; keep the smallest prefix of the tokens sorted by probability whose
mass reaches ``top_p`` of the remaining mass (a token is kept iff the mass of the tokens ranked above it
is ``< top_p``; the most probable token is always kept); sample from what is kept, renormalised. Ties in
probability are ranked by token id (a stable sort).

How top-p avoids the sort (exact, not an approximation): draw ``n`` i.i.d. candidates from the full
softmax by inverse-CDF sampling, and keep the first one that belongs to the nucleus. Membership of one
token ``j`` needs no sort: ``j`` is in the nucleus iff ``sum_i p_i [i ranked above j] < top_p``, one
masked reduction over the vocabulary. Conditioned on a candidate being accepted, the first accepted one is
distributed exactly as the nucleus distribution (rejection sampling); each candidate is accepted with
probability >= top_p, and ``n`` is chosen so that a row rejects all of them with probability <= 1e-6. A row
that does gets an exact draw from a full sort (``lax.cond``, run only when some row needs it) with an
independent uniform, so the result is exact either way.

Inverse-CDF sampling is two-level (block sums, then a cumulative sum inside the chosen block), which
needs one uniform number per candidate instead of one per vocabulary entry (Gumbel-max), never scans the
whole vocabulary sequentially, and resolves probabilities down to ~1e-7 of a block's mass.
"""

from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp

from jaxrlvr.sampling.prng import step_uniforms

Array = jax.Array

# A row rejects every nucleus candidate with probability <= this; it then falls back to the exact sort.
_REJECT_ALL_PROB = 1e-6
_MAX_CANDIDATES = 32


@dataclasses.dataclass(frozen=True)
class SamplingParams:
    """How the next token is chosen.

    Attributes:
      temperature: logits are divided by it (> 0). Also the temperature of the returned log-probs in
        greedy mode.
      top_p: nucleus mass in (0, 1]; 1.0 disables it.
      top_k: keep only the k most probable tokens; 0 disables it.
      greedy: take the arg-max (first index on ties); temperature only affects the log-probs.
    """

    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0
    greedy: bool = False

    def __post_init__(self):
        t, p, k = self.temperature, self.top_p, self.top_k
        if isinstance(t, bool) or not isinstance(t, int | float) or not math.isfinite(t) or t <= 0:
            raise ValueError(f"temperature must be a finite float > 0, got {t!r}")
        if isinstance(p, bool) or not isinstance(p, int | float) or not 0.0 < p <= 1.0:
            raise ValueError(f"top_p must be in (0, 1], got {p!r}")
        if isinstance(k, bool) or not isinstance(k, int) or k < 0:
            raise ValueError(f"top_k must be an int >= 0 (0 disables it), got {k!r}")
        if not isinstance(self.greedy, bool):
            raise ValueError(f"greedy must be a bool, got {self.greedy!r}")
        object.__setattr__(self, "temperature", float(t))
        object.__setattr__(self, "top_p", float(p))

    @property
    def num_candidates(self) -> int:
        """Nucleus candidates drawn per row and step (1 when top-p is off)."""
        if self.top_p >= 1.0:
            return 1
        n = math.ceil(math.log(_REJECT_ALL_PROB) / math.log1p(-self.top_p))
        return int(min(max(n, 2), _MAX_CANDIDATES))

    @property
    def num_uniforms(self) -> int:
        """Uniform numbers one row consumes per step."""
        if self.greedy:
            return 1
        if self.top_k:
            return 1
        return self.num_candidates + (1 if self.top_p < 1.0 else 0)


# ----------------------------------------------------------------------------------------------- helpers
def scaled_logits(logits_BV: Array, temperature: float) -> Array:
    """float32 ``logits / temperature``."""
    return logits_BV.astype(jnp.float32) / jnp.float32(temperature)


def log_softmax(x_BV: Array) -> Array:
    """float32 log-softmax over the last axis."""
    return jax.nn.log_softmax(x_BV.astype(jnp.float32), axis=-1)


def _below(x: Array) -> Array:
    """The largest float32 strictly below x (x > 0)."""
    return jnp.nextafter(x, jnp.zeros_like(x))


def _block_size(v: int) -> int:
    """Block width of the two-level inverse CDF (measured on CPU: narrow blocks are cheapest)."""
    if v <= 64:
        return v
    return 16 if v <= 4096 else 128


def _greedy(x_BV: Array) -> Array:
    """Arg-max with the first index on ties, as two plain reductions."""
    v = x_BV.shape[-1]
    m = jnp.max(x_BV, axis=-1, keepdims=True)
    iota = jax.lax.broadcasted_iota(jnp.int32, x_BV.shape, 1)
    return jnp.min(jnp.where(x_BV == m, iota, v), axis=-1).astype(jnp.int32)


def inverse_cdf(w_BV: Array, u_BN: Array) -> Array:
    """Token ids [B, N]: for each uniform u, the first j with cdf_j > u * total of weights w >= 0.

    Exact inverse-CDF sampling of ``w / sum(w)`` (up to float32 rounding), computed in two levels (block
    sums, then a cumulative sum inside the chosen block). A token of zero weight is never returned; each
    row needs some positive weight.
    """
    b, v = w_BV.shape
    n = u_BN.shape[1]
    c = _block_size(v)
    nb = -(-v // c)
    if nb * c != v:
        w_BV = jnp.pad(w_BV, ((0, 0), (0, nb * c - v)))
    w_BKC = w_BV.reshape(b, nb, c)
    if nb == 1:
        cdf_BNC = jnp.broadcast_to(jnp.cumsum(w_BKC[:, 0], axis=-1)[:, None, :], (b, n, c))
        target_BN = jnp.minimum(u_BN * cdf_BNC[:, :, -1], _below(cdf_BNC[:, :, -1]))
        return jnp.sum(cdf_BNC <= target_BN[:, :, None], axis=-1, dtype=jnp.int32)
    cdf_BK = jnp.cumsum(jnp.sum(w_BKC, axis=-1), axis=-1)
    total_B1 = cdf_BK[:, -1:]
    target_BN = jnp.minimum(u_BN * total_B1, _below(total_B1))
    blk_BN = jnp.minimum(jnp.sum(cdf_BK[:, None, :] <= target_BN[:, :, None], axis=-1, dtype=jnp.int32), nb - 1)
    before_BN = jnp.where(blk_BN > 0, jnp.take_along_axis(cdf_BK, jnp.maximum(blk_BN - 1, 0), axis=1), 0.0)
    inner_BNC = jnp.cumsum(jnp.take_along_axis(w_BKC, blk_BN[:, :, None], axis=1), axis=-1)
    rest_BN = jnp.minimum(jnp.maximum(target_BN - before_BN, 0.0), _below(inner_BNC[:, :, -1]))
    idx_BN = jnp.sum(inner_BNC <= rest_BN[:, :, None], axis=-1, dtype=jnp.int32)
    return blk_BN * c + jnp.minimum(idx_BN, c - 1)


def _mass_above(e_BV: Array, tok_BN: Array) -> Array:
    """sum_i e_i [i ranked above tok] (ranked: larger e, then smaller index), [B, N].

    One 2-D masked reduction per candidate (cheaper on CPU than one [B, N, V] broadcast).
    """
    v = e_BV.shape[-1]
    e_tok_BN = jnp.take_along_axis(e_BV, tok_BN, axis=1)
    iota = jax.lax.broadcasted_iota(jnp.int32, (1, v), 1)
    out = []
    for n in range(tok_BN.shape[1]):
        et, tk = e_tok_BN[:, n : n + 1], tok_BN[:, n : n + 1]
        above = (e_BV > et) | ((e_BV == et) & (iota < tk))
        out.append(jnp.sum(jnp.where(above, e_BV, 0.0), axis=-1))
    return jnp.stack(out, axis=1)


def _nucleus_by_sort(e_BV: Array, total_B: Array, u_B: Array, top_p: float) -> Array:
    """Exact nucleus draw through a full (stable, descending) sort of the weights."""
    b, v = e_BV.shape
    iota = jax.lax.broadcasted_iota(jnp.int32, (b, v), 1)
    neg_sorted, order = jax.lax.sort((-e_BV, iota), dimension=1, is_stable=True, num_keys=1)
    e_sorted = -neg_sorted
    excl = jnp.cumsum(e_sorted, axis=-1) - e_sorted
    keep = excl < top_p * total_B[:, None]
    pick = inverse_cdf(jnp.where(keep, e_sorted, 0.0), u_B[:, None])[:, 0]
    return jnp.take_along_axis(order, pick[:, None], axis=1)[:, 0]


def _nucleus(e_BV: Array, total_B: Array, u_BN: Array, top_p: float) -> Array:
    """Exact top-p draw by rejection (see the module docstring); ``u_BN`` has n candidates + 1 columns."""
    cand_BN = inverse_cdf(e_BV, u_BN[:, :-1])
    ok_BN = _mass_above(e_BV, cand_BN) < top_p * total_B[:, None]
    any_ok_B = jnp.any(ok_BN, axis=-1)
    first_B = jnp.argmax(ok_BN, axis=-1)
    tok_B = jnp.take_along_axis(cand_BN, first_B[:, None], axis=1)[:, 0]
    fallback_B = jax.lax.cond(
        jnp.all(any_ok_B),
        lambda: tok_B,
        lambda: _nucleus_by_sort(e_BV, total_B, u_BN[:, -1], top_p),
    )
    return jnp.where(any_ok_B, tok_B, fallback_B)


def _top_k(x_BV: Array, u_B: Array, k: int, top_p: float) -> Array:
    """Exact top-k (then top-p over the renormalised top-k) from ``lax.top_k``'s sorted candidates."""
    vals_BK, idx_BK = jax.lax.top_k(x_BV, k)
    e_BK = jnp.exp(vals_BK - vals_BK[:, :1])
    if top_p < 1.0:
        excl = jnp.cumsum(e_BK, axis=-1) - e_BK
        e_BK = jnp.where(excl < top_p * jnp.sum(e_BK, axis=-1, keepdims=True), e_BK, 0.0)
    pick_B = inverse_cdf(e_BK, u_B[:, None])[:, 0]
    return jnp.take_along_axis(idx_BK, pick_B[:, None], axis=1)[:, 0]


# -------------------------------------------------------------------------------------------------- API
def sample_from_uniforms(logits_BV: Array, u_BU: Array, params: SamplingParams) -> tuple[Array, Array]:
    """(tokens int32 [B], log-probs float32 [B]) given ``params.num_uniforms`` uniforms [0, 1) per row.

    The log-prob is that of the chosen token under ``softmax(logits / temperature)`` over the whole
    vocabulary, without top-k / top-p renormalisation.
    """
    x_BV = scaled_logits(logits_BV, params.temperature)
    v = x_BV.shape[-1]
    m_B1 = jnp.max(x_BV, axis=-1, keepdims=True)
    e_BV = jnp.exp(x_BV - m_B1)
    total_B = jnp.sum(e_BV, axis=-1)
    if params.greedy:
        tok_B = _greedy(x_BV)
    elif params.top_k and params.top_k < v:
        tok_B = _top_k(x_BV, u_BU[:, 0], params.top_k, params.top_p)
    elif params.top_p < 1.0:
        tok_B = _nucleus(e_BV, total_B, u_BU, params.top_p)
    else:
        tok_B = inverse_cdf(e_BV, u_BU[:, :1])[:, 0]
    x_tok_B = jnp.take_along_axis(x_BV, tok_B[:, None], axis=1)[:, 0]
    logp_B = x_tok_B - m_B1[:, 0] - jnp.log(total_B)
    return tok_B.astype(jnp.int32), logp_B


def sample_tokens(
    logits_BV: Array,
    key: Array,
    params: SamplingParams,
    *,
    step: Array | int = 0,
    rows_B: Array | None = None,
) -> tuple[Array, Array]:
    """(tokens int32 [B], log-probs float32 [B]): one draw per row, with the sampler's counter-based
    uniforms for ``key`` (``prng.seed_key(seed)``), decode ``step`` (a scalar or one per row) and row ids
    (default ``0..B-1``)."""
    if rows_B is None:
        rows_B = jnp.arange(logits_BV.shape[0], dtype=jnp.int32)
    return sample_from_uniforms(logits_BV, step_uniforms(key, rows_B, step, params.num_uniforms), params)


def nucleus_mask(logits_BV: Array, params: SamplingParams) -> Array:
    """Reference (sort-based) boolean mask [B, V] of the tokens the strategy may sample; for tests/docs."""
    x_BV = scaled_logits(logits_BV, params.temperature)
    b, v = x_BV.shape
    if params.greedy:
        return jax.nn.one_hot(_greedy(x_BV), v, dtype=jnp.bool_)
    iota = jax.lax.broadcasted_iota(jnp.int32, (b, v), 1)
    neg_sorted, order = jax.lax.sort((-x_BV, iota), dimension=1, is_stable=True, num_keys=1)
    e_sorted = jnp.exp(-neg_sorted - jnp.max(x_BV, axis=-1, keepdims=True))
    keep = jnp.ones((b, v), jnp.bool_)
    if params.top_k and params.top_k < v:
        keep = iota < params.top_k
        e_sorted = jnp.where(keep, e_sorted, 0.0)
    excl = jnp.cumsum(e_sorted, axis=-1) - e_sorted
    if params.top_p < 1.0:
        keep = keep & (excl < params.top_p * jnp.sum(e_sorted, axis=-1, keepdims=True))
    inv = jnp.argsort(order, axis=-1)
    return jnp.take_along_axis(keep, inv, axis=1)
