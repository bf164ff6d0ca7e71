"""HumanEval, GPQA and IFEval in the evaluation runner, end to end through the real sampler.

One tiny random character model serves every test; all prompts fall in the sampler's 512-token bucket and
every run uses 16 new tokens, so the compiled prefill/decode functions are shared (HumanEval and IFEval
share one shape; GPQA, one prompt per sample, another). GPQA rows are made up here: no GPQA question is
part of the project.
"""

import dataclasses
import importlib.util
import json
import os
import pathlib
import subprocess
import sys

import jax
import pytest

from jaxrlvr.data import CharTokenizer
from jaxrlvr.eval import EvalConfig, choice, code, evaluate, format_summary_table, prepare_benchmarks, run_from_config
from jaxrlvr.eval import instructions as ifeval
from jaxrlvr.eval.runner import _sample_units

ROOT = pathlib.Path(__file__).resolve().parents[2]
TOK = CharTokenizer()
N = 2
MAX_NEW = 16
HUMANEVAL_IDS = ("HumanEval/53", "HumanEval/55")  # short prompts (306 and 321 characters as chat)
IFEVAL_KEYS = (1000, 1012)  # 323 and 371 characters as chat; 3 and 2 instructions
GPQA_ROWS = [
    {
        "id": f"made-up-{i}",
        "question": f"Which of these made-up compounds is the stable one in test {i}?",
        "choices": [f"compound {i}-x", f"compound {i}-y", f"compound {i}-z", f"compound {i}-w"],
        "answer_index": i % 4,
    }
    for i in range(2)
]
LONG_GPQA_ROW = dict(GPQA_ROWS[0], id="made-up-long", question="A very long made-up question? " * 40)

