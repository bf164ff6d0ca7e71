"""Prompt entropy as Revisiting defines it (App. C.2 / C.3): the model's entropy on the prompt tokens, its
ratio to the reference model's, in-domain vs out-of-domain, and its correlation with per-prompt accuracy."""

import json

import jax
import numpy as np
import pytest

from jaxrlvr.analysis.prompts import per_prompt_accuracy, prompt_entropy_study, prompt_token_entropy
from jaxrlvr.data import CharTokenizer
from jaxrlvr.eval import get_benchmark
from tests.eval.test_end_to_end import _tiny_model

TOK = CharTokenizer()


def _entropy_by_hand(cfg, params, ids):
    from jaxrlvr.models.model import forward

    z = np.asarray(forward(cfg, params, np.asarray([ids], np.int32)), np.float64)[0, :-1]  # [L-1, V]
    p = np.exp(z - z.max(-1, keepdims=True))
    p /= p.sum(-1, keepdims=True)
    return float(-(p * np.log(p)).sum(-1).mean())


def test_prompt_token_entropy_is_the_mean_next_token_entropy_and_ignores_padding():
    cfg, params = _tiny_model()
    prompts = [TOK.encode("What is 2+3?"), TOK.encode("Hi"), TOK.encode("x")]
    h = prompt_token_entropy(cfg, params, prompts, batch=2, pad_id=TOK.pad_id)
    assert h[0] == pytest.approx(_entropy_by_hand(cfg, params, prompts[0]), rel=1e-4)
    assert h[1] == pytest.approx(_entropy_by_hand(cfg, params, prompts[1]), rel=1e-4)  # left-padded in its batch
    assert np.isnan(h[2])  # one token: no position predicts a prompt token


def test_prompt_entropy_study_over_checkpoints(tmp_path):
    from jaxrlvr.models import init_params
    from jaxrlvr.models.checkpoint import save_params

    cfg, _ = _tiny_model()
    ckpts = {}
    for step in (0, 4):
        ckpts[step] = save_params(tmp_path / "checkpoints" / str(step), cfg, init_params(cfg, jax.random.key(step)))
    # a periodic evaluation at step 4 on aime24: per-problem accuracy over 4 samples
    ids = [r["id"] for r in get_benchmark("aime24").load(None)][:6]
    rows = [{"problem_id": pid, "correct": s < i % 5, "sample_index": s} for i, pid in enumerate(ids) for s in range(4)]
    samples = tmp_path / "eval" / "step_000004" / "aime24.samples.jsonl"
    samples.parent.mkdir(parents=True)
    samples.write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert per_prompt_accuracy(samples)[ids[3]] == 0.75
    out = prompt_entropy_study(ckpts, TOK, max_prompts=3, eval_root=tmp_path / "eval")
    assert out["reference_step"] == 0 and out["prompts"] == {"aime24": 3, "ifeval": 3}
    assert out["ratio"]["aime24"][0] == pytest.approx(1.0) and out["ratio"]["ifeval"][0] == pytest.approx(1.0)
    assert out["entropy"]["aime24"][4] != out["entropy"]["aime24"][0]
    corr = out["correlation"]["aime24"][4]
    assert corr["n"] == 6 and -1.0 <= corr["rho"] <= 1.0
