"""The sampling strategies as pure functions on fixed logits: exact distributions, log-probs, PRNG."""

import functools

import jax
import jax.extend.random
import jax.numpy as jnp
import numpy as np
import pytest

from jaxrlvr.sampling import prng, strategies
from jaxrlvr.sampling.strategies import SamplingParams

V = 200  # not a multiple of the inverse-CDF block: exercises the padding
ROWS = 1 << 15
CHUNKS = 8  # 262144 draws per distribution (expected TV from noise alone <= ~0.011)


@pytest.fixture(scope="module")
def logits_V():
    rng = np.random.default_rng(0)
    x = rng.normal(0.0, 2.0, V).astype(np.float32)
    x[7] = x[11] = x.max()  # an exact tie at the top: ranked by token id
    return x


@functools.partial(jax.jit, static_argnums=(2,))
def _draw(logits_V, step, params):
    logits_BV = jnp.broadcast_to(logits_V, (ROWS, V))
    return strategies.sample_tokens(logits_BV, prng.seed_key(0), params, step=step)


def _reference(logits_V, params):
    """softmax(logits / T) restricted to the top-k / top-p set (float64, numpy sort)."""
    x = logits_V.astype(np.float64) / params.temperature
    p = np.exp(x - x.max())
    p /= p.sum()
    order = np.argsort(-x, kind="stable")
    keep = np.zeros(V, bool)
    ps = p[order]
    if params.top_k:
        ps = np.where(np.arange(V) < params.top_k, ps, 0.0)
        ps /= ps.sum()
    excl = np.cumsum(ps) - ps
    keep[order] = (excl < params.top_p) & (ps > 0)
    q = np.where(keep, p, 0.0)
    return q / q.sum(), keep


def _empirical(logits_V, params):
    counts = np.zeros(V)
    for step in range(CHUNKS):
        tok, logp = _draw(jnp.asarray(logits_V), step, params)
        counts += np.bincount(np.asarray(tok), minlength=V)
    return counts / counts.sum(), np.asarray(tok), np.asarray(logp)


@pytest.mark.parametrize("temperature", [0.6, 1.0])
@pytest.mark.parametrize("top_p", [0.95, 1.0])
def test_sampling_distribution_matches_nucleus(logits_V, temperature, top_p):
    params = SamplingParams(temperature=temperature, top_p=top_p)
    ref, keep = _reference(logits_V, params)
    emp, tok, logp = _empirical(logits_V, params)
    tv = 0.5 * np.abs(emp - ref).sum()
    assert tv < 0.02, f"total variation {tv:.4f} (T={temperature}, top_p={top_p})"
    assert emp[~keep].sum() == 0.0, "sampled a token outside the nucleus"
    # returned log-probs: full-vocabulary log-softmax at T, no renormalisation
    full = jax.nn.log_softmax(jnp.asarray(logits_V) / temperature)
    np.testing.assert_allclose(logp, np.asarray(full)[tok], atol=1e-5)


def test_top_k_then_top_p_distribution(logits_V):
    params = SamplingParams(temperature=0.8, top_p=0.8, top_k=12)
    ref, keep = _reference(logits_V, params)
    emp, tok, logp = _empirical(logits_V, params)
    assert 0.5 * np.abs(emp - ref).sum() < 0.02
    assert emp[~keep].sum() == 0.0
    np.testing.assert_allclose(logp, np.asarray(jax.nn.log_softmax(jnp.asarray(logits_V) / 0.8))[tok], atol=1e-5)


