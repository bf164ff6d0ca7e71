"""LiveCodeBench from a local file in the release's format (docs/ood_eval.md): loading (plain and
compressed private tests), prompts, and scoring right / wrong / crashing programs in the real sandbox."""

import base64
import json
import pickle
import zlib

import pytest

from jaxrlvr.eval import get_benchmark
from jaxrlvr.eval.config import EvalConfig
from jaxrlvr.eval.livecodebench import LiveCodeBenchDataNotFoundError, extract_program, load_livecodebench


def _compressed(cases):
    return base64.b64encode(zlib.compress(pickle.dumps(json.dumps(cases)))).decode()


def write_tiny_release(path):
    """Two problems as the lite release stores them: a LeetCode (functional) one with plain JSON tests and
    an AtCoder (stdin) one whose private tests are base64 / zlib / pickle of JSON text."""
    functional = {
        "question_title": "Add",
        "question_content": "Return a + b.",
        "platform": "leetcode",
        "question_id": "lc1",
        "contest_id": "w1",
        "contest_date": "2024-08-01T00:00:00",
        "starter_code": "class Solution:\n    def add(self, a: int, b: list) -> int:\n        ",
        "difficulty": "easy",
        "public_test_cases": json.dumps([{"input": "1\n[2]", "output": "3", "testtype": "functional"}]),
        "private_test_cases": json.dumps([{"input": "5\n[-5]", "output": "0", "testtype": "functional"}]),
        "metadata": json.dumps({"func_name": "add"}),
    }
    stdin = {
        "question_title": "Double",
        "question_content": "Read N and print 2N.",
        "platform": "atcoder",
        "question_id": "abc1_a",
        "contest_id": "abc1",
        "contest_date": "2024-08-02T00:00:00",
        "starter_code": "",
        "difficulty": "easy",
        "public_test_cases": json.dumps([{"input": "2\n", "output": "4\n", "testtype": "stdin"}]),
        "private_test_cases": _compressed([{"input": "21\n", "output": "42\n", "testtype": "stdin"}]),
        "metadata": "{}",
    }
    path.write_text(json.dumps(functional) + "\n" + json.dumps(stdin) + "\n")
    return path


FUNCTIONAL_OK = "Here:\n```python\nclass Solution:\n    def add(self, a, b):\n        return a + b[0]\n```"
STDIN_OK = "```python\nn = int(input())\nprint(2 * n)\n```"
STDIN_HARDCODED = "```python\nprint(4)\n```"  # passes the public test only


def test_load_the_release_format(tmp_path):
    rows = load_livecodebench(write_tiny_release(tmp_path / "test6.jsonl"))
    assert [r["id"] for r in rows] == ["lc1", "abc1_a"]
    assert rows[0]["testtype"] == "functional" and rows[0]["func_name"] == "add"
    assert rows[1]["tests"] == [("2\n", "4\n"), ("21\n", "42\n")]  # public + decompressed private
    assert extract_program(FUNCTIONAL_OK).startswith("class Solution")
    with pytest.raises(LiveCodeBenchDataNotFoundError, match="livecodebench_path"):
        load_livecodebench(tmp_path / "missing.jsonl")


def test_compressed_tests_refuse_objects(tmp_path):
    row = json.loads(write_tiny_release(tmp_path / "t.jsonl").read_text().splitlines()[1])
    row["private_test_cases"] = base64.b64encode(zlib.compress(pickle.dumps(EvalConfig()))).decode()
    (tmp_path / "bad.jsonl").write_text(json.dumps(row) + "\n")
    with pytest.raises(ValueError, match="base64/zlib/pickle"):
        load_livecodebench(tmp_path / "bad.jsonl")


def test_scoring_runs_every_test_in_the_sandbox(tmp_path):
    cfg = EvalConfig(benchmarks=("livecodebench",), livecodebench_path=str(write_tiny_release(tmp_path / "t.jsonl")))
    bench = get_benchmark("livecodebench").configure(cfg)
    rows = bench.load(None)
    scorer = bench.make_scorer(cfg.scoring_options())
    responses = [
        [FUNCTIONAL_OK, "```python\nclass Solution:\n    def add(self, a, b):\n        return a\n```"],
        [STDIN_OK, STDIN_HARDCODED, "```python\nraise SystemExit(int(input()) * 0 + 1/0)\n```"],
    ]
    scores = scorer.score(rows, responses)
    assert [[s.correct for s in ss] for ss in scores] == [[True, False], [True, False, False]]
    assert scores[1][1].extras["exec_status"] == "failed"
    assert scorer.vote_groups(rows, scores) is None  # Maj@N does not apply
