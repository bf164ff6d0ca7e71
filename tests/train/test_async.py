"""Asynchronous rollouts (``rollout.max_staleness``): the staleness corrections by hand, the rollout thread at
staleness 0 equal to the synchronous loop, and a stale run that logs its staleness and resumes without losing
or repeating a prompt group."""

import pathlib
import shutil
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import demo
from jaxrlvr import algos
from jaxrlvr.algos.offpolicy import staleness_weights
from jaxrlvr.runs import RolloutDump, dump_path
from jaxrlvr.runs_lock import LOCK_NAME
from jaxrlvr.train import config as config_lib
from jaxrlvr.train.checkpoint import load_params
from jaxrlvr.train.loop import train
from jaxrlvr.train.metrics import read_metrics

TIMING = ("time", "tokens_per_s")
ROOT = pathlib.Path(__file__).resolve().parents[2]


# --------------------------------------------------------------------------------------------- formulas
def test_staleness_weights_by_hand():
    prox = jnp.log(jnp.array([[0.5, 0.9, 0.2, 0.3]]))
    behav = jnp.log(jnp.array([[0.5, 0.3, 0.4, 0.3]]))  # ratios 1, 3, 0.5, (masked)
    mask = jnp.array([[1, 1, 1, 0]])
    w, capped = staleness_weights(prox, behav, mask, mode="tis", cap=2.0)
    np.testing.assert_allclose(w, [[1.0, 2.0, 0.5, 0.0]], rtol=1e-6)
    assert capped.tolist() == [[False, True, False, False]]
    w, _ = staleness_weights(prox, behav, mask, mode="decoupled", cap=2.0)
    np.testing.assert_allclose(w, [[1.0, 0.0, 0.5, 0.0]], rtol=1e-6)  # above the cap: left out
    w, _ = staleness_weights(prox, behav, mask, mode="behaviour", cap=2.0)
    np.testing.assert_allclose(w, [[1.0, 1.0, 1.0, 0.0]])
    with pytest.raises(ValueError, match="stale_correction"):
        algos.AlgoConfig(group_size=2, stale_correction="vtrace")
    with pytest.raises(ValueError, match="stale_cap"):
        algos.AlgoConfig(group_size=2, stale_cap=0.5)


def test_token_loss_with_stale_rows():
    """Weights of 1 (behaviour = proximal) leave the loss as it is; TIS scales each token's policy term by its
    truncated weight; "behaviour" puts the sampler's log-probs in the ratio's denominator."""
    k = jax.random.split(jax.random.key(0), 4)
    logp = -jax.random.uniform(k[0], (2, 5)) - 0.1
    old = logp + 0.05 * jax.random.normal(k[1], (2, 5))
    behav = old + 0.5 * jax.random.normal(k[2], (2, 5))
    adv = jnp.array([[1.0] * 5, [-1.0] * 5])
    mask = jnp.array([[1, 1, 1, 1, 0], [1, 1, 1, 0, 0]])

    def loss(cfg, behav_logp=None, old_logp=old):
        num, den, m = algos.token_loss(cfg, logp, old_logp, None, None, adv, mask, None, None, behav_logp_BT=behav_logp)
        return num / den, algos.finalize_metrics(m)

    for mode in ("tis", "decoupled", "behaviour"):
        cfg = algos.AlgoConfig(group_size=2, stale_correction=mode)
        assert abs(loss(cfg, old)[0] - loss(cfg)[0]) < 1e-7  # behaviour == proximal: the synchronous loss
    tis = algos.AlgoConfig(group_size=2, stale_correction="tis", stale_cap=2.0)
    w = np.minimum(np.exp(np.asarray(old - behav)), 2.0)
    clip = algos.policy_loss(logp, old, adv, mask, clip_low=tis.clip_bounds[0], clip_high=tis.clip_bounds[1])[0]
    m = np.asarray(mask, bool)
    expect = float((np.asarray(clip) * w)[m].sum() / m.sum())
    got, metrics = loss(tis, behav)
    assert abs(float(got) - expect) < 1e-6
    assert abs(float(metrics["is_weight"]) - float(w[m].mean())) < 1e-6
    beh = algos.AlgoConfig(group_size=2, stale_correction="behaviour")
    assert abs(loss(beh, behav)[0] - loss(beh, None, behav)[0]) < 1e-7  # ratio pi_theta / mu


def test_the_report_says_which_policy_the_dumps_measured():
    from jaxrlvr.analysis.dump_settings import measured_policy

    assert "synchronous" in measured_policy([{"max_staleness": 0}, {"max_staleness": None}])
    said = measured_policy([{"max_staleness": 0}, {"max_staleness": 2}])
    assert "proximal" in said and "2 step(s) old" in said and "max_staleness=0/2" in said


