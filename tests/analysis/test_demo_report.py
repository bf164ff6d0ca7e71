"""The report from a real (smoke-sized) demo run with rollout dumps; cross-checks against the trainer."""

import json
import pathlib

import numpy as np
import pytest

from configs import demo
from jaxrlvr.analysis import (
    ReportOptions,
    RolloutDump,
    gradient_norm_proxy,
    load_run,
    response_log_ppl,
    write_report,
)
from jaxrlvr.analysis.entropy import masked_mean
from jaxrlvr.train.checkpoint import load_params
from jaxrlvr.train.loop import train


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    wd = tmp_path_factory.mktemp("demo")
    c = demo.get_config("smoke")
    c.log.tensorboard = False
    c.log.plots = False
    c.train.dump_rollouts_every = 1
    train(c, str(wd), log=lambda *_: None)
    return wd


@pytest.mark.slow
def test_report_from_demo_run(demo_run):
    run = load_run(demo_run)
    assert list(run.dumps) == [1, 2]
    path = write_report(demo_run, opts=ReportOptions(model_sections=False))  # with them: tests/cli/test_readme.py
    out = demo_run / "analysis"
    data = json.loads((out / "analysis.json").read_text())
    assert set(data["figures"]) >= {"curves.png", "positional_entropy.png", "probability_shift.png"}
    for name in data["figures"]:
        assert (out / name).stat().st_size > 5000 and f"src='{name}'" in path.read_text()
    page = path.read_text()  # the paper sections of issue 14 (vocabulary entropy drop, top-shift categories)
    assert "Vocabulary-level entropy drop" in page and "top-20% probability-shift tokens" in page
    assert "Prompt-level entropy" in page
    assert set(data["vocab"]["shift_categories"]["top"]) >= {"formal_reasoning", "other"}
    assert "logp_pi_adv_cov" in data["per_dump"][0]
    # the dumps and the trainer's metrics agree on the step's entropy and log-PPL
    for rec, d in zip(run.metrics, data["per_dump"], strict=True):
        assert d["entropy"] == pytest.approx(rec["entropy"], rel=1e-5)
        dump = run.dump(rec["step"])
        assert np.mean(response_log_ppl(dump.old_logp, dump.mask)) == pytest.approx(rec["log_ppl"], rel=1e-5)
        assert dump.texts is not None and len(dump.texts) == dump.batch_size


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:Sharding info not provided")
def test_gradient_proxy_on_demo_dump_reproduces_new_logp(demo_run):
    """Scoring the last dump with the final checkpoint gives the dump's post-update log-probs."""
    cfg, params = load_params(demo_run)
    dump = RolloutDump.load(demo_run / "rollouts" / "step_000002.npz")
    temperature = load_run(demo_run).config_value("rollout.temperature")
    res = gradient_norm_proxy(
        cfg,
        params,
        dump.prompt_ids,
        dump.prompt_mask,
        dump.tokens,
        dump.mask,
        dump.adv,
        dump.old_logp,
        temperature=temperature,
        micro_batch=32,
    )
    m = dump.mask == 1
    np.testing.assert_allclose(res.logp[m], dump.new_logp[m], atol=2e-4)
    assert np.all(res.g[~m] == 0) and np.all(res.g[m] >= 0)
    assert masked_mean(res.g, m) > 0


@pytest.mark.slow
def test_analyze_cli_reads_each_dumps_own_settings_after_a_resume(demo_run, tmp_path):
    """The demo run resumed with another dump_rollouts_every: config.json says the new value, and
    scripts/analyze.py reports each dump with the settings it was written with (the dump's settings.json;
    for dumps without one, config_history.jsonl)."""
    import os
    import shutil
    import subprocess
    import sys

    from jaxrlvr.runs_lock import LOCK_NAME

    wd = tmp_path / "resumed"
    shutil.copytree(demo_run, wd, ignore=shutil.ignore_patterns(LOCK_NAME, "analysis"))
    c = demo.get_config("smoke")
    c.log.tensorboard = False
    c.log.plots = False
    c.train.dump_rollouts_every = 2
    c.train.num_steps = 4
    train(c, str(wd), log=lambda *_: None)
    assert json.loads((wd / "config.json").read_text())["train"]["dump_rollouts_every"] == 2
    root = pathlib.Path(__file__).resolve().parents[2]
    env = dict(os.environ, PYTHONPATH=str(root), JAX_PLATFORMS="cpu")
    proc = subprocess.run(
        [sys.executable, "scripts/analyze.py", "--workdir", str(wd), "--no_model"],
        cwd=root, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert '"dump_schedule": "steps 1-2: every 1; step 4: every 2"' in proc.stdout
    assert '"entropy_measured_under": "the policy that sampled the rows (synchronous rollouts)"' in proc.stdout
    dumps = json.loads((wd / "analysis" / "analysis.json").read_text())["dumps"]
    assert [(d["step"], d["every"], d["from"]) for d in dumps] == [(1, 1, "dump"), (2, 1, "dump"), (4, 2, "dump")]
    # dumps written before dumps recorded their settings: rebuilt from config_history.jsonl
    for step in (1, 2, 4):
        (wd / "rollouts" / f"step_{step:06d}.settings.json").unlink()
    for step in (1, 2):  # written well before the resume (one-second timestamps in the history)
        t = (wd / "rollouts" / f"step_{step:06d}.npz").stat().st_mtime - 5
        os.utime(wd / "rollouts" / f"step_{step:06d}.npz", (t, t))
    run = load_run(wd)
    assert [run.dump_settings(s)[0]["train.dump_rollouts_every"] for s in (1, 2, 4)] == [1, 1, 2]
    assert run.dump_settings(1)[1] == "config_history.jsonl"
