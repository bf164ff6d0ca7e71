"""Per-token policy losses (PPO-clip / DAPO clip-higher / dual-clip / Clip-Cov / KL-Cov), loss
aggregation, and KL penalties.

Metric convention: every ``metrics`` dict returned here holds masked **sums** over valid tokens plus
the count ``num_tokens``, so micro-batch metrics add up; ``jaxrlvr.algos.finalize_metrics`` turns them
into means.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jaxrlvr.algos._util import (
    as_bool_mask,
    check_2d,
    check_ratio,
    f32,
    floor_mul,
    is_inf,
    masked,
    masked_mean_all,
    select_random,
    select_top,
)

AGG_MODES = ("token-mean", "seq-mean-token-mean", "seq-mean-token-sum", "seq-mean-token-sum-norm")
KL_KINDS = ("k1", "abs", "k2", "k3")


def _check_clip(clip_low, clip_high, clip_c, log_ratio_clamp) -> None:
    for name, v in (("clip_low", clip_low), ("clip_high", clip_high)):
        if not v >= 0:
            raise ValueError(f"{name} must be >= 0 (inf for no clipping), got {v!r}")
    if clip_c is not None and not clip_c > 1:
        raise ValueError(f"clip_c must be None or > 1, got {clip_c!r}")
    if not log_ratio_clamp > 0:
        raise ValueError(f"log_ratio_clamp must be > 0, got {log_ratio_clamp!r}")


def _log_ratio(logp, old_logp, m, clamp):
    return jnp.clip(masked(logp, m) - masked(old_logp, m), -clamp, clamp)


def _ppo_terms(ratio, adv, clip_low, clip_high):
    """(unclipped -A*r, clipped -A*clip(r)) per token."""
    pg1 = -adv * ratio
    if is_inf(clip_low) and is_inf(clip_high):
        return pg1, pg1
    pg2 = -adv * jnp.clip(ratio, 1.0 - clip_low, 1.0 + clip_high)
    return pg1, pg2


def policy_loss(
    logp_BT,
    old_logp_BT,
    adv_BT,
    mask_BT,
    *,
    clip_low: float = 0.2,
    clip_high: float = 0.28,
    clip_c: float | None = None,
    log_ratio_clamp: float = 20.0,
) -> tuple[jax.Array, dict[str, jax.Array]]:
    """Per-token clipped surrogate loss (PPO, Schulman et al. 2017; clip-higher, DAPO, Yu et al. 2025;
    dual clip, Ye et al. 2020).

    ``r = exp(clamp(logp - old_logp, +-log_ratio_clamp))``,
    ``l = max(-A r, -A clip(r, 1 - clip_low, 1 + clip_high))``, and with ``clip_c`` (dual clip, > 1)
    ``l = min(l, -A clip_c)`` where ``A < 0``. ``clip_low = clip_high = inf`` is Clip-Free (no clipping).
    Defaults are DAPO's decoupled ``eps_low = 0.2, eps_high = 0.28``.

    Args:
      logp_BT: [B, T] log-probs of the sampled tokens under the current policy (differentiated).
      old_logp_BT: [B, T] log-probs under the rollout policy (treated as data).
      adv_BT: [B, T] token advantages (treated as data).
      mask_BT: [B, T] response mask.

    Returns:
      loss_BT: [B, T] float32, 0 on padding (aggregate it with ``aggregate``).
      metrics: sums over valid tokens: ``clipfrac`` (the clipped term is active), ``clipfrac_low``
        (r < 1 - clip_low and A < 0), ``clipfrac_high`` (r > 1 + clip_high and A > 0), ``clipfrac_dual``
        (dual clip active), ``approx_kl`` (k3 estimate ``r - 1 - log r`` of KL(old || new)), and
        ``num_tokens``.

    Checks (eps 0.2 / 0.28, c = 3): (A=+1, r=1.5) -> -1.28; (A=-1, r=0.5) -> 0.8; (A=-1, r=5) -> 3;
    all three with zero gradient.
    """
    check_2d("logp_BT", logp_BT)
    _check_clip(clip_low, clip_high, clip_c, log_ratio_clamp)
    m = as_bool_mask(mask_BT)
    adv = jax.lax.stop_gradient(masked(adv_BT, m))
    old = jax.lax.stop_gradient(old_logp_BT)
    log_ratio = _log_ratio(logp_BT, old, m, log_ratio_clamp)
    ratio = jnp.exp(log_ratio)
    pg1, pg2 = _ppo_terms(ratio, adv, clip_low, clip_high)
    loss = jnp.maximum(pg1, pg2)
    if clip_c is not None:
        pg3 = -adv * jnp.float32(clip_c)
        dual_active = (adv < 0) & (pg3 < loss)
        loss = jnp.where(dual_active, pg3, loss)
    else:
        dual_active = jnp.zeros(m.shape, dtype=bool)
    loss = jnp.where(m, loss, 0.0)

    def count(c):
        return jnp.sum(c & m, dtype=jnp.float32)

    metrics = {
        "clipfrac": count(pg2 > pg1),
        "clipfrac_low": count((ratio < 1.0 - clip_low) & (adv < 0)),
        "clipfrac_high": count((ratio > 1.0 + clip_high) & (adv > 0)),
        "clipfrac_dual": count(dual_active),
        "approx_kl": jax.lax.stop_gradient(jnp.sum(jnp.where(m, ratio - 1.0 - log_ratio, 0.0))),
        "num_tokens": jnp.sum(m, dtype=jnp.float32),
    }
    return loss, metrics


def aggregate(loss_BT, mask_BT, mode: str, *, norm_len: int | None = None) -> tuple[jax.Array, jax.Array]:
    """Split a per-token loss into ``(numerator, denominator)``; the loss is ``numerator / denominator``.

    Both parts are sums, so for micro-batches ``sum(num_i) / sum(den_i)`` is exactly the whole-batch
    value, and ``den`` never depends on parameters (so accumulating ``grad(num_i)`` and dividing by the
    summed ``den`` at the end is exact). Divide with ``finalize_loss`` (guards an empty batch).

    Modes (verl names; ``n_b`` valid tokens of row b, non-empty rows only for the per-row means):
      ``"token-mean"`` (DAPO token-level loss): ``sum(L M) / sum(M)``.
      ``"seq-mean-token-mean"`` (original GRPO): ``sum_b mean_t(L_b) / #non-empty rows``.
      ``"seq-mean-token-sum"``: ``sum(L M) / #non-empty rows``.
      ``"seq-mean-token-sum-norm"`` (Dr. GRPO): ``sum(L M) / (B * norm_len)``; ``norm_len`` defaults to
        T, which ties the result to the padded width: pass the maximum response length explicitly to
        make it padding-invariant.

    Check: L = [[1,2,3,0],[4,0,0,0]], M = [[1,1,1,0],[1,0,0,0]] -> 2.5, 3.0, 5.0, 1.25.
    """
    check_2d("loss_BT", loss_BT)
    if mode not in AGG_MODES:
        raise ValueError(f"aggregation mode must be one of {AGG_MODES}, got {mode!r}")
    m = as_bool_mask(mask_BT)
    loss = masked(loss_BT, m)
    n_B = jnp.sum(m, axis=-1, dtype=jnp.float32)
    nonempty = jnp.sum(n_B > 0, dtype=jnp.float32)
    if mode == "token-mean":
        return jnp.sum(loss), jnp.sum(n_B)
    if mode == "seq-mean-token-mean":
        return jnp.sum(jnp.sum(loss, axis=-1) / jnp.maximum(n_B, 1.0)), nonempty
    if mode == "seq-mean-token-sum":
        return jnp.sum(loss), nonempty
    b, t = loss.shape
    if norm_len is None:
        norm_len = t
    if isinstance(norm_len, bool) or not isinstance(norm_len, int) or norm_len <= 0:
        raise ValueError(f"norm_len must be a positive integer or None, got {norm_len!r}")
    return jnp.sum(loss), jnp.float32(b * norm_len)


def finalize_loss(numerator, denominator) -> jax.Array:
    """``numerator / max(denominator, 1)``: the aggregated loss (0 for a batch with no valid token)."""
    return f32(numerator) / jnp.maximum(f32(denominator), 1.0)


def kl_penalty(logp_BT, ref_logp_BT, kind: str) -> jax.Array:
    """Per-token estimate of KL(pi || pi_ref) from the log-probs of the sampled tokens (Schulman 2020,
    "Approximating KL divergence"), with ``d = logp - ref_logp``:

      ``"k1"``: ``d``; ``"abs"``: ``|d|``; ``"k2"``: ``d**2 / 2``;
      ``"k3"`` (GRPO's, low variance, >= 0): ``exp(-d) + d - 1`` with ``-d`` clamped to +-20 and the value
      to +-10 for stability.

    Returns [B, T] float32 (padding is not masked here; ``aggregate`` ignores it).

    Check: p = 0.5, p_ref = 0.25 -> 0.693147, 0.693147, 0.240227, 0.193147.
    """
    if kind not in KL_KINDS:
        raise ValueError(f"kl kind must be one of {KL_KINDS}, got {kind!r}")
    d = f32(logp_BT) - jax.lax.stop_gradient(f32(ref_logp_BT))
    if kind == "k1":
        return d
    if kind == "abs":
        return jnp.abs(d)
    if kind == "k2":
        return 0.5 * d**2
    neg = jnp.clip(-d, -20.0, 20.0)
    return jnp.clip(jnp.exp(neg) - neg - 1.0, -10.0, 10.0)


def _covariance(logp_BT, adv_BT, m):
    """Centred product (A - mean A)(logp - mean logp), means over the valid tokens, no gradient."""
    logp = jax.lax.stop_gradient(masked(logp_BT, m))
    adv = jax.lax.stop_gradient(masked(adv_BT, m))
    return (adv - masked_mean_all(adv, m)) * (logp - masked_mean_all(logp, m))


def clip_cov_select(
    logp_BT, old_logp_BT, adv_BT, mask_BT, rng, *, ratio, lb, ub, clip_low, clip_high, log_ratio_clamp=20.0
) -> jax.Array:
    """Bool mask of the tokens Clip-Cov detaches (see ``clip_cov_weights``)."""
    ratio = check_ratio("ratio", ratio)
    if not lb < ub:
        raise ValueError(f"need lb < ub, got lb={lb!r}, ub={ub!r}")
    m = as_bool_mask(mask_BT)
    cov = _covariance(logp_BT, adv_BT, m)
    adv = jax.lax.stop_gradient(masked(adv_BT, m))
    r = jnp.exp(jax.lax.stop_gradient(_log_ratio(logp_BT, old_logp_BT, m, log_ratio_clamp)))
    pg1, pg2 = _ppo_terms(r, adv, clip_low, clip_high)
    candidates = m & ~(pg2 > pg1) & (cov > lb) & (cov < ub)
    n_valid = jnp.sum(m, dtype=jnp.int32)
    k = jnp.maximum(floor_mul(n_valid, ratio), 1)
    return select_random(candidates, k, rng)


def clip_cov_weights(
    logp_BT,
    old_logp_BT,
    adv_BT,
    mask_BT,
    rng,
    *,
    ratio: float = 2e-4,
    lb: float = 1.0,
    ub: float = 5.0,
    clip_low: float,
    clip_high: float,
    log_ratio_clamp: float = 20.0,
) -> jax.Array:
    """Clip-Cov token weights (Cui et al. 2025, "The Entropy Mechanism of RL for Reasoning LMs",
    arXiv 2505.22617).

    ``cov_t = (A_t - mean A)(logp_t - mean logp)`` with means over the valid tokens of the arrays passed
    in (pass the whole mini-batch). Candidates: valid tokens not already clipped by PPO (the clipped
    term is the active one, ``-A clip(r) > -A r``, as in verl) with ``lb < cov < ub``. Of those,
    ``min(max(floor(ratio * N_valid), 1), #candidates)`` are chosen uniformly at random (the draw for
    token (b, t) depends only on ``rng, b, t``) and get weight 0 (gradient detached); all others get 1.
    Detached tokens still count in the denominator of the aggregation.

    Returns:
      w_BT: [B, T] float32 in {0, 1}, no gradient.
    """
    sel = clip_cov_select(
        logp_BT,
        old_logp_BT,
        adv_BT,
        mask_BT,
        rng,
        ratio=ratio,
        lb=lb,
        ub=ub,
        clip_low=clip_low,
        clip_high=clip_high,
        log_ratio_clamp=log_ratio_clamp,
    )
    return jnp.where(sel, 0.0, 1.0).astype(jnp.float32)


def kl_cov_select(logp_BT, adv_BT, mask_BT, *, ratio) -> jax.Array:
    """Bool mask of the ``max(1, floor(ratio * N_valid))`` valid tokens with the largest covariance."""
    ratio = check_ratio("ratio", ratio)
    m = as_bool_mask(mask_BT)
    cov = _covariance(logp_BT, adv_BT, m)
    k = jnp.maximum(floor_mul(jnp.sum(m, dtype=jnp.int32), ratio), 1)
    return select_top(cov, m, k)


def kl_cov_terms(
    logp_BT,
    old_logp_BT,
    adv_BT,
    mask_BT,
    *,
    ratio: float = 2e-3,
    coef: float = 1.0,
    log_ratio_clamp: float = 20.0,
) -> jax.Array:
    """KL-Cov per-token loss (Cui et al. 2025, arXiv 2505.22617).

    No PPO clipping: ``l_t = -A_t r_t`` everywhere, plus ``coef * |logp_t - old_logp_t|`` on the
    ``k = max(1, floor(ratio * N_valid))`` valid tokens of largest (signed) covariance
    ``(A - mean A)(logp - mean logp)`` (means over the valid tokens of the arrays passed in; ties broken
    by position). ``r`` uses the same log-ratio clamp as ``policy_loss``. The penalty's derivative at
    ``logp == old_logp`` is 0 (torch's ``abs``; JAX's is +1), so at ratio exactly 1 it adds no gradient.
    Default ratio 2e-3: Cui et al.'s recipe for 7B models.

    Returns:
      loss_BT: [B, T] float32, 0 on padding.
    """
    check_2d("logp_BT", logp_BT)
    if not log_ratio_clamp > 0:
        raise ValueError(f"log_ratio_clamp must be > 0, got {log_ratio_clamp!r}")
    m = as_bool_mask(mask_BT)
    sel = kl_cov_select(logp_BT, adv_BT, m, ratio=ratio)
    adv = jax.lax.stop_gradient(masked(adv_BT, m))
    old = jax.lax.stop_gradient(masked(old_logp_BT, m))
    log_ratio = _log_ratio(logp_BT, old, m, log_ratio_clamp)
    pg = -adv * jnp.exp(log_ratio)
    d = masked(logp_BT, m) - old
    penalty = jnp.float32(coef) * d * jax.lax.stop_gradient(jnp.sign(d))  # |d|, derivative sign(d), 0 at 0
    return jnp.where(m, pg + jnp.where(sel, penalty, 0.0), 0.0)
