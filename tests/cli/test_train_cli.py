"""scripts/train.py as a user runs it: a smoke-sized run on a (tiny, random) Hugging Face checkpoint and a
data file (the command of docs/training.md), what it prints, what it records, extending it, exporting it,
evaluating it, and the one-line user errors."""

import json

import pytest

from tests.cli.docs_commands import commands, option, replace_option


@pytest.fixture(scope="module")
def hf_run(run_cli, tiny_hf, math_file, tmp_path_factory):
    """docs/training.md's small run on a real checkpoint, with the tiny checkpoint and data file (1 step; a
    prompt limit that the 2 long rows exceed)."""
    data, _ = math_file
    workdir = tmp_path_factory.mktemp("hf_run") / "run"
    (doc,) = [
        a
        for a in commands("docs/training.md")
        if option(a, "config.model.hf_path") and (option(a, "config") or "").endswith(":smoke")
    ]
    args = replace_option(doc, "config.model.hf_path", str(tiny_hf))
    args = replace_option(args, "config.data.path", str(data))
    args = replace_option(args, "workdir", str(workdir))
    args += ["--config.rollout.max_prompt_len=256", "--config.train.num_steps=1"]
    assert option(args, "config").endswith(":smoke") and option(args, "config.data.path") == str(data)
    proc = run_cli(*args)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return workdir, args, proc


def test_smoke_run_on_a_real_checkpoint_keeps_the_users_model_tokenizer_and_data(hf_run, tiny_hf, math_file):
    workdir, _, proc = hf_run
    saved = json.loads((workdir / "config.json").read_text())
    hf_cfg = json.loads((tiny_hf / "config.json").read_text())
    assert saved["data"]["source"] == "file" and saved["sft"]["steps"] == 0
    assert saved["tokenizer"] == "" and saved["model"]["hf_path"] == str(tiny_hf)
    assert saved["model"]["hidden_size"] == 0  # the preset's size fields are not what ran
    assert saved["model_used"]["hidden_size"] == hf_cfg["hidden_size"]
    assert saved["model_used"]["vocab_size"] == hf_cfg["vocab_size"]
    summary = json.loads((workdir / "summary.json").read_text())
    assert summary["prompts_filtered_overlong"] == math_file[1] and summary["prompts_kept"] == 12


def test_progress_lines_when_the_bar_is_off(hf_run, tiny_hf):
    out = hf_run[2].stdout
    assert f"loading weights from {tiny_hf}" in out
    assert "data: 12 training prompts" in out and "dropped 2 longer than rollout.max_prompt_len=256" in out
    assert "compiling" in out and "step 1/1 " in out and "first step" in out
    assert "INFO" not in hf_run[2].stderr and "Unable to initialize backend" not in hf_run[2].stderr


def test_a_finished_run_is_extended_and_other_changes_stay_errors(hf_run, run_cli):
    workdir, args, _ = hf_run
    changed = [a for a in args if a != "--config.train.num_steps=1"]
    proc = run_cli(*changed, "--config.train.num_steps=2", "--config.checkpoint.every=5")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "resumed from step 1" in proc.stdout and "step 2/2" in proc.stdout
    assert [json.loads(x)["step"] for x in (workdir / "metrics.jsonl").read_text().splitlines()] == [1, 2]
    proc = run_cli(*changed, "--config.train.num_steps=3", "--config.algo.clip_high=0.3")
    assert proc.returncode == 2 and "algo.clip_high: 0.28 -> 0.3" in proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize("step", [None, 1])
def test_flax_to_hf_exports_a_run(hf_run, run_cli, tmp_path, tiny_hf, step):
    """Export from a workdir / a step folder; loads in transformers with the checkpoint's bos / eos ids."""
    transformers = pytest.importorskip("transformers")
    workdir = hf_run[0]
    ckpt = workdir if step is None else workdir / "checkpoints" / str(step)
    out = tmp_path / "exported"
    proc = run_cli("-m", "conversion.flax_to_hf", "--ckpt", ckpt, "--out", out, "--tokenizer-dir", tiny_hf)
    assert proc.returncode == 0, proc.stderr[-2000:]
    model = transformers.AutoModelForCausalLM.from_pretrained(out)
    tok = transformers.AutoTokenizer.from_pretrained(out)
    cfg, src = json.loads((out / "config.json").read_text()), json.loads((tiny_hf / "config.json").read_text())
    assert model.config.hidden_size == 64
    assert cfg["eos_token_id"] == src["eos_token_id"] == tok.eos_token_id and cfg["bos_token_id"] == src["bos_token_id"]


def test_evaluate_takes_the_tokenizer_from_the_run(hf_run, run_cli, tmp_path):
    from jaxrlvr.runs_lock import WorkdirLock

    workdir = hf_run[0]
    args = ["scripts/evaluate.py", "--config", "configs/eval.py:smoke", f"--config.ckpt={workdir}"]
    args += ["--config.max_new_tokens=8", "--config.max_problems=1"]
    step = max(int(p.name) for p in (workdir / "checkpoints").iterdir() if p.name.isdigit())
    out = workdir / "eval" / f"step_{step:06d}_aime24_n2"  # the default: inside the evaluated run
    with WorkdirLock(out, what="evaluation"):  # another evaluation writing there: refused, one line
        busy = run_cli(*args)
    assert busy.returncode == 2 and busy.stderr.count("\n") == 1 and "in use by evaluation" in busy.stderr
    proc = run_cli(*args)
    assert proc.returncode == 0, proc.stderr[-3000:]
    err = proc.stderr
    assert "INFO" not in err and "Unable to initialize backend" not in err, err
    assert "%" in proc.stdout and "in percent" in proc.stdout
    summary = json.loads((out / "summary.json").read_text())
    prov = summary["provenance"]
    assert prov["checkpoint"] == str(workdir / "checkpoints" / str(step)) and prov["step"] == step
    assert prov["run"] == str(workdir) and summary["config"]["num_samples"] == 2
    assert summary["config"]["benchmarks"] == ["aime24"] and not (out / ".jaxrlvr.lock").exists()


@pytest.mark.parametrize(
    "args,message",
    [
        (["--config", "configs/demo.py:smoke", "--config.rollout.temprature=1"], "did you mean rollout.temperature?"),
        (["--config", "configs/demo.py:smok"], "unknown preset 'smok'"),
        (["--config", "configs/demo.py:smoke", "--config.data.path=/no/such.jsonl"], "data.path='/no/such.jsonl'"),
        (["--config", "configs/nope.py"], "config file 'configs/nope.py' not found"),
    ],
)
def test_user_errors_are_one_line_with_exit_status_2(run_cli, tmp_path, args, message):
    proc = run_cli("scripts/train.py", *args, "--workdir", tmp_path / "w")
    assert proc.returncode == 2 and message in proc.stderr, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1


def test_a_workdir_that_is_a_file_is_a_user_error(run_cli, tmp_path):
    (tmp_path / "f").write_text("")
    proc = run_cli("scripts/train.py", "--config", "configs/demo.py:smoke", "--workdir", tmp_path / "f")
    assert proc.returncode == 2 and "is a file" in proc.stderr and "Traceback" not in proc.stderr
