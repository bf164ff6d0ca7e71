"""Every smoke preset of every config file runs from the command line as documented (``--config
FILE:smoke,...``; 1 RL step), in one subprocess so that compilations are shared (tests/cli/smoke_presets.py).

A preset whose run would be another's code is not run twice (see ``RUN_AS``): presets that differ from a run
one only in numbers the same code takes (``NUMERIC``: the clip range, the constant Pos-Adv weight) or that
run inside a combination of entropy_study settings that do not clash (``COMBINATIONS``: each sets every field
its presets set, to the same value, and each preset's own config passes the trainer's checks). Each preset
keeps its own test, which checks the run that covers it."""

import json
import pathlib

import pytest

from configs import entropy_study
from jaxrlvr import cli_support as cli
from tests.cli.docs_commands import commands, option
from tests.cli.test_readme import _needs_external_files

ROOT = pathlib.Path(__file__).resolve().parents[2]
# every setting of configs/entropy_study.py (a new one is tested without editing this file); values for those
# that take one
VALUES = {"offpolicy": ("1", "2", "4"), "pos_adv": ("stage", "epoch", "entropy", "0.5")}
ENTROPY_SETTINGS = [
    f"{s}={v}" if s in VALUES else s for s in sorted(entropy_study.SETTINGS) for v in VALUES.get(s, ("",))
]
STUDY = "configs/entropy_study.py:smoke"
SPECS = (
    ["configs/demo.py:smoke", "configs/dapo_baseline.py:smoke", "configs/ppl_shaping.py:smoke"]
    + ["configs/ppl_shaping.py:smoke,inverse"]
    + [f"configs/position_shaping.py:smoke{p}" for p in ("", ",paper", ",centred", ",reverse,gamma_ablation", ",auto")]
    + [f"{STUDY},{p}" for p in ENTROPY_SETTINGS]
    + [f"{STUDY},pos_adv=entropy,offpolicy=2", f"{STUDY},clip_higher,offpolicy=4"]
    + ["configs/llama_revisiting.py:smoke"]  # the tiny Llama architecture (llama3 rope scaling, no biases)
)
# Runs of entropy_study settings together, one of each behaviour (configs/entropy_study.py ``BEHAVIOURS``),
# each with several mini-batches (off-policy updates, where the clip and the ratio act): one RL step's
# compilations cost the same for one setting or four (ours: 3 runs instead of 10).
# clip_higher (the clip range's code, the other clip presets' run) and offpolicy=1 (on-policy updates only)
# run alone.
COMBINATIONS = [
    f"{STUDY},clip_cov,non_negative,pos_adv=stage,entropy_adv",
    f"{STUDY},kl_cov,entropy_adaptive,rand_pos_clip,pos_adv=epoch",
    f"{STUDY},clip_free,non_positive,entropy_reg",
]
SPECS += [c for c in COMBINATIONS if c not in SPECS]
# Config fields that reach the RL step as numbers in the same code (the clip range; the constant Pos-Adv
# weight, the step state's lambda): presets that differ only in these share one run.
NUMERIC = ("algo.clip_low", "algo.clip_high", "algo.pos_adv_lambda")
# Presets run inside a combination that adds a setting of another behaviour (hand-listed), or elsewhere:
# adaptive_entropy is ``validated_run``'s preset (from the command line, 2 steps, validation on); demo's smoke
# preset is README.md's command ``python scripts/train.py --config configs/demo.py:smoke --workdir ...``, which
# tests/cli/test_readme.py runs as printed (scripts/train.py, 2 steps, SFT and held-out accuracy included).
ELSEWHERE = ("validated_run", "README")
IN_COMBINATION = {
    f"{STUDY},pos_adv=entropy": f"{STUDY},pos_adv=entropy,offpolicy=2",
    f"{STUDY},offpolicy=2": f"{STUDY},pos_adv=entropy,offpolicy=2",
    f"{STUDY},adaptive_entropy": "validated_run",
    "configs/demo.py:smoke": "README",
} | {f"{STUDY},{p}": combo for combo in COMBINATIONS for p in combo.removeprefix(STUDY + ",").split(",")}
IN_COMBINATION[f"{STUDY},pos_adv=0.5"] = COMBINATIONS[2]  # non_positive's code (a constant Pos-Adv weight)


