"""configs/study.py: variants are the demo with the paper presets' algorithm settings (derived, not re-typed),
and the claim judging of jaxrlvr.analysis.study."""

import math

import pytest

from configs import entropy_study, position_shaping, ppl_shaping, study
from jaxrlvr.analysis.study import HOLDS, NOT_RUN, NOT_SEPARABLE, OPPOSITE, judge_claim, mean_ci
from jaxrlvr.train.config import validate


@pytest.mark.parametrize("name", list(study.STUDIES))
def test_every_variant_validates_and_claims_name_variants(name):
    for v in study.STUDIES[name]:
        for smoke in (False, True):
            validate(study.variant_config(name, v, smoke=smoke))
    for c in study.get_config(name).claims:
        assert {c["a"], c["b"]} <= set(study.STUDIES[name]) and c["expect"] in "<>"


def test_algorithm_settings_come_from_the_paper_presets():
    c = study.get_config("variant=revisiting/clip_higher")
    assert c.algo.to_dict() == entropy_study.get_config("clip_higher").algo.to_dict()
    assert c.model.hidden_size == 128 and c.rollout.prompts_per_step == 16  # the demo's sizes
    c = study.get_config("variant=decomposing/ppl_inverse")
    assert c.algo.to_dict() == ppl_shaping.get_config("inverse").algo.to_dict()
    paper = position_shaping.get_config(None)
    c = study.get_config("variant=decomposing/position_late,steps=50")
    assert c.algo.to_dict() == paper.algo.to_dict()
    f = 50 / paper.train.num_steps  # the window scales with the number of steps
    assert c.train.position_window == (
        round(paper.train.position_window[0] * f),
        round(paper.train.position_window[1] * f),
    )
    # updates per rollout batch: the paper's, capped at the demo's prompts per step
    updates = paper.rollout.prompts_per_step // paper.train.mini_batch_prompts
    assert c.rollout.prompts_per_step // c.train.mini_batch_prompts == min(updates, 16)


def test_epoch_schedule_keeps_the_paper_runs_epoch_count():
    """500 steps x 256 prompts over DAPO-Math-17k's 17,917 = 7.1 passes -> 8 schedule epochs; the Pos-Adv
    epoch schedule then leaves lambda = 0 after the first eighth of the run (without this it would stay in
    epoch 1 of the demo's 0.4 passes, lambda = 0 throughout)."""
    import numpy as np

    from jaxrlvr import algos
    from jaxrlvr.train.controllers import schedule_epoch

    c = study.get_config("variant=revisiting/pos_adv_epoch")
    assert c.train.schedule_epochs == 8 and c.algo.pos_adv_mode == "epoch"
    n = c.train.num_steps
    lams = []
    for step in range(n):
        e, ne = schedule_epoch(step, n, c.rollout.prompts_per_step, c.data.synthetic_train, c.train.schedule_epochs)
        lams.append(float(algos.pos_adv_lambda_epoch(e, num_epochs=ne)))
    assert lams[0] == 0.0 and lams[-1] == 1.0 and np.all(np.diff(lams) >= 0) and len(set(lams)) == 8
    # real passes over the data when schedule_epochs is 0: the demo's 150 x 16 of 6000 stays in epoch 1
    assert {schedule_epoch(s, n, 16, 6000)[0] for s in range(n)} == {1}
    assert schedule_epoch(0, 10, 100, 150) == (1, 7) and schedule_epoch(2, 10, 100, 150) == (3, 7)


def test_config_errors_name_the_value():
    with pytest.raises(ValueError, match="nope"):
        study.get_config("variant=revisiting/nope")
    with pytest.raises(ValueError, match="unknown preset"):
        study.get_config("bogus")


def test_mean_ci_and_claim_verdicts():
    s = mean_ci([1.0, 2.0, 3.0])
    assert s["mean"] == 2.0 and s["n"] == 3 and s["lo"] < 2.0 < s["hi"]
    assert math.isnan(mean_ci([1.0])["lo"]) and mean_ci([])["n"] == 0
    lo, hi, one = mean_ci([0.1, 0.11, 0.12]), mean_ci([0.5, 0.51, 0.52]), mean_ci([0.9])
    claim = dict(a="x", b="y", metric="m", expect=">")
    assert judge_claim(claim, {"x": {"m": hi}, "y": {"m": lo}})["verdict"] == HOLDS
    assert judge_claim(claim, {"x": {"m": lo}, "y": {"m": hi}})["verdict"] == OPPOSITE
    assert judge_claim(claim, {"x": {"m": one}, "y": {"m": lo}})["verdict"] == NOT_SEPARABLE
    assert judge_claim(claim, {"x": {"m": hi}})["verdict"] == NOT_RUN


def test_claims_are_paired_by_seed():
    """Seed-to-seed spread larger than the effect: the unpaired intervals overlap, but a is above b in
    every seed by about the same amount, which the paired interval sees."""
    xs, ys = [0.30, 0.50, 0.70], [0.280, 0.479, 0.681]
    runs = {f"{v}/seed_{s}": {"metrics": {"m": vals[s]}} for v, vals in (("x", xs), ("y", ys)) for s in range(3)}
    per = {"x": {"m": mean_ci(xs)}, "y": {"m": mean_ci(ys)}}
    got = judge_claim(dict(a="x", b="y", metric="m", expect=">"), per, runs, seeds=[0, 1, 2])
    assert got["verdict"] == HOLDS and not got["unpaired_separated"]
    assert got["paired"]["n"] == 3 and 0 < got["paired"]["lo"] < 0.02 < got["paired"]["hi"]
    got = judge_claim(dict(a="x", b="y", metric="m", expect="<"), per, runs, seeds=[0, 1, 2])
    assert got["verdict"] == OPPOSITE
    noisy = dict(runs, **{"y/seed_1": {"metrics": {"m": 0.60}}})  # differences +0.02, -0.10, +0.019
    got = judge_claim(dict(a="x", b="y", metric="m", expect=">"), per, noisy, seeds=[0, 1, 2])
    assert got["verdict"] == NOT_SEPARABLE
    got = judge_claim(dict(a="x", b="y", metric="m", expect=">"), per, runs, seeds=[0])  # one pair
    assert got["verdict"] == NOT_SEPARABLE and got["paired"]["n"] == 1
