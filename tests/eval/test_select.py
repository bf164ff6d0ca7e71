"""Checkpoint selection on a validation benchmark (real loading, sampling and scoring of tiny checkpoints)."""

import json

import jax
import pytest

from jaxrlvr.data import CharTokenizer
from jaxrlvr.eval import EvalConfig, best_step, checkpoint_steps, select_checkpoint
from tests.eval.test_end_to_end import _tiny_model

TOK = CharTokenizer()


def test_best_step_takes_the_highest_score_and_the_earliest_on_ties():
    assert best_step({0: 0.1, 10: 0.3, 20: 0.3, 30: float("nan")}) == 10
    with pytest.raises(ValueError, match="no finite"):
        best_step({0: float("nan")})


def test_select_checkpoint_evaluates_every_step(tmp_path):
    from jaxrlvr.models import init_params
    from jaxrlvr.models.checkpoint import save_params

    cfg, _ = _tiny_model()
    for step in (0, 5):
        save_params(tmp_path / "run" / "checkpoints" / str(step), cfg, init_params(cfg, jax.random.key(step)))
    bench = tmp_path / "val.jsonl"
    bench.write_text(
        "".join(json.dumps({"id": i, "problem": f"{i}+1?", "answer": str(i + 1)}) + "\n" for i in range(2))
    )
    config = EvalConfig(
        benchmarks=(str(bench),),
        num_samples=2,
        max_new_tokens=6,
        template="plain_boxed",
        prompt_batch_size=2,
        verifier_workers=1,
        out_dir=str(tmp_path / "sel"),
    )
    assert list(checkpoint_steps(tmp_path / "run")) == [0, 5]
    res = select_checkpoint(tmp_path / "run", TOK, config, log=None)
    assert set(res["scores"]) == {0, 5} and res["best_step"] == best_step(res["scores"])
    assert res["validation"] == str(bench) and res["best_checkpoint"].endswith(str(res["best_step"]))
    assert json.loads((tmp_path / "sel" / "selection.json").read_text())["best_step"] == res["best_step"]
    assert (tmp_path / "sel" / "step_000005" / "summary.json").is_file()
    with pytest.raises(ValueError, match="no checkpoint"):
        select_checkpoint(tmp_path / "run", TOK, config, steps=[7], log=None)