def test_sort_fallback_is_exact_and_used_when_all_candidates_fail(logits_V):
    params = SamplingParams(temperature=1.0, top_p=0.5)
    ref, _ = _reference(logits_V, params)
    x = jnp.broadcast_to(jnp.asarray(logits_V), (ROWS, V))
    e = jnp.exp(x - x.max(-1, keepdims=True))
    u = jax.random.uniform(jax.random.key(1), (ROWS,))
    tok = jax.jit(strategies._nucleus_by_sort, static_argnums=3)(e, e.sum(-1), u, 0.5)
    emp = np.bincount(np.asarray(tok), minlength=V) / ROWS
    assert 0.5 * np.abs(emp - ref).sum() < 0.03
    # 97% of the mass on token 0 (nucleus {0} at top_p 0.9): candidates drawn with u ~ 1 land in the tail
    # and are all rejected, so the row must take the sort path (which returns token 0 for any u).
    peaked = jnp.full((2, 50), -7.4).at[:, 0].set(0.0)
    n = params.num_candidates
    u_rows = jnp.concatenate([jnp.full((2, n), 0.999999), jnp.full((2, 1), 0.3)], axis=1)
    tok, _ = strategies.sample_from_uniforms(peaked, u_rows, SamplingParams(top_p=0.9))
    np.testing.assert_array_equal(np.asarray(tok), [0, 0])
    tok, _ = strategies.sample_from_uniforms(peaked, u_rows, SamplingParams(top_p=1.0))
    assert int(tok[0]) != 0  # without top-p the same uniform picks a tail token


def test_greedy_is_first_argmax_and_logprob_at_temperature(logits_V):
    params = SamplingParams(greedy=True, temperature=0.7)
    tok, logp = strategies.sample_tokens(jnp.asarray(logits_V)[None], prng.seed_key(0), params)
    assert int(tok[0]) == 7  # tie between 7 and 11
    np.testing.assert_allclose(float(logp[0]), float(jax.nn.log_softmax(jnp.asarray(logits_V) / 0.7)[7]), atol=1e-6)


def test_inverse_cdf_extremes_skip_zero_weights():
    w = jnp.asarray([[0.0, 1.0, 0.0, 0.0, 2.0] + [0.0] * 95, [3.0] + [0.0] * 99])
    u = jnp.asarray([[0.0, 1.0 / 3 - 1e-7, 1.0 / 3 + 1e-7, np.nextafter(np.float32(1), np.float32(0))]] * 2)
    got = np.asarray(strategies.inverse_cdf(w, u))
    np.testing.assert_array_equal(got, [[1, 1, 4, 4], [0, 0, 0, 0]])


def test_nucleus_mask_reference(logits_V):
    params = SamplingParams(temperature=0.6, top_p=0.9, top_k=30)
    got = np.asarray(strategies.nucleus_mask(jnp.asarray(logits_V)[None], params))[0]
    np.testing.assert_array_equal(got, _reference(logits_V, params)[1])


def test_prng_is_threefry_and_uniform():
    k = jnp.asarray([0x12345678, 0x9ABCDEF0], jnp.uint32)
    c0 = jnp.arange(64, dtype=jnp.uint32) * 7919
    c1 = jnp.arange(64, dtype=jnp.uint32) + 3
    ref = jax.extend.random.threefry_2x32(k, jnp.concatenate([c0, c1]))
    y0, y1 = prng.threefry2x32(k[0], k[1], c0, c1)
    np.testing.assert_array_equal(np.asarray(ref), np.concatenate([np.asarray(y0), np.asarray(y1)]))
    u = np.asarray(prng.step_uniforms(prng.seed_key(5), jnp.arange(4096), 3, 4))
    assert u.min() >= 0.0 and u.max() < 1.0 and abs(u.mean() - 0.5) < 0.01
    # a row's numbers do not depend on the other rows; steps and seeds differ
    one = np.asarray(prng.step_uniforms(prng.seed_key(5), jnp.asarray([17]), 3, 4))
    np.testing.assert_array_equal(one[0], u[17])
    assert not np.array_equal(u, np.asarray(prng.step_uniforms(prng.seed_key(5), jnp.arange(4096), 4, 4)))
    assert not np.array_equal(u, np.asarray(prng.step_uniforms(prng.seed_key(6), jnp.arange(4096), 3, 4)))


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(temperature=0.0),
        dict(temperature=float("nan")),
        dict(top_p=0.0),
        dict(top_p=1.5),
        dict(top_k=-1),
        dict(top_k=2.5),
        dict(greedy=1),
    ],
)
def test_sampling_params_validation(kwargs):
    with pytest.raises(ValueError):
        SamplingParams(**kwargs)
