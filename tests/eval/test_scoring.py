"""The scoring layer on given response texts: records, summary, Maj@N grouping, pluggable scorers."""

import json
import math

import pytest

from jaxrlvr.eval import (
    Benchmark,
    EvalConfig,
    FunctionScorer,
    MathScorer,
    SampleScore,
    format_summary_table,
    get_benchmark,
    list_benchmarks,
    register_benchmark,
    score_responses,
    write_results,
)
from jaxrlvr.eval.benchmarks import BENCHMARKS
from jaxrlvr.eval.metrics import pass_at_k

ROWS = [
    {"id": "p0", "problem": "1/2 as a decimal?", "answer": "0.5"},
    {"id": "p1", "problem": "2+2?", "answer": "4"},
    {"id": "p2", "problem": "Angle?", "answer": "90^\\circ", "answer_alternatives": ["\\frac{\\pi}{2}"]},
]
RESPONSES = [
    # p0: 1 correct, 3 equivalent wrong answers written three ways -> the wrong group wins Maj@N
    ["$\\boxed{\\frac12}$", "$\\boxed{0.25}$", "$\\boxed{\\frac{1}{4}}$", "It is $\\boxed{\\dfrac{2}{8}}$."],
    # p1: 2 correct (one via the Answer: line), 1 wrong, 1 without an answer and with CJK
    ["$\\boxed{4}$", "Answer: 4", "$\\boxed{5}$", "我不知道"],
    # p2: correct via the alternative gold; a repetition loop; two boxes
    [
        "$\\boxed{\\pi/2}$",
        "so so so so so so so so so so so so so so so",
        "$\\boxed{90}$ or $\\boxed{45}$",
        "$\\boxed{90}$",
    ],
]


@pytest.fixture(scope="module")
def result():
    return score_responses(
        "toy",
        ROWS,
        RESPONSES,
        MathScorer(workers=2, timeout_s=20.0),
        lengths=[[10, 20, 30, 40]] * 3,
        truncated=[[False, False, False, True]] * 3,
    )


def test_records(result):
    assert len(result.records) == 12
    r = result.records[0]
    for key in (
        "benchmark",
        "problem_id",
        "sample_index",
        "gold",
        "response",
        "answer",
        "correct",
        "length",
        "truncated",
        "format_violation",
        "language_mixing",
        "repetition",
        "vote_group",
        "timed_out",
    ):
        assert key in r, key
    by = {(r["problem_id"], r["sample_index"]): r for r in result.records}
    assert by[("p0", 0)]["correct"] and not by[("p0", 1)]["correct"]
    assert by[("p1", 1)]["answer"] == "4" and by[("p1", 1)]["correct"] and by[("p1", 1)]["format_violation"]
    assert by[("p1", 3)]["answer"] is None and by[("p1", 3)]["language_mixing"]
    assert by[("p2", 0)]["correct"]  # matched the alternative gold
    assert by[("p2", 1)]["repetition"]
    assert by[("p2", 2)]["format_violation"] and by[("p2", 2)]["answer"] == "45"
    # equivalent wrong answers share a vote group
    groups = [by[("p0", i)]["vote_group"] for i in range(4)]
    assert groups[0] == "gold" and groups[1] == groups[2] == groups[3] != "gold"


def test_summary_values(result):
    s = result.summary
    assert (s["num_problems"], s["num_samples"]) == (3, 4)
    assert s["acc_at_n"] == pytest.approx((1 / 4 + 2 / 4 + 2 / 4) / 3)
    # p0: wrong group (3) beats correct (1); p1: "4" x2 beats "5"; p2: gold group {pi/2, 90} beats "45"
    assert s["maj_at_n"] == pytest.approx(2 / 3)
    for k in range(1, 5):
        expect = (pass_at_k(4, 1, k) + pass_at_k(4, 2, k) + pass_at_k(4, 2, k)) / 3
        assert s["pass_at_k"][str(k)] == pytest.approx(expect)
    assert s["mean_length"] == 25 and s["truncation_rate"] == 0.25
    assert s["no_answer_rate"] == pytest.approx(2 / 12)
    assert s["format_violation_rate"] == pytest.approx(4 / 12)  # p1 x2 (Answer line, none), p2 x2
    assert s["language_mixing_rate"] == pytest.approx(1 / 12)
    assert s["repetition_rate"] == pytest.approx(1 / 12)
    assert s["verifier_timeout_rate"] == 0.0


