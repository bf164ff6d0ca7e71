"""Rollout dump / run directory loading; compatibility with the trainer's own dump writer."""

import json

import numpy as np
import pytest

from jaxrlvr.analysis import DUMP_KEYS, RolloutDump, dump_path, list_dumps, load_run
from jaxrlvr.train.stages import dump_rollouts

from .synthetic import make_dump, make_run


def test_save_load_round_trip(tmp_path):
    d = make_dump(7)
    path = d.save(dump_path(tmp_path, 7))
    assert path.name == "step_000007.npz" and (tmp_path / "rollouts" / "step_000007.texts.json").is_file()
    back = RolloutDump.load(path)
    assert back.step == 7 and back.group_size == 4 and back.texts == d.texts
    for k in DUMP_KEYS[:-2]:
        np.testing.assert_array_equal(getattr(back, k), getattr(d, k))
    assert back.num_prompts == 4 and back.batch_size == 16
    assert back.response(0) == [int(t) for t in d.tokens[0]]  # full-length row
    assert back.prompt(0) == [int(t) for t in d.prompt_ids[0, 2:]]  # left padding dropped
    assert list_dumps(tmp_path) == {7: path}


def test_trainer_writer_is_readable(tmp_path):
    """The trainer's `dump_rollouts` output loads with every documented key, texts and gold answers."""
    d = make_dump(3)
    answers = [str(i // d.group_size) for i in range(d.batch_size)]
    batch = {
        "input_ids": np.concatenate([d.prompt_ids, d.tokens], 1),
        "attention_mask": np.concatenate([d.prompt_mask, d.mask], 1),
        "tokens": d.tokens,
        "mask": d.mask,
        "rewards": d.rewards,
        "correct": d.correct,
        "lengths": d.lengths,
        "truncated": d.truncated,
        "texts": np.asarray(d.texts, dtype=object),
        "answers": np.asarray(answers, dtype=object),
    }
    dump_rollouts(
        tmp_path,
        3,
        batch,
        prompt_len=d.prompt_ids.shape[1],
        group_size=d.group_size,
        old_logp=d.old_logp,
        entropy=d.entropy,
        adv=d.adv,
        adv_group=d.adv_group,
        new_logp=d.new_logp,
    )
    back = RolloutDump.load(dump_path(tmp_path, 3))
    np.testing.assert_array_equal(back.prompt_mask, d.prompt_mask)
    np.testing.assert_array_equal(back.new_logp, d.new_logp)
    assert back.texts == d.texts and back.answers == answers
    for k in DUMP_KEYS[:-2]:
        np.testing.assert_array_equal(getattr(back, k), getattr(d, k))


def test_bad_dumps_name_the_problem(tmp_path):
    d = make_dump(1)
    with pytest.raises(ValueError, match="entropy"):
        RolloutDump(**{**d.__dict__, "entropy": d.entropy[:, :3]})
    with pytest.raises(ValueError, match="group_size"):
        RolloutDump(**{**d.__dict__, "group_size": 5})
    with pytest.raises(ValueError, match="texts"):
        RolloutDump(**{**d.__dict__, "texts": ["x"]})
    with pytest.raises(ValueError, match="answers has 1 entries for 16 rows"):
        RolloutDump(**{**d.__dict__, "answers": ["x"]})
    path = tmp_path / "step_000001.npz"
    np.savez(path, tokens=d.tokens)
    with pytest.raises(ValueError, match="lacks the arrays"):
        RolloutDump.load(path)
    with pytest.raises(FileNotFoundError):
        RolloutDump.load(tmp_path / "nope.npz")


def test_load_run(tmp_path):
    wd = make_run(tmp_path / "run", steps=30, dump_every=10)
    with open(wd / "metrics.jsonl", "a") as f:  # a resumed run may rewrite a step: the last record wins
        f.write(json.dumps({"step": 5, "entropy": 123.0}) + "\n")
    run = load_run(wd)
    np.testing.assert_array_equal(run.steps, np.arange(1, 31))
    assert run.series("entropy")[4] == 123.0 and np.isnan(run.series("accuracy")[4])
    assert np.isnan(run.series("loss")).all() and np.isnan(run.series("nope")).all()
    assert list(run.dumps) == [10, 20, 30] and run.dump(20).step == 20
    assert run.config_value("rollout.temperature") == 1.0 and run.config_value("a.b", 3) == 3
    assert run.summary["heldout_accuracy_after"] == 0.6
    with pytest.raises(KeyError):
        run.dump(11)
    with pytest.raises(FileNotFoundError, match="metrics.jsonl"):
        load_run(tmp_path)
