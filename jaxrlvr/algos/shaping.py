"""Advantage shaping transforms: perplexity (PPL), position, and entropy-based advantage.

All take and return token-level advantages ``adv_BT`` (the response advantage broadcast over its
tokens); values at padded positions are carried along but never influence a valid position.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jaxrlvr.algos._util import as_bool_mask, check_2d, check_group_size, f32, masked

# (m, n) of the position bonus b = gamma * sigmoid(direction * m * (l - n)), l in [0, 1].
# POSITION_CENTRED (the default): the paper prints m = 15, n = -0.5 next to Eq. 8; read as
# sigmoid(m (l + n)) = sigmoid(15 (l - 0.5)) -- our convention's n = +0.5 -- the argument runs over
# [-7.5, 7.5], a ramp from ~0 at the first token to ~gamma at the last centred on the middle of the
# response. It is the only reading under which the direction changes anything, and the paper's Fig. 7
# reports that it changes entropy and response length (904 vs 1146 tokens).
# POSITION_PAPER: the printed values taken literally in our convention (n = -0.5): r = 15 (l + 0.5) lies
# in [7.5, 22.5], sigmoid(r) >= 0.99945, so the bonus is the constant +gamma (direction -1: ~5e-4 gamma).
POSITION_PAPER = (15.0, -0.5)
POSITION_CENTRED = (15.0, 0.5)


def log_ppl(logp_BT, mask_BT) -> jax.Array:
    """Log-perplexity of every response: ``ln PPL_i = -sum_t(logp * mask) / sum_t(mask)``.

    Args:
      logp_BT: [B, T] log-probabilities of the sampled tokens.
      mask_BT: [B, T] 1 on valid response tokens.

    Returns:
      [B] float32; 0 for an empty row (no valid token).
    """
    check_2d("logp_BT", logp_BT)
    m = as_bool_mask(mask_BT)
    n_B = jnp.sum(m, axis=-1, dtype=jnp.float32)
    return -jnp.sum(masked(logp_BT, m), axis=-1) / jnp.maximum(n_B, 1.0)


def ppl_weights(logp_BT, mask_BT, group_size: int, *, eps: float = 1e-6) -> jax.Array:
    """Within-group standardised log-perplexity (Deng et al. 2025, "Decomposing the Entropy-Performance
    Exchange", Eq. 7): ``w_i = (ln PPL_i - mu_g) / (sigma_g + eps)``.

    ``mu_g`` and the unbiased (ddof=1) ``sigma_g`` are taken over the non-empty responses of the group;
    empty responses get ``w = 0`` and do not enter the statistics. A group of equal perplexities gives
    exactly 0.

    Args:
      logp_BT: [B, T] log-probs of the sampled tokens (rollout / old policy).
      mask_BT: [B, T] response mask.
      group_size: G (static, >= 2).
      eps: added to sigma (default 1e-6).

    Returns:
      w_B: [B] float32.
    """
    check_2d("logp_BT", logp_BT)
    g = check_group_size(group_size, jnp.shape(logp_BT)[0])
    m = as_bool_mask(mask_BT)
    x_PG = log_ppl(logp_BT, m).reshape(-1, g)
    valid_PG = jnp.any(m, axis=-1).reshape(-1, g)
    cnt_P1 = jnp.sum(valid_PG, axis=-1, keepdims=True, dtype=jnp.float32)
    base_P1 = jnp.min(jnp.where(valid_PG, x_PG, jnp.inf), axis=-1, keepdims=True)
    d_PG = jnp.where(valid_PG, x_PG - base_P1, 0.0)
    mean_P1 = jnp.sum(d_PG, axis=-1, keepdims=True) / jnp.maximum(cnt_P1, 1.0)
    c_PG = jnp.where(valid_PG, d_PG - mean_P1, 0.0)
    std_P1 = jnp.sqrt(jnp.sum(c_PG**2, axis=-1, keepdims=True) / jnp.maximum(cnt_P1 - 1.0, 1.0))
    return (c_PG / (std_P1 + eps)).reshape(-1)


def ppl_shaped_advantages(adv_BT, w_B, alpha) -> jax.Array:
    """PPL-based advantage shaping (Deng et al. 2025, Eq. 9): ``A'_t = A_t * (1 - alpha * w)``.

    With ``alpha > 0`` low-perplexity responses (``w < 0``) get larger |A|; the paper uses
    ``alpha = 0.01``; a negative ``alpha`` is the paper's inverse ablation. ``alpha`` may be traced.

    Args:
      adv_BT: [B, T] token advantages.
      w_B: [B] from ``ppl_weights``.
      alpha: scalar.

    Returns:
      [B, T] float32.
    """
    check_2d("adv_BT", adv_BT)
    scale_B = 1.0 - f32(alpha) * f32(w_B)
    return f32(adv_BT) * scale_B[:, None]


def position_bonus(mask_BT, *, gamma, direction=1.0, m=15.0, n=0.5) -> jax.Array:
    """Position bonus (Deng et al. 2025, Eq. 8): ``b_t = gamma * sigmoid(direction * m * (l_t - n))``.

    ``l_t = t / (L - 1)`` is the relative position of the t-th valid token (t = 0 .. L-1) of a row with
    ``L`` valid tokens (``l = 0`` when ``L = 1``); 0 on padding. ``direction = +1`` favours late tokens,
    ``-1`` early ones. Defaults ``m = 15, n = +0.5`` (``POSITION_CENTRED``, our reading of the paper's
    printed ``m = 15, n = -0.5`` as ``sigmoid(m (l + n))``): a ramp from ~0 to ~``gamma``.
    ``POSITION_PAPER = (15, -0.5)`` is the literal reading, for which the bonus is almost the constant
    ``gamma`` (see the module constants). ``gamma``, ``direction``, ``m``, ``n`` may be traced.

    Args:
      mask_BT: [B, T] response mask (the t-th valid token is counted, so a non-prefix mask also works).

    Returns:
      b_BT: [B, T] float32.
    """
    check_2d("mask_BT", mask_BT)
    mk = as_bool_mask(mask_BT)
    idx_BT = jnp.cumsum(mk, axis=-1, dtype=jnp.float32) - 1.0
    length_B1 = jnp.sum(mk, axis=-1, keepdims=True, dtype=jnp.float32)
    rel_BT = idx_BT / jnp.maximum(length_B1 - 1.0, 1.0)
    r_BT = f32(m) * (rel_BT - f32(n))
    b_BT = f32(gamma) * jax.nn.sigmoid(f32(direction) * r_BT)
    return jnp.where(mk, b_BT, 0.0)


def position_shaped_advantages(adv_BT, b_BT) -> jax.Array:
    """Position-based shaping (Deng et al. 2025, Eq. 10): ``A'_t = A_t + sign(A_t) * b_t`` (sign(0) = 0).

    Increases |A| by ``b_t`` keeping the sign, so zero-advantage tokens stay at zero.
    """
    check_2d("adv_BT", adv_BT)
    a = f32(adv_BT)
    return a + jnp.sign(a) * f32(b_BT)


def entropy_advantages(adv_BT, entropy_BT, *, alpha, kappa) -> jax.Array:
    """Entropy-based advantage (Cheng et al. 2025, "Reasoning with Exploration: An Entropy Perspective",
    arXiv 2506.14758): ``A'_t = A_t + min(alpha * stop_gradient(H_t), |A_t| / kappa)``.

    The entropy term is detached (zero gradient to ``entropy_BT``) and clipped at ``|A| / kappa`` so it
    never dominates; with ``kappa > 1`` it never flips the sign of a negative advantage, and zero
    advantages stay zero. Paper: ``kappa = 2``; ``alpha`` is a tuned scale (our default 0.4).

    Args:
      adv_BT: [B, T] token advantages.
      entropy_BT: [B, T] token entropies (nats) of the policy being updated.
      alpha, kappa: scalars (may be traced).

    Returns:
      [B, T] float32.
    """
    check_2d("adv_BT", adv_BT)
    a = f32(adv_BT)
    h = jax.lax.stop_gradient(f32(entropy_BT))
    return a + jnp.minimum(f32(alpha) * h, jnp.abs(a) / f32(kappa))
