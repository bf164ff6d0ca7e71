"""Per-token loss weights and masks: Positive-Advantage Reweighting, non-negative-only training,
random positive clipping, the high-entropy (80/20) mask, and dropping truncated responses.

Weights multiply the policy-gradient term only; a token with weight 0 still counts in the
aggregation denominator (it is "detached", not removed). ``mask_truncated`` is different: it removes
responses from the loss mask and therefore from the denominator.
"""

from __future__ import annotations

import fractions

import jax
import jax.numpy as jnp

from jaxrlvr.algos._util import (
    as_bool_mask,
    check_2d,
    check_ratio,
    f32,
    floor_mul,
    floor_mul_with_rest,
    select_random,
)


def pos_adv_weights(adv_BT, lam) -> jax.Array:
    """Positive-Advantage Reweighting ("Revisiting Entropy in Reinforcement Learning for Large Reasoning
    Models", arXiv 2511.05993): weight ``lam`` on tokens with ``A > 0``, 1 elsewhere.

    Positive-advantage tokens drive entropy collapse; ``lam < 1`` slows it, ``lam = 0`` trains on
    non-positive tokens only. ``lam`` may be a traced scalar (it changes every step, see the schedules).
    """
    a = f32(adv_BT)
    return jnp.where(a > 0, f32(lam), jnp.float32(1.0))


def neg_adv_weights(adv_BT) -> jax.Array:
    """Weight 0 on tokens with ``A < 0`` and 1 elsewhere: train on non-negative tokens only."""
    a = f32(adv_BT)
    return jnp.where(a < 0, 0.0, 1.0).astype(jnp.float32)


def rand_pos_clip_select(adv_BT, mask_BT, rng, *, ratio, count=None) -> jax.Array:
    """Bool mask of the tokens ``rand_pos_clip_weights`` zeroes: ``max(1, floor(ratio * #valid))`` random
    A > 0 tokens, or exactly ``count`` of them when given (e.g. the number Clip-Cov detaches in the same
    batch, ``AlgoConfig.rand_pos_clip_match``: Revisiting's "the same proportion"); fewer when fewer A > 0
    tokens exist."""
    ratio = check_ratio("ratio", ratio)
    m = as_bool_mask(mask_BT)
    candidates = m & (f32(adv_BT) > 0)
    k = jnp.maximum(floor_mul(jnp.sum(m, dtype=jnp.int32), ratio), 1) if count is None else count
    return select_random(candidates, k, rng)


def exclusive_token_mask(adv_BT, mask_BT, *, drop_negative: bool, lam=None) -> jax.Array:
    """Bool mask of the valid tokens a "trained exclusively on" setting leaves out: A < 0 when
    ``drop_negative`` (train on A >= 0 only), A > 0 when the Positive-Advantage lambda ``lam`` is 0 (train on
    A <= 0 only; ``lam`` may be traced, None: off). ``AlgoConfig.exclusive_tokens="mask"`` removes these
    tokens from the aggregation (its denominator too); ``"zero_weight"`` keeps them there with weight 0."""
    a, m = f32(adv_BT), as_bool_mask(mask_BT)
    out = (a < 0) if drop_negative else jnp.zeros(a.shape, dtype=bool)
    if lam is not None:
        out = out | ((a > 0) & (f32(lam) == 0.0))
    return out & m


def rand_pos_clip_weights(adv_BT, mask_BT, rng, *, ratio: float) -> jax.Array:
    """Random positive clipping (control for Clip-Cov, arXiv 2511.05993): weight 0 on
    ``max(1, floor(ratio * N_valid))`` valid tokens with ``A > 0`` chosen uniformly at random (all of them
    if fewer exist); every other weight is exactly 1. The draw for token (b, t) depends only on
    ``rng, b, t``, so padding does not change the choice.

    Returns:
      w_BT: [B, T] float32 in {0, 1}.
    """
    check_2d("adv_BT", adv_BT)
    sel = rand_pos_clip_select(adv_BT, mask_BT, rng, ratio=ratio)
    return jnp.where(sel, 0.0, 1.0).astype(jnp.float32)


def _numpy_lerp(a, b, t):
    """numpy's ``_lerp``: exact at both ends (t = 0 gives a, t = 1 gives b) and monotone."""
    diff = b - a
    return jnp.where(t >= 0.5, b - diff * (1.0 - t), a + diff * t)


def entropy_quantile(entropy_BT, mask_BT, q: float) -> jax.Array:
    """The ``q``-quantile of the entropies of the valid tokens, numpy's default ("linear") method.

    The virtual index ``q * (N_valid - 1)`` is computed exactly for decimal ``q`` (see ``floor_mul``).
    Returns +inf when there is no valid token.
    """
    if isinstance(q, bool) or not isinstance(q, int | float) or not 0.0 <= q <= 1.0:
        raise ValueError(f"quantile q must be a Python float in [0, 1], got {q!r}")
    m = as_bool_mask(mask_BT)
    h = jnp.where(m, jax.lax.stop_gradient(f32(entropy_BT)), jnp.inf).reshape(-1)
    sorted_h = jnp.sort(h)
    n = jnp.sum(m, dtype=jnp.int32)
    lo, frac = floor_mul_with_rest(jnp.maximum(n - 1, 0), q)
    hi = jnp.minimum(lo + 1, jnp.maximum(n - 1, 0))
    a, b = sorted_h[lo], sorted_h[hi]
    thr = jnp.where(frac > 0, _numpy_lerp(a, b, frac), a)
    return jnp.where(n > 0, thr, jnp.inf)


def high_entropy_mask(entropy_BT, mask_BT, top_fraction: float = 0.2) -> jax.Array:
    """High-entropy "forking token" mask (Wang et al. 2025, "Beyond the 80/20 Rule", arXiv 2506.01939).

    Keeps the valid tokens whose entropy is at or above the ``1 - top_fraction`` quantile (linear
    interpolation, numpy's default) of the valid-token entropies of the arrays passed in (the paper uses
    the batch; pass the whole mini-batch). Paper default ``top_fraction = 0.2``. No gradient.

    Returns:
      bool [B, T] (False on padding).
    """
    check_2d("entropy_BT", entropy_BT)
    top_fraction = check_ratio("top_fraction", top_fraction)
    m = as_bool_mask(mask_BT)
    q = float(1 - fractions.Fraction(repr(top_fraction)))  # 1 - 0.2 == 0.8 exactly
    thr = entropy_quantile(entropy_BT, m, q)
    return m & (jax.lax.stop_gradient(f32(entropy_BT)) >= thr)


def mask_truncated(mask_BT, truncated_B) -> jax.Array:
    """Drop truncated responses (no EOS within the length limit) from the loss: zero their mask rows.

    Use it on the loss mask only; the group advantages are still computed with these responses
    (DAPO's "overlong filtering"). Returns a mask of the same dtype as ``mask_BT``.
    """
    check_2d("mask_BT", mask_BT)
    mk = jnp.asarray(mask_BT)
    t_B = jnp.asarray(truncated_B) != 0
    return jnp.where(t_B[:, None], jnp.zeros_like(mk), mk)
