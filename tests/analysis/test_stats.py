"""Calibration AUROC, log-prob/advantage covariance, Spearman correlations."""

import itertools

import jax.numpy as jnp
import numpy as np
import pytest

from jaxrlvr.algos import kl_cov_select
from jaxrlvr.analysis import (
    auroc,
    calibration,
    entropy_score_correlations,
    logp_adv_covariance,
    mean_token_logprob,
    spearman,
)


def brute_auroc(s, y):
    pos = [a for a, t in zip(s, y, strict=True) if t]
    neg = [a for a, t in zip(s, y, strict=True) if not t]
    wins = sum((p > n) + 0.5 * (p == n) for p, n in itertools.product(pos, neg))
    return wins / (len(pos) * len(neg))


def test_auroc_matches_pairwise_definition_with_ties():
    rng = np.random.default_rng(0)
    s = np.round(rng.normal(size=40), 1)  # many ties
    y = rng.random(40) < 0.4
    assert auroc(s, y) == pytest.approx(brute_auroc(s, y))
    assert auroc([1.0, 2.0, 3.0], [False, True, True]) == 1.0
    assert auroc([1.0, 2.0, 3.0], [True, False, False]) == 0.0
    assert auroc([1.0, 1.0], [True, False]) == 0.5
    assert np.isnan(auroc([1.0, 2.0], [True, True]))
    assert auroc([np.nan, 1.0, 2.0], [False, False, True]) == 1.0


def test_calibration_splits_by_correctness():
    lp = np.log(np.array([[0.9, 0.8, 0.1], [0.2, 0.1, 0.5], [0.5, 0.5, 0.5]]))
    mask = np.array([[1, 1, 0], [1, 1, 1], [0, 0, 0]])
    s = mean_token_logprob(lp, mask)
    np.testing.assert_allclose(s[:2], [np.log([0.9, 0.8]).mean(), np.log([0.2, 0.1, 0.5]).mean()])
    assert np.isnan(s[2])
    cal = calibration(lp, mask, [True, False, True])
    assert cal["correct"].size == 1 and cal["incorrect"].size == 1 and cal["auroc"] == 1.0


def test_covariance_is_population_covariance_over_valid_tokens():
    rng = np.random.default_rng(1)
    lp = rng.normal(size=(3, 5))
    adv = rng.normal(size=(3, 5))
    mask = rng.random((3, 5)) < 0.7
    want = np.cov(lp[mask], adv[mask], bias=True)[0, 1]
    assert logp_adv_covariance(lp, adv, mask) == pytest.approx(want)
    assert np.isnan(logp_adv_covariance(lp, adv, np.zeros((3, 5))))
    # the token with the largest centred product is the one KL-Cov (same covariance) penalises first
    x, y = lp[mask], adv[mask]
    prod = np.where(mask, (lp - x.mean()) * (adv - y.mean()), -np.inf)
    sel = np.asarray(
        kl_cov_select(jnp.asarray(lp, jnp.float32), jnp.asarray(adv, jnp.float32), jnp.asarray(mask), ratio=0.01)
    )
    assert sel.sum() == 1 and np.unravel_index(np.argmax(prod), prod.shape) == tuple(np.argwhere(sel)[0])


def test_spearman_and_entropy_score_correlations():
    rho, p = spearman([1, 2, 3, 4, 5], [10, 20, 30, 40, 60])
    assert rho == pytest.approx(1.0) and p < 0.05
    assert spearman([1, 2, 3, 4], [4, 3, 2, 1])[0] == pytest.approx(-1.0)
    assert np.isnan(spearman([1, 2], [1, 2])[0])
    assert np.isnan(spearman([1, 1, 1], [1, 2, 3])[0])
    out = entropy_score_correlations(
        [0.9, 0.7, 0.5, 0.4, 0.3],
        {"math500": [0.3, 0.4, 0.5, 0.6, 0.7], "aime": [0.1, np.nan, 0.1, 0.2, 0.2]},
    )
    assert out["math500"]["rho"] == pytest.approx(-1.0) and out["math500"]["n"] == 5
    assert out["aime"]["n"] == 4 and out["aime"]["rho"] < 0
    with pytest.raises(ValueError, match="checkpoints"):
        entropy_score_correlations([1.0, 2.0], {"x": [1.0]})