COLUMNS = [
    "benchmark",
    "problems",
    "N",
    "Acc@N",
    "Maj@N",
    "Pass@N",
    "mean length",
    "truncated",
    "no answer",
    "format viol.",
    "lang. mixing",
    "repetition",
]


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """(model config, params, HF checkpoint folder, data folder, GPQA file)."""
    pytest.importorskip("jaxrlvr.sampling")
    pytest.importorskip("lm_eval.tasks.ifeval.instructions_registry", reason="IFEval scoring needs lm-eval[ifeval]")
    from jaxrlvr.models import ModelConfig, init_params, save_hf_checkpoint

    cfg = ModelConfig(
        vocab_size=TOK.vocab_size,
        hidden_size=32,
        intermediate_size=64,
        num_layers=1,
        num_heads=2,
        num_kv_heads=1,
        head_dim=16,
        max_position_embeddings=1024,
    )
    params = init_params(cfg, jax.random.PRNGKey(0))
    root = tmp_path_factory.mktemp("ood_runner")
    hf_dir = save_hf_checkpoint(cfg, params, root / "hf")
    data = root / "data"
    data.mkdir()
    he = [p for p in code.load_humaneval() if p["task_id"] in HUMANEVAL_IDS]
    (data / "humaneval.jsonl").write_text("".join(json.dumps(p) + "\n" for p in he))
    rows = [r for r in ifeval.load_ifeval() if r["key"] in IFEVAL_KEYS]
    (data / "ifeval.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    gpqa = root / "gpqa_made_up.jsonl"
    gpqa.write_text("".join(json.dumps(r) + "\n" for r in GPQA_ROWS))
    return cfg, params, hf_dir, data, gpqa


def _config_module():
    spec = importlib.util.spec_from_file_location("eval_config", ROOT / "configs" / "eval.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _eval_config(setup, tmp_path, **kw):
    _, _, _, data, gpqa = setup
    args = dict(
        benchmarks="humaneval,gpqa,ifeval",
        num_samples=N,
        max_new_tokens=MAX_NEW,
        prompt_batch_size=4,
        data_dir=str(data),
        gpqa_path=str(gpqa),
        code_workers=2,
        out_dir=str(tmp_path / "out"),
    )
    args.update(kw)
    return EvalConfig(**args)


def _table_header(md: str) -> list[str]:
    first = next(line for line in md.splitlines() if line.startswith("|"))  # after the units line
    return [c.strip() for c in first.strip("|").split("|")]


def _row(md: str, name: str) -> dict[str, str]:
    for line in md.splitlines():
        cells = [c.strip() for c in line.strip("|").split("|")]
        if cells[0] == name and len(cells) == len(COLUMNS):
            return dict(zip(COLUMNS, cells, strict=True))
    raise AssertionError(f"no summary row for {name}")


def test_three_benchmarks_end_to_end_through_the_real_sampler(setup, tmp_path):
    from jaxrlvr.sampling import generate

    cfg, params, _, _, _ = setup
    calls = []

    def recording_sampler(model_config, p, prompts, **kw):  # the real sampler; records what it was given
        calls.append(([TOK.decode(q, skip_special_tokens=False) for q in prompts], kw["num_samples"]))
        return generate(model_config, p, prompts, **kw)

    config = _eval_config(setup, tmp_path)
    results = evaluate(cfg, params, TOK, config, sampler=recording_sampler, log=None)
    assert list(results) == ["humaneval", "gpqa", "ifeval"]

    # HumanEval and IFEval: one prompt per problem, N rows each; GPQA: each sample's own shuffled prompt
    (he_prompts, he_g), (gpqa_prompts, gpqa_g), (if_prompts, if_g) = calls
    assert he_g == if_g == N and len(he_prompts) == len(if_prompts) == 2
    assert "def " in he_prompts[0] and he_prompts[0].startswith("<|im_start|>user\n")
    recs = results["gpqa"].records
    assert len(gpqa_prompts) * gpqa_g == 2 * N
    for rec in recs:
        row = GPQA_ROWS[int(rec["problem_id"][-1])]
        assert rec["gold"] == row["answer_index"]
        assert rec["answer_letter"] == "ABCD"[rec["option_order"].index(row["answer_index"])]
        shown = choice.format_question(row, sample=rec["sample_index"], seed=config.seed).text
        assert any(shown in p for p in gpqa_prompts)  # the sample's own option order reached the sampler
        assert rec["vote_group"] == (None if rec["picked_option"] is None else str(rec["picked_option"]))

    for res in results.values():
        assert len(res.records) == 2 * N
        s = res.summary
        assert s["num_problems"] == 2 and s["num_samples"] == N and set(s["pass_at_k"]) == {"1", "2"}
        assert all(0 <= r["length"] <= MAX_NEW for r in res.records)
    assert results["humaneval"].summary["maj_at_n"] is None and results["ifeval"].summary["maj_at_n"] is None
    assert 0.0 <= results["gpqa"].summary["maj_at_n"] <= 1.0
    assert {r["exec_status"] for r in results["humaneval"].records} <= {"passed", "failed", "timeout", "error"}
    he_recs = results["humaneval"].records
    assert [r["problem_id"] for r in he_recs] == [i for i in HUMANEVAL_IDS for _ in range(N)]
    if_rec = results["ifeval"].records[0]
    assert len(if_rec["strict"]) == len(if_rec["loose"]) == len(if_rec["gold"]) == 3

    # tables: the summary columns, Maj@N n/a where it does not apply, Pass@k, IFEval's own table
    out = tmp_path / "out"
    md = (out / "summary.md").read_text()
    assert _table_header(md) == COLUMNS
    assert _row(md, "humaneval")["Maj@N"] == "n/a" and _row(md, "ifeval")["Maj@N"] == "n/a"
    assert _row(md, "gpqa")["Maj@N"] != "n/a"
    assert "| benchmark | Pass@1 | Pass@2 |" in md
    extra = results["ifeval"].summary["extra_tables"]["IFEval (strict / loose, over all samples)"]
    assert set(extra) == {
        "prompt_level_strict_acc",
        "inst_level_strict_acc",
        "prompt_level_loose_acc",
        "inst_level_loose_acc",
        "responses",
        "instructions",
        "sentence_tokenizer",
    }
    assert extra["responses"] == 2 * N and extra["instructions"] == N * 5
    assert extra["prompt_level_strict_acc"] == results["ifeval"].summary["acc_at_n"]
    assert "| benchmark | prompt_level_strict_acc | inst_level_strict_acc | prompt_level_loose_acc |" in md
    assert f"sentence_tokenizer = {ifeval.sentence_tokenizer()}" in md
    for name in results:
        assert len((out / f"{name}.samples.jsonl").read_text().splitlines()) == 2 * N
    summaries = json.loads((out / "summary.json").read_text())["summaries"]
    assert [s["benchmark"] for s in summaries] == ["humaneval", "gpqa", "ifeval"]
    assert summaries[0]["maj_at_n"] is None

    # same seed -> same samples (GPQA shuffles included)
    again = evaluate(cfg, params, TOK, dataclasses.replace(config, out_dir=None), log=None)
    for name in results:
        assert [r["response"] for r in again[name].records] == [r["response"] for r in results[name].records]


def test_run_from_config_with_the_eval_config_file(setup, tmp_path):
    """What scripts/evaluate.py runs: configs/eval.py with the new keys, an HF checkpoint folder."""
    _, _, hf_dir, data, gpqa = setup
    c = _config_module().get_config()
    c.ckpt, c.tokenizer, c.benchmarks = str(hf_dir), "char", "humaneval,gpqa_diamond,ifeval"
    c.data_dir, c.gpqa_path, c.out_dir = str(data), str(gpqa), str(tmp_path / "out")
    c.num_samples, c.max_new_tokens, c.prompt_batch_size, c.code_workers = N, MAX_NEW, 4, 2
    c.humaneval_style, c.gpqa_shuffle = "completion", False
    logs = []
    results = run_from_config(c, log=logs.append)
    assert list(results) == ["humaneval", "gpqa_diamond", "ifeval"]
    assert logs[-1].startswith("Accuracies and rates in percent") and "| benchmark | problems |" in logs[-1]
    assert "n/a" in logs[-1]
    # unshuffled GPQA: the file's order, so the answer letter is the same for every sample
    assert {r["answer_letter"] for r in results["gpqa_diamond"].records if r["problem_id"] == "made-up-1"} == {"B"}
    assert (tmp_path / "out" / "gpqa_diamond.samples.jsonl").is_file()


def test_long_prompts_are_an_error_or_skipped(setup, tmp_path):
    cfg, params, _, _, _ = setup
    gpqa = tmp_path / "gpqa_long.jsonl"
    gpqa.write_text("".join(json.dumps(r) + "\n" for r in [GPQA_ROWS[0], LONG_GPQA_ROW, GPQA_ROWS[1]]))
    config = _eval_config(setup, tmp_path, benchmarks="gpqa", gpqa_path=str(gpqa))
    with pytest.raises(ValueError, match="1 of 3 prompts do not fit.*made-up-long.*skip_long_prompts"):
        evaluate(cfg, params, TOK, config, log=None)
    assert not (tmp_path / "out").exists()  # nothing was sampled or written
    skip_config = dataclasses.replace(config, skip_long_prompts=True)
    prepared = prepare_benchmarks(skip_config, TOK)
    res = evaluate(cfg, params, TOK, skip_config, log=None, prepared=prepared)["gpqa"]
    assert len(prepared[0].rows) == 3  # the caller's prepared benchmarks are left as they were
    assert res.summary["skipped_problems"] == 1 and res.summary["skipped_ids"] == ["made-up-long"]
    assert res.summary["num_problems"] == 2 and len(res.records) == 2 * N
    assert _row(format_summary_table([res.summary]), "gpqa")["problems"] == "2 (1 skipped)"


def test_missing_gpqa_file_is_reported_before_the_model_loads(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv(choice.ENV_VAR, raising=False)
    empty = tmp_path / "not_a_checkpoint"
    empty.mkdir()  # loading it would fail with a different error
    c = _config_module().get_config()
    c.ckpt, c.tokenizer, c.benchmarks = str(empty), "char", "math500,gpqa"
    with pytest.raises(choice.GPQADataNotFoundError) as e:
        run_from_config(c, log=None)
    msg = str(e.value)
    assert "gated" in msg and "gpqa_diamond.csv" in msg and choice.ENV_VAR in msg
    assert str(tmp_path / ".cache/jaxrlvr/gpqa/gpqa_diamond.jsonl") in msg


def test_missing_gpqa_file_through_the_script(tmp_path):
    env = dict(os.environ, HOME=str(tmp_path), JAX_PLATFORMS="cpu")
    env.pop(choice.ENV_VAR, None)
    proc = subprocess.run(
        [
            sys.executable,
            "scripts/evaluate.py",
            "--config",
            "configs/eval.py",
            f"--config.ckpt={tmp_path}",
            "--config.tokenizer=char",
            "--config.benchmarks=gpqa",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode != 0
    assert "GPQA data not found" in proc.stderr and "gpqa_diamond.csv" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_sample_units_group_identical_prompts():
    # one prompt per problem: one unit per problem with N rows (the layout of the one-prompt runner)
    units, g, owners = _sample_units([[[1, 2]] * 4, [[3]] * 4])
    assert units == [[1, 2], [3]] and g == 4 and owners == [(0, [0, 1, 2, 3]), (1, [0, 1, 2, 3])]
    # shuffled prompts that coincide in pairs: units of 2 rows
    units, g, owners = _sample_units([[[1], [2], [1], [2]]])
    assert g == 2 and units == [[1], [2]] and owners == [(0, [0, 2]), (0, [1, 3])]
    # no common group size: one row per sample, every sample mapped back to its own index
    units, g, owners = _sample_units([[[1], [1], [2]], [[5], [6], [5]]])
    assert g == 1 and len(units) == 6
    assert sorted((p, s[0]) for p, s in owners) == [(p, s) for p in range(2) for s in range(3)]
    assert all(units[u] == [[[1], [1], [2]], [[5], [6], [5]]][p][s[0]] for u, (p, s) in enumerate(owners))


def test_prompts_and_config_keys(tmp_path):
    mod = _config_module()
    e = EvalConfig.from_mapping(mod.get_config())
    assert (e.humaneval_style, e.code_timeout_s, e.code_workers, e.code_memory_mb) == ("chat", 3.0, 2, 1024)
    assert e.gpqa_path is None and e.gpqa_shuffle and e.max_new_tokens_by_benchmark == ()
    c = mod.get_config()
    c.benchmarks, c.max_new_tokens_by_benchmark = "humaneval,ifeval", "humaneval=1024, ifeval=1280"
    e = EvalConfig.from_mapping(c)
    assert e.max_new_tokens_for("humaneval") == 1024 and e.max_new_tokens_for("ifeval") == 1280
    for bad, match in [
        ("gsm8k=5", "not among the benchmarks"),
        ("humaneval", "benchmark=tokens"),
        ("humaneval=0", "positive int"),
    ]:
        with pytest.raises(ValueError, match=match):
            EvalConfig(benchmarks="humaneval", max_new_tokens_by_benchmark=bad)
    with pytest.raises(ValueError, match="humaneval_style"):
        EvalConfig(humaneval_style="fim")
    # completion style: the raw HumanEval prompt; plain template: IFEval without chat markup
    prepared = prepare_benchmarks(
        EvalConfig(
            benchmarks="humaneval,ifeval,gpqa",
            humaneval_style="completion",
            max_problems=1,
            template="plain_boxed",
            gpqa_path=str(_write(tmp_path / "g.jsonl", GPQA_ROWS)),
            num_samples=3,
        ),
        TOK,
    )
    he, ife, gp = prepared
    assert TOK.decode(he.prompts[0]) == code.load_humaneval()[0]["prompt"] and not he.per_sample
    assert TOK.decode(ife.prompts[0]) == ifeval.load_ifeval()[0]["prompt"]
    assert gp.per_sample and len(gp.prompts[0]) == 3
    assert [TOK.decode(q) for q in gp.prompts[0]] == [
        choice.format_question(GPQA_ROWS[0], sample=s, seed=0).text for s in range(3)
    ]


def _write(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_real_gpqa_file_prompts(shared_data):
    path = shared_data / "gpqa_diamond.jsonl"
    if not path.is_file():
        pytest.skip("gpqa_diamond.jsonl is not in the shared data folder")
    (pb,) = prepare_benchmarks(EvalConfig(benchmarks="gpqa", gpqa_path=str(path), num_samples=4, seed=3), TOK)
    assert len(pb.rows) == 198 and pb.per_sample
    for row, prompts in zip(pb.rows[:20], pb.prompts[:20], strict=True):
        texts = [TOK.decode(q) for q in prompts]
        assert len(set(texts)) > 1  # options shuffled per sample
        assert all(row["canary"] not in t for t in texts)