def test_tables_and_files(result, tmp_path):
    table = format_summary_table([result.summary])
    assert "| toy | 3 | 4 |" in table and "Pass@4" in table
    out = write_results({"toy": result}, tmp_path / "out", EvalConfig(benchmarks=("toy",)))
    lines = (out / "toy.samples.jsonl").read_text().splitlines()
    assert len(lines) == 12 and json.loads(lines[0])["problem_id"] == "p0"
    summary = json.loads((out / "summary.json").read_text())
    assert summary["summaries"][0]["benchmark"] == "toy" and summary["config"]["num_samples"] == 8
    assert (out / "summary.md").read_text() == table


def test_maj_tie_break_is_first_appearance():
    rows = [{"id": "t", "problem": "?", "answer": "1"}]
    res = score_responses(
        "tie",
        rows,
        [["$\\boxed{2}$", "$\\boxed{1}$", "$\\boxed{1.0}$", "$\\boxed{2}$"]],
        MathScorer(workers=1, timeout_s=20.0),
    )
    assert res.summary["maj_at_n"] == 0.0  # 2 vs 2: the answer "2" appeared first
    res = score_responses(
        "tie",
        rows,
        [["$\\boxed{1}$", "$\\boxed{2}$", "$\\boxed{2}$", "$\\boxed{1}$"]],
        MathScorer(workers=1, timeout_s=20.0),
    )
    assert res.summary["maj_at_n"] == 1.0


def test_pluggable_scorer_and_registry():
    def check(row, response):
        ans = response.strip()[-1:] or None
        return SampleScore(correct=ans == row["answer"], answer=ans, extras={"checked": True})

    bench = Benchmark(
        name="toy_choice",
        load=lambda data_dir: [{"id": "q1", "answer": "B"}, {"id": "q2", "answer": "D"}],
        build_prompt=lambda row, tok, template: tok.encode(row["id"]),
        make_scorer=lambda opts: FunctionScorer(check),
        format_check=None,
        default_template=None,
    )
    register_benchmark(bench)
    try:
        assert "toy_choice" in list_benchmarks() and get_benchmark("toy_choice") is bench
        with pytest.raises(ValueError, match="already registered"):
            register_benchmark(bench)
        rows = bench.load(None)
        res = score_responses(
            "toy_choice",
            rows,
            [["B", "C", "B"], ["A", "A", "D"]],
            bench.make_scorer(None),
            format_check=bench.format_check,
        )
        assert res.summary["acc_at_n"] == pytest.approx((2 / 3 + 1 / 3) / 2)
        assert res.summary["maj_at_n"] == 0.5
        assert math.isnan(res.summary["format_violation_rate"]) and res.records[0]["format_violation"] is None
        assert res.records[0]["checked"] is True
        assert "| toy_choice | 2 | 3 |" in format_summary_table([res.summary])
    finally:
        BENCHMARKS.pop("toy_choice")


def test_file_path_benchmarks_and_errors(tmp_path):
    path = tmp_path / "my_set.jsonl"
    path.write_text(json.dumps({"id": "a", "problem": "1+1?", "answer": "2"}) + "\n")
    bench = get_benchmark(str(path))
    assert bench.name == "my_set" and bench.load(None)[0]["answer"] == "2"
    with pytest.raises(ValueError, match="unknown benchmark"):
        get_benchmark("nope")
    with pytest.raises(FileNotFoundError):
        get_benchmark(str(tmp_path / "missing.jsonl"))
    with pytest.raises(ValueError, match="same number"):
        score_responses("x", ROWS[:2], [["a"], ["b", "c"]], MathScorer(workers=1))
    with pytest.raises(ValueError, match="problems but"):
        score_responses("x", ROWS[:2], [["a"]], MathScorer(workers=1))


def test_named_benchmarks_registered_and_prompts():
    from jaxrlvr.data import CharTokenizer

    assert set(list_benchmarks()) >= {"math500", "aime24", "aime25", "amc23", "minerva", "gsm8k"}
    tok = CharTokenizer()
    row = get_benchmark("aime24").load(None)[0]
    ids = get_benchmark("aime24").build_prompt(row, tok, None)
    assert tok.decode(ids, skip_special_tokens=False).startswith("<|im_start|>system\nPlease reason step by step")
    ids = get_benchmark("aime24").build_prompt(row, tok, "plain_boxed")
    assert tok.decode(ids).startswith(row["problem"][:20])
    minerva = get_benchmark("minerva").load(None)
    assert len(minerva) == 272 and not any(r["answer_alternatives"] for r in minerva)  # off by default


def test_answer_line_format_check():
    from jaxrlvr.eval.scoring import answer_line_violation

    assert not answer_line_violation("work\nAnswer: 3")
    assert answer_line_violation("work, no final line")
    assert answer_line_violation("Answer:   ")
