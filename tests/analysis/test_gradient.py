"""Eq. 4 gradient-norm proxy == Frobenius norm of the autodiff LM-head gradient of each token's loss."""

import jax
import jax.numpy as jnp
import numpy as np

from jaxrlvr.algos import policy_loss
from jaxrlvr.analysis import gradient_norm_proxy, surrogate_coefficients
from jaxrlvr.models import ModelConfig, forward, init_params


def _setup(temperature):
    cfg = ModelConfig.preset("tiny-untied", num_layers=1, vocab_size=256)
    params = jax.jit(init_params, static_argnums=0)(cfg, jax.random.key(0))
    params = dict(params, lm_head=params["lm_head"] * 40.0)  # peaked, non-uniform next-token distributions
    rng = np.random.default_rng(0)
    p_ids = rng.integers(1, cfg.vocab_size, (3, 4)).astype(np.int32)
    p_mask = np.ones((3, 4), np.int32)
    p_mask[1, :2] = 0  # left padding
    p_ids[1, :2] = 0
    toks = rng.integers(1, cfg.vocab_size, (3, 6)).astype(np.int32)
    mask = np.ones((3, 6), np.int32)
    mask[2, 4:] = 0
    adv = np.repeat(np.array([1.0, -1.0, 0.7], np.float32)[:, None], 6, 1)
    adv[0, 3] = -0.5  # token-level advantages after shaping
    # current log-probs, to place the ratios: in range, clipped high (A>0, r=1.5), clipped low (A<0, r=0.5)
    logits = jax.jit(forward, static_argnums=0)(
        cfg,
        params,
        jnp.asarray(np.concatenate([p_ids, toks], 1)),
        jnp.asarray(np.concatenate([p_mask, mask], 1)),
    )
    logp = np.asarray(
        jnp.take_along_axis(jax.nn.log_softmax(logits[:, 3:-1] / temperature), toks[..., None], -1)[..., 0]
    )
    shift = np.zeros((3, 6), np.float32)
    shift[0, 1] = np.log(1.5)  # A > 0, r = 1.5 > 1.28: clipped
    shift[1, 2] = np.log(0.5)  # A < 0, r = 0.5 < 0.8: clipped
    shift[0, 4] = np.log(1.1)  # in range
    shift[1, 5] = np.log(1.6)  # A < 0, r = 1.6: unclipped branch active
    old = logp - shift
    return cfg, params, p_ids, p_mask, toks, mask, adv, old


def test_proxy_equals_lm_head_gradient_norm():
    temperature = 0.7
    cfg, params, p_ids, p_mask, toks, mask, adv, old = _setup(temperature)
    res = gradient_norm_proxy(cfg, params, p_ids, p_mask, toks, mask, adv, old, temperature=temperature, micro_batch=2)
    ids = jnp.asarray(np.concatenate([p_ids, toks], 1))
    am = jnp.asarray(np.concatenate([p_mask, mask], 1))

    def token_losses(w):
        logits = jax.jit(forward, static_argnums=0)(cfg, dict(params, lm_head=w), ids, am)[:, 3:-1] / temperature
        lp = jnp.take_along_axis(jax.nn.log_softmax(logits), jnp.asarray(toks)[..., None], -1)[..., 0]
        loss, _ = policy_loss(lp, jnp.asarray(old), jnp.asarray(adv), jnp.asarray(mask))
        return loss

    jac = jax.jit(jax.jacrev(token_losses))(params["lm_head"])  # [B, R, D, V]
    want = np.asarray(jnp.sqrt(jnp.sum(jac**2, axis=(-2, -1))))
    np.testing.assert_allclose(res.g, want, rtol=2e-4, atol=1e-6)
    # clipped tokens send nothing; padding is 0; the rest is |A r| * ... > 0
    assert res.g[0, 1] == 0 and res.g[1, 2] == 0 and np.all(res.g[2, 4:] == 0)
    assert res.g[1, 5] > 0 and res.g[0, 4] > 0
    np.testing.assert_allclose(res.alpha[1, 5], -adv[1, 5] * 1.6, rtol=1e-4)


def test_default_old_logp_is_on_policy():
    temperature = 1.0
    cfg, params, p_ids, p_mask, toks, mask, adv, _ = _setup(temperature)
    res = gradient_norm_proxy(cfg, params, p_ids, p_mask, toks, mask, adv, temperature=temperature)
    np.testing.assert_allclose(res.alpha, np.where(mask == 1, -adv, 0.0), rtol=1e-6)
    np.testing.assert_allclose(res.g, np.abs(adv) * res.resid_norm * res.hidden_norm * mask, rtol=1e-6)


def test_surrogate_coefficients_dual_clip():
    lp = jnp.log(jnp.array([[5.0, 1.0]]))  # r = 5 with A = -1: dual clip (c = 3) caps the loss -> no gradient
    alpha = surrogate_coefficients(lp, jnp.zeros((1, 2)), -jnp.ones((1, 2)), jnp.ones((1, 2)), clip_c=3.0)
    np.testing.assert_allclose(np.asarray(alpha), [[0.0, 1.0]], atol=1e-7)
