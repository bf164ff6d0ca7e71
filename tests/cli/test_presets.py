"""Every smoke preset of every config file runs from the command line as documented (``--config
FILE:smoke,...``; 1 RL step), in one subprocess so that compilations are shared (tests/cli/smoke_presets.py)."""

import json

import pytest

from configs import entropy_study

# every setting of configs/entropy_study.py (a new one is tested without editing this file); values for those
# that take one
VALUES = {"offpolicy": ("1", "2", "4"), "pos_adv": ("stage", "epoch", "entropy", "0.5")}
ENTROPY_SETTINGS = [
    f"{s}={v}" if s in VALUES else s for s in sorted(entropy_study.SETTINGS) for v in VALUES.get(s, ("",))
]
SPECS = (
    ["configs/demo.py:smoke", "configs/dapo_baseline.py:smoke", "configs/ppl_shaping.py:smoke"]
    + ["configs/ppl_shaping.py:smoke,inverse"]
    + [f"configs/position_shaping.py:smoke{p}" for p in ("", ",paper", ",centred", ",reverse,gamma_ablation", ",auto")]
    + [f"configs/entropy_study.py:smoke,{p}" for p in ENTROPY_SETTINGS]
    + [
        "configs/entropy_study.py:smoke,pos_adv=entropy,offpolicy=2",
        "configs/entropy_study.py:smoke,clip_higher,offpolicy=4",
    ]
    + ["configs/llama_revisiting.py:smoke"]  # the tiny Llama architecture (llama3 rope scaling, no biases)
)


@pytest.fixture(scope="module")
def results(run_cli, tmp_path_factory):
    out = tmp_path_factory.mktemp("presets")
    proc = run_cli("tests/cli/smoke_presets.py", out, *SPECS, timeout=1800)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads((out / "results.json").read_text())


@pytest.mark.slow
@pytest.mark.parametrize("spec", SPECS)
def test_smoke_preset_runs_from_the_command_line(results, spec):
    assert results[spec] == "ok"


# ------------------------------------------------------------------------ clashes and Revisiting's protocol
def test_every_declared_clash_is_refused_naming_both():
    import itertools

    for a, b in itertools.combinations(sorted(entropy_study.BEHAVIOURS), 2):
        sets_a, out_a = entropy_study.BEHAVIOURS[a]
        sets_b, out_b = entropy_study.BEHAVIOURS[b]
        if (sets_a & sets_b) or (out_a & sets_b) or (out_b & sets_a):
            arg = ",".join(f"{n}={VALUES[n][0]}" if n in VALUES else n for n in (a, b))
            with pytest.raises(ValueError, match="conflict") as e:
                entropy_study.get_config(arg)
            assert f"'{a}" in str(e.value) and f"'{b}" in str(e.value), str(e.value)


@pytest.mark.parametrize("combo", ["non_negative,non_positive", "clip_free,clip_higher", "kl_cov,clip_tighter"])
def test_clashing_presets_exit_2_with_one_line_naming_both(run_cli, tmp_path, combo):
    proc = run_cli("scripts/train.py", "--config", f"configs/entropy_study.py:smoke,{combo}", "--workdir", tmp_path)
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1 and lines[0].startswith("error: "), proc.stderr[-2000:]
    assert all(f"'{name}'" in lines[0] for name in combo.split(",")), lines[0]


