"""The two composition points the trainer calls: ``shape_advantages`` (once per rollout batch) and
``token_loss`` (once per micro-batch inside the differentiated loss function)."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jaxrlvr.algos._util import as_bool_mask, check_2d, f32, masked
from jaxrlvr.algos.advantages import group_advantages
from jaxrlvr.algos.config import AlgoConfig, StepState, initial_step_state
from jaxrlvr.algos.entropy import entropy_regularization
from jaxrlvr.algos.losses import (
    aggregate,
    clip_cov_select,
    kl_cov_select,
    kl_cov_terms,
    kl_penalty,
    policy_loss,
)
from jaxrlvr.algos.offpolicy import staleness_weights
from jaxrlvr.algos.shaping import (
    entropy_advantages,
    log_ppl,
    position_bonus,
    position_shaped_advantages,
    ppl_shaped_advantages,
    ppl_weights,
)
from jaxrlvr.algos.weights import (
    exclusive_token_mask,
    high_entropy_mask,
    mask_truncated,
    neg_adv_weights,
    pos_adv_weights,
    rand_pos_clip_select,
)

# Metrics whose mean is over a count other than "num_tokens".
METRIC_COUNTS = {"entropy_pos": "num_tokens_pos", "entropy_neg": "num_tokens_neg"}


def finalize_metrics(metrics: dict[str, jax.Array]) -> dict[str, jax.Array]:
    """Turn summed metrics (possibly added over micro-batches) into means.

    Keys starting with ``num_`` are counts and are passed through; every other key ``k`` is divided by
    ``metrics[METRIC_COUNTS.get(k, "num_tokens")]`` (guarded against 0).
    """
    out = {}
    for k, v in metrics.items():
        if k.startswith("num_"):
            out[k] = v
        else:
            out[k] = f32(v) / jnp.maximum(f32(metrics[METRIC_COUNTS.get(k, "num_tokens")]), 1.0)
    return out


def shape_advantages(
    config: AlgoConfig, rewards_B, logp_BT, mask_BT, step_state: StepState | None = None
) -> tuple[jax.Array, dict[str, jax.Array]]:
    """Token advantages for a rollout batch: group advantages, then the enabled shaping chain.

    Chain (in this order): ``group_advantages(rewards, group_size, scale=adv_scale, eps=adv_eps)``
    broadcast over each response's tokens -> PPL shaping (``ppl_shaping``: ``A (1 - alpha w)``, alpha =
    ``ppl_alpha * step_state.ppl_active``) -> position shaping (``position_shaping``: ``A + sign(A) b``,
    gamma = ``position_gamma * step_state.position_active``). The entropy-based advantage is *not* applied
    here: it needs the entropy of the policy being updated, so ``token_loss`` applies it.

    Call once per rollout batch, on the whole batch (group statistics need complete groups), before
    splitting into mini-batches.

    Args:
      config: static ``AlgoConfig``.
      rewards_B: [B] rewards (any overlong penalty already added), groups of ``config.group_size``.
      logp_BT: [B, T] rollout log-probs of the sampled tokens (for the PPL); may be None when
        ``ppl_shaping`` is off.
      mask_BT: [B, T] response mask (including truncated responses).
      step_state: ``StepState`` (None: ``initial_step_state(config)``).

    Returns:
      adv_BT: [B, T] float32, 0 on padding.
      aux: per-response arrays for logging: ``adv_B`` (group advantages), and with PPL shaping
        ``log_ppl_B`` and ``ppl_weight_B``.
    """
    check_2d("mask_BT", mask_BT)
    if step_state is None:
        step_state = initial_step_state(config)
    m = as_bool_mask(mask_BT)
    adv_B = group_advantages(rewards_B, config.group_size, scale=config.adv_scale, eps=config.adv_eps)
    if adv_B.shape[0] != m.shape[0]:
        raise ValueError(f"rewards_B has {adv_B.shape[0]} rows but mask_BT has {m.shape[0]}")
    adv_BT = jnp.where(m, adv_B[:, None], 0.0)
    aux = {"adv_B": adv_B}
    if config.ppl_shaping:
        if logp_BT is None:
            raise ValueError("shape_advantages needs logp_BT because AlgoConfig.ppl_shaping=True")
        w_B = ppl_weights(logp_BT, m, config.group_size, eps=config.ppl_eps)
        adv_BT = ppl_shaped_advantages(adv_BT, w_B, config.ppl_alpha * f32(step_state.ppl_active))
        aux["log_ppl_B"] = log_ppl(logp_BT, m)
        aux["ppl_weight_B"] = w_B
    if config.position_shaping:
        b_BT = position_bonus(
            m,
            gamma=config.position_gamma * f32(step_state.position_active),
            direction=config.position_direction,
            m=config.position_m,
            n=config.position_n,
        )
        adv_BT = position_shaped_advantages(adv_BT, b_BT)
    return jnp.where(m, adv_BT, 0.0), aux


def token_loss(
    config: AlgoConfig,
    logp_BT,
    old_logp_BT,
    ref_logp_BT,
    entropy_BT,
    adv_BT,
    mask_BT,
    rng,
    step_state: StepState | None,
    *,
    truncated_B=None,
    behav_logp_BT=None,
) -> tuple[jax.Array, jax.Array, dict[str, jax.Array]]:
    """The whole per-token objective of one (micro-)batch as ``(numerator, denominator, metrics)``.

    ``loss = finalize_loss(sum_i numerator_i, sum_i denominator_i)`` over the micro-batches i of a
    mini-batch; the denominator never depends on the parameters, so summing ``grad(numerator_i)`` and
    dividing by the summed denominator is exact for every aggregation mode.

    Per valid token (mask after ``mask_truncated`` if enabled):
      1. ``A`` = ``adv_BT``, plus the entropy-based term if ``entropy_adv``
         (``A + min(alpha sg(H), |A| / kappa)``, with the entropy of the current forward pass).
      2. ``pg`` = policy loss of ``loss_variant``: ``"clip"`` (PPO / DAPO clip-higher, dual clip if
         ``clip_c``), ``"clip_free"`` (no clipping), ``"clip_cov"`` (clip, times Clip-Cov weights),
         ``"kl_cov"`` (unclipped, plus ``kl_cov_coef |logp - old_logp|`` on the top-covariance tokens).
      3. ``pg *= w`` with ``w`` the product of the enabled weights: Clip-Cov, Positive-Advantage
         Reweighting (``step_state.lam``), ``drop_negative_adv``, ``rand_pos_clip``,
         ``high_entropy_only``. Weights (computed from the advantages before step 1's entropy term) touch
         the policy-gradient term only; zero-weight tokens stay in the denominator, except with
         ``exclusive_tokens="mask"``: the tokens ``drop_negative_adv`` or a lambda of 0 leave out
         (``exclusive_token_mask``) then leave the aggregation altogether (step 6), KL and entropy terms too.
      4. ``+ kl_coef * kl_penalty(logp, ref_logp, kl_kind)`` if ``kl_coef > 0``.
      3b. stale rows (``behav_logp_BT`` given; ``rollout.max_staleness > 0``): ``pg *= w_is``, the
         importance weight of ``config.stale_correction`` (``algos.offpolicy.staleness_weights``), or with
         ``"behaviour"`` the ratio's denominator is ``behav_logp_BT`` instead of ``old_logp_BT``.
      5. ``- step_state.entropy_coef * H`` if ``entropy_coef != 0`` or ``entropy_adaptive``.
      6. ``aggregate(loss_BT, mask, loss_agg_mode, norm_len=loss_norm_len)``.

    Clip-Cov, KL-Cov, ``rand_pos_clip`` and ``high_entropy_only`` use statistics over all valid tokens of
    the arrays passed in (covariance means, the number of selected tokens, the entropy quantile): pass
    the whole mini-batch to get the papers' behaviour; micro-batches give per-micro-batch statistics.

    Args:
      config: static ``AlgoConfig``.
      logp_BT: [B, T] log-probs of the sampled tokens under the current params (at the sampling
        temperature), differentiated.
      old_logp_BT: [B, T] rollout-policy log-probs (data).
      ref_logp_BT: [B, T] reference-policy log-probs; None when ``kl_coef == 0``.
      entropy_BT: [B, T] token entropies of the current forward pass (differentiated for the entropy
        bonus); None unless ``config.needs_entropy``.
      adv_BT: [B, T] advantages from ``shape_advantages`` (data).
      mask_BT: [B, T] response mask.
      rng: PRNG key, needed when ``config.needs_rng`` (Clip-Cov, rand_pos_clip), else may be None.
      step_state: ``StepState`` of this step (None: ``initial_step_state(config)``).
      truncated_B: [B] bool, needed when ``mask_truncated``.
      behav_logp_BT: [B, T] the behaviour policy's log-probs (the sampler's) of stale rows; None (the
        synchronous loop): no correction at all.

    Returns:
      numerator, denominator: float32 scalars.
      metrics: float32 scalar sums over the loss tokens, additive over micro-batches (``finalize_metrics``
        gives means): ``num_tokens``, ``num_seqs`` (non-empty rows), ``num_tokens_pos`` / ``num_tokens_neg``
        (A > 0 / A < 0), ``pg_loss`` (weighted policy term), ``adv``, ``weight_zero`` (tokens with pg
        weight 0), ``clipfrac``, ``clipfrac_low``, ``clipfrac_high``, ``clipfrac_dual``, ``approx_kl``;
        when applicable ``clip_cov_selected``, ``kl_cov_selected``, ``rand_pos_clipped``,
        ``high_entropy_kept``, ``kl``, ``is_weight`` / ``is_capped`` (stale rows: the importance weight
        and the share of tokens above ``stale_cap``); with ``entropy_BT``: ``entropy``, ``entropy_pos``, ``entropy_neg``
        (the last two are means over ``num_tokens_pos`` / ``num_tokens_neg``).
    """
    check_2d("logp_BT", logp_BT)
    if config.uses_kl and ref_logp_BT is None:
        raise ValueError(f"token_loss needs ref_logp_BT because AlgoConfig.kl_coef={config.kl_coef}")
    if config.needs_entropy and entropy_BT is None:
        raise ValueError(
            "token_loss needs entropy_BT because the config enables entropy_adv, an entropy bonus "
            f"(entropy_coef={config.entropy_coef}, entropy_adaptive={config.entropy_adaptive}) or "
            "high_entropy_only"
        )
    if config.needs_rng and rng is None:
        raise ValueError(
            f"token_loss needs rng because loss_variant={config.loss_variant!r} / rand_pos_clip={config.rand_pos_clip}"
        )
    if step_state is None:
        step_state = initial_step_state(config)

    m = as_bool_mask(mask_BT)
    if config.mask_truncated:
        if truncated_B is None:
            raise ValueError("token_loss needs truncated_B because AlgoConfig.mask_truncated=True")
        m = as_bool_mask(mask_truncated(m, truncated_B))

    def total(x):
        return jnp.sum(jnp.where(m, f32(x), 0.0))

    def count(c):
        return jnp.sum(c & m, dtype=jnp.float32)

    adv_raw = jax.lax.stop_gradient(masked(adv_BT, m))
    adv = adv_raw
    if config.entropy_adv:
        adv = jnp.where(
            m,
            entropy_advantages(adv_raw, entropy_BT, alpha=config.entropy_adv_alpha, kappa=config.entropy_adv_kappa),
            0.0,
        )
    clip_low, clip_high = config.clip_bounds
    metrics: dict[str, jax.Array] = {}
    w_is = None
    if behav_logp_BT is not None:
        w_is, capped = staleness_weights(
            old_logp_BT, behav_logp_BT, m, mode=config.stale_correction, cap=config.stale_cap
        )
        metrics.update(is_weight=total(w_is), is_capped=count(capped))
        if config.stale_correction == "behaviour":  # plain off-policy PPO: pi_theta / mu
            old_logp_BT, w_is = behav_logp_BT, None
    if config.loss_variant == "kl_cov":
        pg_BT = kl_cov_terms(
            logp_BT,
            old_logp_BT,
            adv,
            m,
            ratio=config.kl_cov_ratio,
            coef=config.kl_cov_coef,
            log_ratio_clamp=config.log_ratio_clamp,
        )
        _, pm = policy_loss(
            logp_BT,
            old_logp_BT,
            adv,
            m,
            clip_low=jnp.inf,
            clip_high=jnp.inf,
            log_ratio_clamp=config.log_ratio_clamp,
        )
        metrics.update(pm)
        metrics["kl_cov_selected"] = count(kl_cov_select(logp_BT, adv, m, ratio=config.kl_cov_ratio))
    else:
        pg_BT, pm = policy_loss(
            logp_BT,
            old_logp_BT,
            adv,
            m,
            clip_low=clip_low,
            clip_high=clip_high,
            clip_c=config.clip_c,
            log_ratio_clamp=config.log_ratio_clamp,
        )
        metrics.update(pm)

    w_BT = jnp.ones(m.shape, dtype=jnp.float32)
    cov_sel = None
    if config.loss_variant == "clip_cov" or config.rand_pos_clip_match:
        cov_sel = clip_cov_select(
            logp_BT,
            old_logp_BT,
            adv,
            m,
            jax.random.fold_in(rng, 0),
            ratio=config.clip_cov_ratio,
            lb=config.clip_cov_lb,
            ub=config.clip_cov_ub,
            clip_low=clip_low,
            clip_high=clip_high,
            log_ratio_clamp=config.log_ratio_clamp,
        )
    if config.loss_variant == "clip_cov":
        w_BT = jnp.where(cov_sel, 0.0, w_BT)
        metrics["clip_cov_selected"] = count(cov_sel)
    if config.pos_adv_mode != "off":
        w_BT = w_BT * pos_adv_weights(adv_raw, step_state.lam)
    if config.drop_negative_adv:
        w_BT = w_BT * neg_adv_weights(adv_raw)
    if config.rand_pos_clip:
        matched = jnp.sum(cov_sel, dtype=jnp.int32) if config.rand_pos_clip_match else None
        sel = rand_pos_clip_select(
            adv_raw, m, jax.random.fold_in(rng, 1), ratio=config.rand_pos_clip_ratio, count=matched
        )
        w_BT = jnp.where(sel, 0.0, w_BT)
        metrics["rand_pos_clipped"] = count(sel)
    if config.high_entropy_only:
        keep = high_entropy_mask(entropy_BT, m, config.high_entropy_fraction)
        w_BT = jnp.where(keep, w_BT, 0.0)
        metrics["high_entropy_kept"] = count(keep)
    if w_is is not None:
        w_BT = w_BT * w_is
    w_BT = jax.lax.stop_gradient(w_BT)

    pg_BT = pg_BT * w_BT
    loss_BT = pg_BT
    if config.uses_kl:
        kl_BT = jnp.where(m, kl_penalty(logp_BT, ref_logp_BT, config.kl_kind), 0.0)
        loss_BT = loss_BT + config.kl_coef * kl_BT
        metrics["kl"] = jax.lax.stop_gradient(total(kl_BT))
    if config.uses_entropy_bonus:
        loss_BT = entropy_regularization(loss_BT, masked(entropy_BT, m), step_state.entropy_coef)
    agg_m = m
    if config.exclusive_tokens == "mask" and (config.drop_negative_adv or config.pos_adv_mode != "off"):
        lam = step_state.lam if config.pos_adv_mode != "off" else None
        excluded = exclusive_token_mask(adv_raw, m, drop_negative=config.drop_negative_adv, lam=lam)
        agg_m = m & ~excluded
        metrics["num_tokens_excluded"] = count(excluded)
    numerator, denominator = aggregate(loss_BT, agg_m, config.loss_agg_mode, norm_len=config.loss_norm_len)

    pos, neg = adv_raw > 0, adv_raw < 0
    metrics.update(
        num_seqs=jnp.sum(jnp.any(m, axis=-1), dtype=jnp.float32),
        num_tokens_pos=count(pos),
        num_tokens_neg=count(neg),
        pg_loss=jax.lax.stop_gradient(total(pg_BT)),
        adv=total(adv),
        weight_zero=count(w_BT == 0),
    )
    if entropy_BT is not None:
        h = jax.lax.stop_gradient(masked(entropy_BT, m))
        metrics.update(
            entropy=total(h),
            entropy_pos=total(jnp.where(pos, h, 0.0)),
            entropy_neg=total(jnp.where(neg, h, 0.0)),
        )
    return numerator, denominator, metrics
