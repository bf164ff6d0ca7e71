"""The Llama preset of the second paper (configs/llama_revisiting.py): its Appendix F settings, and its smoke
variant training 2 RL steps of the tiny Llama-architecture model (llama3 rope scaling, no biases) on CPU."""

import pytest

from configs import llama_revisiting
from jaxrlvr.train.loop import train
from jaxrlvr.train.metrics import read_metrics


def test_appendix_f_settings():
    c = llama_revisiting.get_config("clip_higher")
    assert c.model.preset == "llama-3.1-8b-instruct" and c.data.template == "llama3_math_cot"
    assert (c.rollout.prompts_per_step, c.rollout.group_size) == (256, 16)
    assert (c.rollout.temperature, c.rollout.max_new_tokens, c.optim.schedule) == (1.0, 4096, "cosine")
    assert c.eval.benchmarks == "math500" and c.eval.every > 0
    assert (c.algo.clip_low, c.algo.clip_high) == (0.2, 0.28)  # entropy_study's setting presets apply


@pytest.mark.slow
def test_smoke_runs(tmp_path):
    c = llama_revisiting.get_config("smoke")
    assert c.model.preset == "tiny-llama"
    c.log.tensorboard = False
    c.log.plots = False
    c.data.heldout = 0
    c.sft.steps = 0
    summary = train(c, str(tmp_path), log=lambda *_: None)
    recs = read_metrics(tmp_path / "metrics.jsonl")
    assert summary["steps"] == 2 and [r["step"] for r in recs] == [1, 2]
    assert all(r["skipped_updates"] == 0 for r in recs)
