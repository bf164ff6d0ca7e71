"""Corrections for stale rollouts (``rollout.max_staleness > 0``; docs/algorithms.md "Stale rollouts").

Three policies meet in an asynchronous update: the *behaviour* policy ``mu`` that sampled a row (the params
of ``s`` steps ago, whose per-token log-probs the sampler records), the *proximal* policy ``pi_old`` (the
params at the start of this step's update, scored as usual) and the policy being optimised ``pi_theta``.
The PPO ratio is always ``pi_theta / pi_old``; what differs is how ``mu != pi_old`` is corrected:

- ``"tis"`` (truncated importance sampling, as verl's TIS): the policy term of each token is multiplied by
  ``w = min(pi_old / mu, cap)`` (no gradient).
- ``"decoupled"`` (the decoupled PPO objective, as AReaL's): ``w = pi_old / mu``, and a token whose ``w``
  exceeds ``cap`` gets weight 0 (it stays in the loss's denominator).
- ``"behaviour"``: no weight; the ratio's denominator is ``mu`` itself (``pi_theta / mu``, clipped), i.e.
  plain off-policy PPO on the sampler's log-probs.

With ``max_staleness = 0`` none of this runs: the loss is the synchronous one, bit for bit.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jaxrlvr.algos._util import as_bool_mask, f32

STALE_CORRECTIONS = ("tis", "decoupled", "behaviour")


def staleness_weights(prox_logp_BT, behav_logp_BT, mask_BT, *, mode: str, cap: float):
    """Per-token importance weights ``pi_old / mu`` corrected by ``mode`` and the ``(weight, capped)``
    masks, both [B, T] (weight 0 and capped False outside ``mask_BT``; no gradient).

    Args:
      prox_logp_BT: log-probs of the sampled tokens under the proximal policy (params at the update's start).
      behav_logp_BT: the same tokens' log-probs under the behaviour policy (the sampler's, at the rollout
        temperature over the whole vocabulary).
      mask_BT: response mask.
      mode: ``"tis"`` (truncate at ``cap``) or ``"decoupled"`` (weight 0 above ``cap``); ``"behaviour"``
        gives weight 1 (its correction is the ratio's denominator, see the module docstring).
      cap: the weight's upper bound (> 0).

    Returns:
      (weight_BT float32, capped_BT bool): ``capped`` marks the tokens whose raw weight exceeded ``cap``.
    """
    if mode not in STALE_CORRECTIONS:
        raise ValueError(f"staleness correction must be one of {STALE_CORRECTIONS}, got {mode!r}")
    m = as_bool_mask(mask_BT)
    log_w = jax.lax.stop_gradient(f32(prox_logp_BT) - f32(behav_logp_BT))
    log_cap = jnp.log(jnp.float32(cap))
    capped = (log_w > log_cap) & m
    if mode == "behaviour":
        w = jnp.ones_like(log_w)
    elif mode == "tis":
        w = jnp.exp(jnp.minimum(log_w, log_cap))
    else:  # decoupled: above the cap the token is left out of the policy term
        w = jnp.where(capped, 0.0, jnp.exp(jnp.minimum(log_w, log_cap)))
    return jnp.where(m, w, 0.0), capped