@pytest.fixture(scope="module")
def validated_run(run_cli, tmp_path_factory):
    """entropy_study's smoke run with App. B's validation on (AIME 2025 every step, 3 problems x 2 samples)
    and the adaptive_entropy preset (threshold measured on one rollout batch before RL)."""
    workdir = tmp_path_factory.mktemp("validated") / "run"
    proc = run_cli(
        "scripts/train.py",
        "--config",
        "configs/entropy_study.py:smoke,adaptive_entropy",
        f"--workdir={workdir}",
        "--config.eval.every=1",
        "--config.eval.max_problems=3",
        "--config.eval.max_new_tokens=8",
        "--config.sft.steps=0",
        "--config.log.tensorboard=False",
        "--config.log.plots=False",
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return workdir, proc


def test_validated_run_keeps_its_best_and_its_entropy_threshold(validated_run):
    workdir, proc = validated_run
    best = json.loads((workdir / "best_validated" / "validation.json").read_text())
    assert best["benchmark"] == "aime25" and best["step"] in (1, 2)
    assert (workdir / "best_validated" / "model_config.json").is_file()
    summary = json.loads((workdir / "summary.json").read_text())
    assert summary["entropy_threshold"] > 0 and summary["entropy_threshold_prompts"] == 4
    assert "adaptive entropy threshold" in proc.stdout + proc.stderr


@pytest.mark.parametrize("scores", ["evaluate", "recorded"])
def test_revisiting_evaluation_selects_by_aime25_and_names_the_checkpoint(validated_run, run_cli, tmp_path, scores):
    workdir, _ = validated_run
    out = tmp_path / "eval"
    proc = run_cli(
        "scripts/evaluate.py",
        "--config",
        "configs/eval.py:revisiting,smoke",
        f"--config.ckpt={workdir}",
        f"--config.out_dir={out}",
        f"--config.select_scores={scores}",
        "--config.max_new_tokens=8",
        "--config.max_problems=1",
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    sel = json.loads((out / "selection.json").read_text())
    assert sel["validation"] == "aime25" and sel["scores_from"] == scores and str(sel["step"]) in sel["scores"]
    assert sel["checkpoint"].startswith(str(workdir)) and sel["validation_score"] == sel["scores"][str(sel["step"])]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["selection"] == sel and [s["benchmark"] for s in summary["summaries"]] == ["aime24"]
    assert summary["config"]["num_samples"] == 2 and summary["config"]["temperature"] == 1.0  # smoke's N
    assert (out / "validation" / "step_000001" / "summary.json").is_file() == (scores == "evaluate")


def test_revisiting_selection_on_a_single_checkpoint_is_a_user_error(run_cli, tmp_path):
    proc = run_cli("scripts/evaluate.py", "--config", "configs/eval.py:revisiting", f"--config.ckpt={tmp_path}")
    assert proc.returncode == 2 and "select=none" in proc.stderr and "Traceback" not in proc.stderr, proc.stderr


def test_livecodebench_from_a_local_release_file_on_the_command_line(validated_run, run_cli, tmp_path):
    from tests.eval_ood.test_livecodebench import write_tiny_release

    workdir, _ = validated_run
    common = ["scripts/evaluate.py", "--config", "configs/eval.py:smoke", f"--config.ckpt={workdir}"]
    common += ["--config.benchmarks=livecodebench", "--config.max_new_tokens=8"]
    proc = run_cli(*common, f"--config.livecodebench_path={tmp_path / 'none.jsonl'}")
    assert proc.returncode == 2 and "livecodebench_path" in proc.stderr and "Traceback" not in proc.stderr
    release = write_tiny_release(tmp_path / "test6.jsonl")
    proc = run_cli(*common, f"--config.livecodebench_path={release}", f"--config.out_dir={tmp_path / 'out'}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    (summary,) = json.loads((tmp_path / "out" / "summary.json").read_text())["summaries"]
    assert summary["benchmark"] == "livecodebench" and summary["num_problems"] == 2


def test_analysis_report_has_revisiting_prompt_entropy(validated_run, run_cli, tmp_path):
    workdir, _ = validated_run
    proc = run_cli("scripts/analyze.py", "--workdir", workdir, "--out", tmp_path / "an")
    assert proc.returncode == 0, proc.stderr[-3000:]
    pe = json.loads((tmp_path / "an" / "analysis.json").read_text())["prompt_entropy"]
    assert pe["in_domain"] == "aime24" and pe["out_of_domain"] == "ifeval", pe
    assert pe["ratio"]["aime24"][str(pe["reference_step"])] == 1.0 and len(pe["ratio"]["ifeval"]) >= 2
    corr = pe["correlation"]["aime25"]  # the run's periodic AIME 2025 validation, 3 problems x 2 samples
    assert all(c["n"] == 3 for c in corr.values()) and corr
    assert "Prompt entropy (Revisiting App. C.2 / C.3)" in (tmp_path / "an" / "report.html").read_text()
