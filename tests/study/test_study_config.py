"""configs/study.py + configs/study_claims.py: variants are the testbed with the paper presets' algorithm
settings (derived, not re-typed); the claims quote the papers verbatim; the testbed task's teacher."""

import os
import pathlib
import random
import re

import pytest

from configs import entropy_study, position_shaping, ppl_shaping, study, study_claims
from jaxrlvr.analysis.study_stats import EXPECTS
from jaxrlvr.data import testbed
from jaxrlvr.train.config import validate

# the paper texts: $JAXRLVR_PAPERS or ../shared/papers beside the checkout
PAPERS = pathlib.Path(os.environ.get("JAXRLVR_PAPERS") or pathlib.Path(__file__).resolve().parents[2].parent / "shared"
                      / "papers")  # fmt: skip
PAPER_FILES = {"decomposing": "decomposing_entropy_performance_exchange_2508.02260.md",
               "revisiting": "revisiting_entropy_in_rlvr_2511.05993.md"}  # fmt: skip


@pytest.mark.parametrize("name", list(study.STUDIES))
def test_every_variant_validates_and_claims_name_variants(name):
    for v in study.STUDIES[name]:
        for smoke in (False, True):
            validate(study.variant_config(name, v, smoke=smoke))
    claims = study.get_config(name).claims
    for c in claims:
        assert {c["a"], c["b"]} <= set(study.STUDIES[name]) and c["expect"] in EXPECTS
        assert c["quote"] and c["section"] and (c.get("margin") or c.get("margin_relative"))
    used = {v for c in claims for v in (c["a"], c["b"])}
    assert used == set(study.STUDIES[name])  # the grid is trimmed to the claims
    assert len(study_claims.CLAIMS) >= 15


def test_quotes_are_verbatim_in_the_papers():
    if not PAPERS.is_dir():
        pytest.skip("../shared/papers is not on this machine")
    norm = lambda t: re.sub(r"\s+", " ", t)  # noqa: E731
    texts = {k: norm((PAPERS / f).read_text()) for k, f in PAPER_FILES.items()}
    missing = [c["quote"] for c in study_claims.CLAIMS if norm(c["quote"]) not in texts[c["paper"]]]
    assert not missing


def test_algorithm_settings_come_from_the_paper_presets():
    c = study.get_config("variant=revisiting/clip_higher")
    assert c.algo.to_dict() == entropy_study.get_config("clip_higher").algo.to_dict()
    assert c.data.synthetic_task == "testbed" and c.rollout.max_new_tokens >= 128
    assert c.train.ppo_epochs == 2 * entropy_study.get_config("clip_higher").train.ppo_epochs  # TESTBED_PASSES
    c = study.get_config("variant=decomposing/ppl_inverse")
    assert c.train.ppo_epochs == ppl_shaping.get_config("inverse").train.ppo_epochs
    assert c.algo.to_dict() == ppl_shaping.get_config("inverse").algo.to_dict()
    paper = position_shaping.get_config(None)
    c = study.get_config("variant=decomposing/position_late,steps=50")
    assert c.algo.to_dict() == paper.algo.to_dict()
    f = 50 / paper.train.num_steps  # the window scales with the number of steps
    assert c.train.position_window == (round(paper.train.position_window[0] * f),
                                       round(paper.train.position_window[1] * f))  # fmt: skip
    g1 = study.get_config("variant=decomposing/position_early_g1")
    assert g1.algo.position_gamma == 1.0 and g1.algo.position_direction == -1.0 and g1.train.position_window == (0, -1)
    # the paper's 0.2-nat targets scale with the initial entropy: 0.2 / 0.3657 of the testbed's
    target = 0.2 / 0.3657 * study.TESTBED_INITIAL_ENTROPY
    assert study.get_config("variant=revisiting/entropy_adaptive").algo.entropy_target == pytest.approx(target, 1e-3)
    assert study.get_config("variant=revisiting/pos_adv_entropy").algo.pos_adv_target == pytest.approx(target, 1e-3)
    assert study.get_config("variant=revisiting/offpolicy_1").train.mini_batch_prompts == 16  # N = 1
    assert study.get_config("variant=revisiting/baseline").train.mini_batch_prompts == 4  # N = 4
    assert study.get_config("variant=revisiting/data_subset").data.synthetic_train == 600


def test_epoch_schedule_keeps_the_paper_runs_epoch_count():
    c = study.get_config("variant=revisiting/pos_adv_epoch")
    assert c.train.schedule_epochs == 8 and c.algo.pos_adv_mode == "epoch"


