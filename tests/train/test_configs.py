"""Every config file's smoke preset runs 2 RL steps on CPU (compilations are shared between runs)."""

import pytest

from configs import dapo_baseline, demo, entropy_study, llama_revisiting, position_shaping, ppl_shaping
from jaxrlvr.train.loop import train
from jaxrlvr.train.metrics import read_metrics

CASES = [
    (dapo_baseline, "smoke"),
    (ppl_shaping, "smoke"),
    (ppl_shaping, "smoke,inverse"),
    (position_shaping, "smoke"),
    (position_shaping, "smoke,paper"),
    (position_shaping, "smoke,reverse,gamma_ablation"),
    (position_shaping, "smoke,auto"),
    (llama_revisiting, "smoke"),  # the tiny Llama architecture (llama3 rope scaling, no biases)
] + [
    (entropy_study, f"smoke,{p}")
    for p in (
        "clip_higher",
        "clip_lower",
        "clip_tighter",
        "clip_free",
        "offpolicy=2",
        "offpolicy=4",
        "entropy_reg",
        "entropy_adaptive",
        "clip_cov",
        "kl_cov",
        "entropy_adv",
        "non_negative",
        "non_positive",
        "rand_pos_clip",
        "pos_adv=stage",
        "pos_adv=epoch",
        "pos_adv=entropy",
        "pos_adv=entropy,offpolicy=2",
        "clip_higher,offpolicy=4",
    )
]


@pytest.mark.slow
@pytest.mark.parametrize("module,preset", CASES, ids=[f"{m.__name__.split('.')[-1]}:{p}" for m, p in CASES])
def test_smoke_preset_runs(module, preset, tmp_path):
    c = module.get_config(preset)
    c.log.tensorboard = False
    c.log.plots = False
    c.data.heldout = 0
    c.sft.steps = 0
    summary = train(c, str(tmp_path), log=lambda *_: None)
    recs = read_metrics(tmp_path / "metrics.jsonl")
    assert summary["steps"] == 2 and [r["step"] for r in recs] == [1, 2]
    assert all(r["skipped_updates"] == 0 for r in recs)


def test_demo_config_is_the_readme_default():
    c = demo.get_config()
    assert c.tokenizer == "char" and c.data.source == "synthetic" and c.sft.steps > 0