def _flat(d, prefix=""):
    out = {}
    for k, v in d.items():
        out.update(_flat(v, f"{prefix}{k}.") if isinstance(v, dict) else {f"{prefix}{k}": v})
    return out


def _code_key(spec):
    """The spec's config without the ``NUMERIC`` fields (equal keys: the same code runs)."""
    fields = _flat(cli.load_config_file(str(ROOT / spec)).to_dict())
    return spec.partition(":")[0], json.dumps({k: v for k, v in fields.items() if k not in NUMERIC}, sort_keys=True)


def _run_as():
    """spec -> the spec whose run covers it (itself for the first of each code)."""
    first, out = {}, {}
    for spec in SPECS:
        if spec in IN_COMBINATION:
            out[spec] = IN_COMBINATION[spec]
        else:
            out[spec] = first.setdefault(_code_key(spec), spec)
    return out


RUN_AS = _run_as()
RUN = [s for s in SPECS if RUN_AS[s] == s]


@pytest.fixture(scope="module")
def results(run_cli, tmp_path_factory):
    """{spec: "ok" | "error: ..."} of the presets in ``RUN``, in one subprocess (one process shares its
    compilations; two side by side cost as much CPU as the 10 runs saved: 581 vs 575 CPU-s, measured)."""
    out = tmp_path_factory.mktemp("presets")
    proc = run_cli("tests/cli/smoke_presets.py", out, *RUN, timeout=3600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads((out / "results.json").read_text())


def test_presets_not_run_are_covered_by_a_run_of_the_same_code():
    for spec, ran in RUN_AS.items():
        if ran == spec or spec in IN_COMBINATION:
            continue
        a, b = (_flat(cli.load_config_file(str(ROOT / x)).to_dict()) for x in (spec, ran))
        assert {k for k in a if a[k] != b[k]} <= set(NUMERIC), (spec, ran)
    assert len(RUN) < len(SPECS)  # e.g. clip_lower / clip_tighter / clip_standard run as clip_higher


def test_presets_run_in_a_combination_are_checked_and_set_as_in_it():
    """Each preset run only inside a combination: its own config passes the trainer's checks (no compile),
    and the combination sets every field that the preset changes from entropy_study's smoke, as it does
    (the ``NUMERIC`` ones to a value of its own)."""
    from jaxrlvr.train.config import validate

    base = _flat(cli.load_config_file(str(ROOT / STUDY)).to_dict())
    for spec, ran in IN_COMBINATION.items():
        c = cli.load_config_file(str(ROOT / spec))
        validate(c)
        if ran in ELSEWHERE:
            continue
        own, combo = _flat(c.to_dict()), _flat(cli.load_config_file(str(ROOT / ran)).to_dict())
        assert RUN_AS[ran] == ran, (spec, ran)  # the combination itself runs
        changed = [k for k in own if own[k] != base[k]]
        assert changed and all(combo[k] == own[k] or (k in NUMERIC and combo[k] != base[k]) for k in changed), spec


@pytest.mark.slow
@pytest.mark.parametrize("spec", SPECS)
def test_smoke_preset_runs_from_the_command_line(request, spec):
    ran = RUN_AS[spec]
    if ran == "validated_run":
        assert request.getfixturevalue("validated_run")[1].returncode == 0
    elif ran == "README":  # run as printed by tests/cli/test_readme.py (its train.py commands without files)
        argv = next(a for a in commands("README.md") if a[0] == "scripts/train.py" and option(a, "config") == spec)
        assert argv[1:] == ["--config", spec, "--workdir", option(argv, "workdir")], argv  # as the preset is
        assert not _needs_external_files(argv, {})  # so test_readme runs it
    else:
        assert request.getfixturevalue("results")[ran] == "ok", (spec, ran)


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