def test_config_errors_name_the_value():
    with pytest.raises(ValueError, match="nope"):
        study.get_config("variant=revisiting/nope")
    with pytest.raises(ValueError, match="unknown preset"):
        study.get_config("bogus")


def test_testbed_teacher_styles():
    cfg = testbed.TestbedConfig(step_error=0.0, answer_error=0.0, check_step_error=0.0, guess_correct=1.0)
    train, test = testbed.disjoint_splits(300, 50, seed=3, cfg=cfg)
    assert not {tuple(r["operands"]) for r in train} & {tuple(r["operands"]) for r in test}
    rng = random.Random(0)
    lengths = {}
    for style in ("guess", "steps", "check"):
        for r in train[:100]:
            text = testbed.teacher_solution(r, rng, cfg, style=style)
            assert text.endswith(f"\\boxed{{{r['answer']}}}"), text  # error-free teacher: always right
            lengths.setdefault(style, []).append(len(text))
    mean = {k: sum(v) / len(v) for k, v in lengths.items()}
    assert mean["guess"] < 15 < mean["steps"] < mean["check"] < 80  # short, long, longest (< 96: no penalty)
    with pytest.raises(ValueError, match="styles"):
        testbed.TestbedConfig(styles=(("essay", 1.0),))
    # the wording goes with reliability: the "=" form scales the column error, the conclusion the near miss
    sure = dict(styles=(("steps", 1.0),), step_error=1.0, answer_error=1.0)
    exact = testbed.TestbedConfig(**sure, equals=((" = ", 0.0),), conclusions=(("so ", 0.0),))
    sloppy = testbed.TestbedConfig(**sure, equals=(("=", 1.0),), conclusions=(("", 0.0),))
    for r in train[:20]:
        text = testbed.teacher_solution(r, rng, exact)
        assert text.endswith(f"so \\boxed{{{r['answer']}}}") and " = " in text, text
        assert not testbed.teacher_solution(r, rng, sloppy).endswith(f"{{{r['answer']}}}")
    with pytest.raises(ValueError, match="multipliers"):
        testbed.TestbedConfig(equals=(("=", -1.0),))


def test_scaled_entropy_targets_come_from_the_seeds_sft_entropy(tmp_path):
    """scripts/study.py passes ENTROPY_FRACTION x the seed's initial entropy (its SFT run's RL step) to the
    variants whose target the paper set against its model's initial entropy, when the run starts."""
    import importlib.util
    import json

    path = pathlib.Path(__file__).parents[2] / "scripts" / "study.py"
    spec = importlib.util.spec_from_file_location("study_script", path)
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    s = study.get_config("revisiting")
    want = {"entropy_adaptive": "algo.entropy_target", "pos_adv_entropy": "algo.pos_adv_target"}
    assert s.scaled_targets.to_dict() == want
    (tmp_path / "metrics.jsonl").write_text(json.dumps({"step": 1, "entropy": 0.5}) + "\n")
    build = script._with_target(["python", "train.py", "--workdir=x"], "algo.pos_adv_target", s.entropy_fraction,
                                tmp_path)  # fmt: skip
    assert build() == ["python", "train.py", f"--config.algo.pos_adv_target={0.5 * 0.2 / 0.3657:.6g}", "--workdir=x"]


def test_the_registered_claims_are_older_than_the_runs():
    """docs/study/manifest.json: the claims file at the registered commit hashes to claims_sha256, and that
    commit is older than the study's first run (issue 27, "registered before the runs")."""
    import datetime
    import hashlib
    import json
    import subprocess

    root = pathlib.Path(__file__).resolve().parents[2]
    path = root / "docs" / "study" / "manifest.json"
    if not path.is_file():
        pytest.skip("no registered study")
    m = json.loads(path.read_text())
    try:
        text = subprocess.run(["git", "show", f"{m['git_commit']}:{m['claims_file']}"], cwd=root, check=True,
                              capture_output=True).stdout  # fmt: skip
        when = subprocess.run(["git", "log", "-1", "--format=%cI", m["git_commit"]], cwd=root, check=True,
                              capture_output=True, text=True).stdout.strip()  # fmt: skip
    except (subprocess.CalledProcessError, FileNotFoundError):
        pytest.skip("no git history here")
    assert hashlib.sha256(text).hexdigest() == m["claims_sha256"]
    assert datetime.datetime.fromisoformat(when) < datetime.datetime.fromisoformat(m["started_at"])
