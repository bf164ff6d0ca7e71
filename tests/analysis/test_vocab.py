"""Vocabulary-level entropy drop, top-shift token categories and the policy-gradient covariance form."""

import types

import numpy as np
import pytest

from jaxrlvr.analysis.stats import logp_adv_covariance
from jaxrlvr.analysis.vocab import token_category, top_shift_categories, vocabulary_entropy_drop


def _dump(tokens, entropy, correct, old=None, new=None):
    tokens = np.asarray(tokens)
    z = np.zeros(tokens.shape)
    return types.SimpleNamespace(
        tokens=tokens,
        mask=np.ones(tokens.shape, np.int32),
        entropy=np.asarray(entropy, np.float64),
        positive=np.asarray(correct, bool),
        old_logp=z + np.log(0.5) if old is None else np.asarray(old),
        new_logp=z + np.log(0.5) if new is None else np.asarray(new),
    )


def test_vocabulary_entropy_drop_groups_negative_only_tokens():
    # id 7 only in the negative sample early; id 3 in both; id 5 only in the positive one
    early = _dump([[3, 5], [3, 7]], [[1.0, 0.5], [1.0, 2.0]], [True, False])
    late = _dump([[3, 5], [7, 7]], [[0.8, 0.5], [0.5, 0.5]], [True, True])
    d = vocabulary_entropy_drop([early], [late])
    g = d["groups"]
    assert (g["neg_only"]["ids"], g["pos_only"]["ids"], g["both"]["ids"]) == (1, 1, 1)
    assert g["neg_only"]["mean_drop"] == pytest.approx(1.5) and g["both"]["mean_drop"] == pytest.approx(0.2)
    # total drop weighted by late counts: 7 -> 1.5 * 2, 3 -> 0.2 * 1, 5 -> 0
    assert g["neg_only"]["drop_share"] == pytest.approx(3.0 / 3.2)
    assert d["top"][0]["id"] == 7 and d["top"][0]["group"] == "neg_only"


def test_top_shift_token_categories():
    vocab = {0: " therefore", 1: "12", 2: " wait", 3: " the", 4: ","}
    tokens = [[0, 1, 2, 3, 4]]
    old = np.log([[0.5] * 5])
    new = np.log([[0.5, 0.9, 0.5, 0.5, 0.5]])  # only "12" moved: it is the top 20% (1 of 5 tokens)
    out = top_shift_categories([_dump(tokens, np.ones((1, 5)), [True], old, new)], vocab.__getitem__)
    assert out["top"]["formal_reasoning"] == 1.0
    assert out["all"]["logical_structuring"] == pytest.approx(0.2) and out["all"]["other"] == pytest.approx(0.2)
    assert token_category(" wait") == "metacognitive" and token_category(" ") == "other"
    # the per-category numbers that are not shares: the rate into the top 20% and the mean |shift|
    assert out["rate"]["formal_reasoning"] == 1.0 and out["rate"]["semantic_support"] == 0.0
    assert out["mean_abs_shift_top"]["formal_reasoning"] == pytest.approx(0.4)
    assert out["mean_abs_shift"]["formal_reasoning"] == pytest.approx(0.4) and out["mean_abs_shift"]["other"] == 0.0
    assert sum(out["mean_abs_shift"].values()) != pytest.approx(1.0)


def test_policy_gradient_covariance_form():
    logp = np.log(np.array([[0.9, 0.1, 0.5]]))
    adv = np.array([[1.0, 1.0, -1.0]])
    m = np.ones((1, 3))
    x, y = logp[0], np.exp(logp[0]) * adv[0]
    want = np.mean((x - x.mean()) * (y - y.mean()))
    assert logp_adv_covariance(logp, adv, m, form="policy_gradient") == pytest.approx(want)
    assert logp_adv_covariance(logp, adv, m) != pytest.approx(want)
    with pytest.raises(ValueError, match="form"):
        logp_adv_covariance(logp, adv, m, form="pg")


def test_prompt_entropy_by_group_accuracy():
    from jaxrlvr.analysis.prompts import prompt_entropy_summary

    # 3 prompts x G=2: solved (low entropy), mixed, unsolved (high entropy)
    d = _dump(
        np.zeros((6, 2), int),
        [[0.1, 0.1], [0.3, 0.3], [1.0, 1.0], [0.5, 0.5], [2.0, 2.0], [2.0, 1.0]],
        [True, True, True, False, False, False],
    )
    d.group_size = 2
    s = prompt_entropy_summary([d])
    b = s["buckets"]
    assert (b["acc=1"]["prompts"], b["0<acc<=0.5"]["prompts"], b["acc=0"]["prompts"]) == (1, 1, 1)
    assert b["acc=1"]["entropy"] == pytest.approx(0.2) and b["acc=0"]["entropy"] == pytest.approx(1.75)
    assert b["acc=0"]["spread"] == pytest.approx(0.25)
    assert s["spearman_entropy_accuracy"]["rho"] == pytest.approx(-1.0)
