"""Per-token gradient-norm proxy (Deng et al. 2025, Eq. 4).

For a token o_t with final-norm hidden state h_t, logits ``z_t = W^T h_t / T`` (``W`` = LM head [D, V],
``T`` = sampling temperature) and next-token distribution ``pi_t = softmax(z_t)``:

    d log pi_t(o_t) / d W = h_t (e(o_t) - pi_t)^T / T

so a token's loss ``l_t`` with ``d l_t = alpha_t d log pi_t(o_t)`` has an LM-head gradient of Frobenius norm

    G_t = |alpha_t| * ||e(o_t) - pi_t||_2 * ||h_t||_2 / T          (Eq. 4; the paper has T = 1)

For the clipped surrogate ``alpha_t = -A_t r_t`` where the unclipped term is active and 0 where the clipped
(or dual-clip) term is: clipped tokens send no gradient. ``||e(o) - pi||^2 = 1 - 2 pi(o) + sum_v pi_v^2``.
The proxy is exact for an untied head; for a tied head the embedding also receives the input-side
gradient, which the proxy leaves out.
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np

from jaxrlvr.algos import policy_loss
from jaxrlvr.models import ModelConfig, hidden_states, lm_logits
from jaxrlvr.models.model import map_position_chunks


def surrogate_coefficients(
    logp_BT,
    old_logp_BT,
    adv_BT,
    mask_BT,
    *,
    clip_low: float = 0.2,
    clip_high: float = 0.28,
    clip_c: float | None = None,
    log_ratio_clamp: float = 20.0,
) -> jax.Array:
    """``alpha_t = d l_t / d log pi(o_t)`` of the per-token clipped surrogate ``jaxrlvr.algos.policy_loss``
    (same clipping arguments): ``-A_t r_t`` where the unclipped term is active, 0 where the clipped or
    dual-clip term is (or the log-ratio clamp binds), 0 on padding. Taken with ``jax.grad`` of the
    library's own loss, so it follows every branch of it. [B, T] float32.
    """
    old = jnp.asarray(old_logp_BT, jnp.float32)
    adv = jnp.asarray(adv_BT, jnp.float32)

    def total(lp):
        loss, _ = policy_loss(
            lp,
            old,
            adv,
            mask_BT,
            clip_low=clip_low,
            clip_high=clip_high,
            clip_c=clip_c,
            log_ratio_clamp=log_ratio_clamp,
        )
        return jnp.sum(loss)

    return jax.grad(total)(jnp.asarray(logp_BT, jnp.float32))


def _chunk_stats(config, params, h_BCD, targets_BC, temperature):
    logits = lm_logits(config, params, h_BCD).astype(jnp.float32) / temperature
    logp_all = jax.nn.log_softmax(logits, axis=-1)
    logp_t = jnp.take_along_axis(logp_all, targets_BC[..., None], axis=-1)[..., 0]
    p = jnp.exp(logp_all)
    sq = jnp.sum(p * p, axis=-1)
    resid = jnp.sqrt(jnp.maximum(1.0 - 2.0 * jnp.exp(logp_t) + sq, 0.0))
    hnorm = jnp.sqrt(jnp.sum(jnp.square(h_BCD.astype(jnp.float32)), axis=-1))
    return logp_t, resid, hnorm


@functools.partial(jax.jit, static_argnames=("config", "prompt_len", "temperature", "chunk_size"))
def response_token_stats(
    config: ModelConfig,
    params,
    input_ids_BS,
    attention_mask_BS,
    *,
    prompt_len: int,
    temperature: float = 1.0,
    chunk_size: int = 128,
) -> tuple[jax.Array, jax.Array, jax.Array]:
    """For every response token (columns ``prompt_len:`` of the sequence): ``log pi_t(o_t)`` at
    ``temperature``, ``||e(o_t) - pi_t||_2`` and ``||h_t||_2`` (final-norm hidden state at the position that
    predicts o_t). Logits are built ``chunk_size`` positions at a time. Three [B, R] float32 arrays."""
    h = hidden_states(config, params, input_ids_BS, attention_mask_BS)
    h_resp = h[:, prompt_len - 1 : -1]
    targets = input_ids_BS[:, prompt_len:]
    return map_position_chunks(
        lambda h_c, tg_c: _chunk_stats(config, params, h_c, tg_c, temperature), h_resp, targets, chunk_size
    )


@dataclasses.dataclass(frozen=True)
class GradientProxy:
    """Result of ``gradient_norm_proxy``; all [B, R] float32 numpy arrays, 0 on padding."""

    g: np.ndarray  # G_t
    alpha: np.ndarray  # d l_t / d log pi(o_t)
    resid_norm: np.ndarray  # ||e(o_t) - pi_t||
    hidden_norm: np.ndarray  # ||h_t||
    logp: np.ndarray  # log pi_t(o_t) under ``params`` at the temperature


def gradient_norm_proxy(
    model_cfg: ModelConfig,
    params,
    prompt_ids_BP,
    prompt_mask_BP,
    tokens_BR,
    mask_BR,
    adv_BR,
    old_logp_BR=None,
    *,
    temperature: float = 1.0,
    clip_low: float = 0.2,
    clip_high: float = 0.28,
    clip_c: float | None = None,
    micro_batch: int = 16,
    chunk_size: int = 128,
) -> GradientProxy:
    """Eq. 4 gradient-norm proxy of every response token of a batch (see the module docstring).

    The policy being updated is ``params``; the ratio is ``r = exp(logp - old_logp)`` with ``old_logp_BR``
    the rollout log-probs (default: the current ones, r = 1, as on the first mini-batch of a step, where
    ``alpha = -A``). Rows are processed ``micro_batch`` at a time.

    Args:
      prompt_ids_BP / prompt_mask_BP: [B, P] left-padded prompts (a rollout dump's ``prompt_ids``/``_mask``).
      tokens_BR / mask_BR: [B, R] responses and their mask.
      adv_BR: [B, R] token advantages (after shaping).
      old_logp_BR: optional [B, R] rollout log-probs at ``temperature``.
    """
    p_ids = np.asarray(prompt_ids_BP)
    p_mask = np.asarray(prompt_mask_BP)
    toks = np.asarray(tokens_BR)
    mask = np.asarray(mask_BR)
    if p_ids.ndim != 2 or toks.ndim != 2 or p_ids.shape[0] != toks.shape[0] or p_ids.shape != p_mask.shape:
        raise ValueError(f"prompt {p_ids.shape}/{p_mask.shape} and tokens {toks.shape} do not fit [B, P] / [B, R]")
    if mask.shape != toks.shape or np.shape(adv_BR) != toks.shape:
        raise ValueError(f"mask {mask.shape} and adv {np.shape(adv_BR)} must have the tokens' shape {toks.shape}")
    if micro_batch < 1:
        raise ValueError(f"micro_batch must be >= 1, got {micro_batch!r}")
    ids = np.concatenate([p_ids, toks], axis=1).astype(np.int32)
    am = np.concatenate([p_mask, mask], axis=1).astype(np.int32)
    b, p_len = p_ids.shape
    parts = []
    for s in range(0, b, micro_batch):
        e = min(s + micro_batch, b)
        pad = micro_batch - (e - s) if b > micro_batch else 0
        i_mb, a_mb = ids[s:e], am[s:e]
        if pad:  # keep one compiled shape
            i_mb = np.concatenate([i_mb, np.repeat(i_mb[-1:], pad, 0)])
            a_mb = np.concatenate([a_mb, np.repeat(a_mb[-1:], pad, 0)])
        out = response_token_stats(
            model_cfg,
            params,
            jnp.asarray(i_mb),
            jnp.asarray(a_mb),
            prompt_len=p_len,
            temperature=float(temperature),
            chunk_size=chunk_size,
        )
        parts.append([np.asarray(o)[: e - s] for o in out])
    logp, resid, hnorm = (np.concatenate([p[i] for p in parts]) for i in range(3))
    old = logp if old_logp_BR is None else np.asarray(old_logp_BR, np.float32)
    alpha = np.asarray(
        surrogate_coefficients(logp, old, adv_BR, mask, clip_low=clip_low, clip_high=clip_high, clip_c=clip_c)
    )
    m = mask != 0
    g = np.abs(alpha) * resid * hnorm / np.float32(temperature)
    z = lambda x: np.where(m, x, 0.0).astype(np.float32)  # noqa: E731
    return GradientProxy(g=z(g), alpha=z(alpha), resid_norm=z(resid), hidden_norm=z(hnorm), logp=z(logp))