# --------------------------------------------------------------------------------------------- the loop
def smoke(**over):
    c = demo.get_config("smoke")
    c.train.packing = True
    c.log.tensorboard = False
    c.log.plots = False
    c.train.num_steps = 4
    c.train.dump_rollouts_every = 1  # the prompts of every step, to compare the data order
    c.data.heldout = 0  # no held-out evaluations: not what these tests check
    return config_lib.set_dotted(c, over)


@pytest.fixture(scope="module")
def sync_run(tmp_path_factory):
    wd = tmp_path_factory.mktemp("sync")
    train(smoke(), str(wd), log=lambda *_: None)
    return wd


def prompts_per_step(wd, steps=4):
    return [RolloutDump.load(dump_path(wd, s)).prompt_ids.tolist() for s in range(1, steps + 1)]


def test_rollout_thread_at_zero_staleness_equals_the_synchronous_loop(sync_run, tmp_path):
    """The rollout thread itself changes nothing: every metric (timings aside) and the params are the
    synchronous loop's, bit for bit; no asynchrony metric is logged at staleness 0."""
    train(smoke(), str(tmp_path), log=lambda *_: None, _threaded=True)
    a, b = read_metrics(sync_run / "metrics.jsonl"), read_metrics(tmp_path / "metrics.jsonl")
    for ra, rb in zip(a, b, strict=True):
        assert set(ra) == set(rb) and "staleness" not in ra
        for key, v in ra.items():
            if not key.startswith(TIMING):
                assert v == rb[key], (ra["step"], key, v, rb[key])
    for x, y in zip(jax.tree.leaves(load_params(sync_run)[1]), jax.tree.leaves(load_params(tmp_path)[1]), strict=True):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def test_stale_run_logs_its_staleness_and_resumes_without_losing_a_prompt(sync_run, tmp_path):
    """Staleness 1, stopped after step 2 with step 3's rollout in flight, then resumed: the steps train on the
    synchronous loop's prompts in the same order (nothing lost or repeated); the rows' age is logged."""
    c = smoke(**{"rollout.max_staleness": 1})
    lines = []
    first = train(c, str(tmp_path), log=lines.append, stop_after=2)
    assert first["stopped_at"] == 2
    train(c, str(tmp_path), log=lines.append)
    recs = read_metrics(tmp_path / "metrics.jsonl")
    assert [r["step"] for r in recs] == [1, 2, 3, 4]
    # step 1 was sampled by the initial params; each later one by the params of the step before, except the
    # first step after the resume (its rollout was in flight at the stop: regenerated with the restored params)
    assert [r["staleness"] for r in recs] == [0.0, 1.0, 0.0, 1.0]
    for r in recs:
        assert 0.0 <= r["overlap_fraction"] <= 1.0 and r["idle_trainer_s"] >= 0 and r["idle_sampler_s"] >= 0
        assert r["is_weight"] > 0 and 0.0 <= r["is_capped"] <= 1.0
    assert prompts_per_step(tmp_path) == prompts_per_step(sync_run)
    assert any("stale 1.000" in str(line) for line in lines)  # the progress line shows it
    # scripts/bench_async.py as BENCHMARKS.md prints it, on these two finished runs (reused, not retrained)
    bench = tmp_path / "bench"
    shutil.copytree(sync_run, bench / "k0", ignore=shutil.ignore_patterns(LOCK_NAME))
    shutil.copytree(tmp_path, bench / "k1", ignore=shutil.ignore_patterns(LOCK_NAME, "bench"))
    md = tmp_path / "B.md"
    cmd = [sys.executable, "scripts/bench_async.py", "--config", "configs/demo.py", "--workdir", str(bench)]
    p = subprocess.run([*cmd, "--staleness", "0,1", "--write", str(md)], cwd=ROOT, capture_output=True, text=True)
    assert p.returncode == 0, p.stderr[-2000:]
    assert "reusing the finished run" in p.stderr and "| 1 |" in p.stdout
    assert "## Asynchronous rollouts (CPU, demo)" in md.read_text() and "bench_async.py --config" in md.read_text()


def test_sampler_logp_correction_on_fresh_rollouts(tmp_path):
    """``train.sampler_logp_correction`` at staleness 0: the sampler's log-probs are the behaviour policy; on
    a CPU in float32 they equal the trainer's, so the weights are 1 (nothing to correct)."""
    c = smoke(**{"train.num_steps": 2, "train.sampler_logp_correction": True, "train.dump_rollouts_every": 0})
    train(c, str(tmp_path), log=lambda *_: None)
    for r in read_metrics(tmp_path / "metrics.jsonl"):
        assert abs(r["is_weight"] - 1.0) < 1e-5 and r["is_capped"] == 0.0 and "staleness" not in r
