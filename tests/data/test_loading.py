"""Row loading and validation, Parquet with nested fields, named benchmarks."""

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from jaxrlvr.data import (
    BENCHMARK_FILES,
    DataError,
    load_benchmark_rows,
    load_rows,
    package_benchmark_path,
    resolve_data_path,
)


def _write_jsonl(path, rows):
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


GOOD = {"id": "a", "problem": "1+1?", "answer": "2"}


@pytest.mark.parametrize(
    "bad_row, message",
    [
        ({"id": "b", "answer": "2"}, "missing field 'problem'"),
        ({"id": "b", "problem": ["x"], "answer": "2"}, "field 'problem' must be a string"),
        ({"id": "b", "problem": "  ", "answer": "2"}, "field 'problem' is empty"),
        ({"id": "b", "problem": "p"}, "missing field 'answer'"),
        ({"id": "b", "problem": "p", "answer": "   "}, "field 'answer' is empty"),
        ({"id": "b", "problem": "p", "answer": {"v": 1}}, "must be a string or a number"),
        ({"id": "a", "problem": "p", "answer": "3"}, "duplicate id 'a' (first on line 1)"),
        ("{not json", "invalid JSON"),
        ("[1, 2]", "a row must be an object"),
    ],
)
def test_bad_rows_name_file_and_line(tmp_path, bad_row, message):
    path = _write_jsonl(tmp_path / "d.jsonl", [GOOD, bad_row, {"id": "c", "problem": "q", "answer": "4"}])
    with pytest.raises(DataError) as e:
        load_rows(path)
    assert f"{path}:2: " in str(e.value) and message in str(e.value)
    loaded = load_rows(path, skip_bad_rows=True)
    assert [r["id"] for r in loaded.rows] == ["a", "c"]
    assert loaded.num_skipped == 1 and loaded.skipped[0][0] == 2 and message in loaded.skipped[0][1]
    assert loaded.lines == [1, 3]


def test_numbers_ids_fields_and_blank_lines(tmp_path):
    rows = [
        {"q": "p1", "sol": 27.0, "extra": 1, "alts": ["27.0", 27]},
        {"q": "p2", "sol": 5},
        {"q": "p3", "sol": 0.25},
    ]
    path = _write_jsonl(tmp_path / "nums.jsonl", rows)
    path.write_text(path.read_text() + "\n\n")
    loaded = load_rows(
        path,
        problem_field="q",
        answer_field="sol",
        id_field=None,
        alt_answers_field="alts",
        extra_fields=("extra",),
    )
    assert [r["answer"] for r in loaded.rows] == ["27", "5", "0.25"]
    assert [r["id"] for r in loaded.rows] == ["nums-0", "nums-1", "nums-2"]
    assert loaded.rows[0]["answer_alternatives"] == ["27.0", "27"]
    assert loaded.rows[0]["extra"] == 1 and loaded.rows[1]["extra"] is None
    with pytest.raises(DataError, match="no usable rows"):
        load_rows(_write_jsonl(tmp_path / "e.jsonl", ['{"x": 1}']), skip_bad_rows=True)


def test_parquet_with_verl_layout(tmp_path):
    table = pa.Table.from_pylist(
        [
            {
                "prompt": [{"role": "user", "content": "Find x."}],
                "reward_model": {"ground_truth": "34"},
                "idx": 7,
            },
            {
                "prompt": [{"role": "user", "content": "Find y."}],
                "reward_model": {"ground_truth": "5"},
                "idx": 8,
            },
        ]
    )
    path = tmp_path / "train.parquet"
    pq.write_table(table, path)
    loaded = load_rows(path, problem_field="prompt.0.content", answer_field="reward_model.ground_truth", id_field="idx")
    assert [(r["id"], r["problem"], r["answer"]) for r in loaded.rows] == [
        ("7", "Find x.", "34"),
        ("8", "Find y.", "5"),
    ]
    with pytest.raises(DataError, match=r"train.parquet:1: missing field 'prompt.1.content'"):
        load_rows(path, problem_field="prompt.1.content", answer_field="reward_model.ground_truth")


def test_unknown_suffix_needs_a_format(tmp_path):
    path = _write_jsonl(tmp_path / "d.txt", [GOOD])
    with pytest.raises(DataError, match="cannot tell the format"):
        load_rows(path)
    assert load_rows(path, format="jsonl").rows[0]["answer"] == "2"


EXPECTED_COUNTS = {"math500": 500, "aime24": 30, "aime25": 30, "amc23": 40, "minerva": 272, "gsm8k": 1319}


def test_named_benchmarks_are_shipped():
    assert set(BENCHMARK_FILES) == set(EXPECTED_COUNTS)
    for name, n in EXPECTED_COUNTS.items():
        path = package_benchmark_path(name)
        assert path.is_file() and path.parent.name == "benchmarks"
        rows = load_benchmark_rows(name)
        assert len(rows) == n, name
        assert all(r["problem"] and r["answer"] for r in rows)
    assert (package_benchmark_path("math500").parent / "SOURCES.md").is_file()
    aime = {r["id"]: r["answer"] for r in load_benchmark_rows("aime24")}
    assert "025" in aime.values()
    minerva = load_benchmark_rows("minerva")
    assert sum(bool(r["answer_alternatives"]) for r in minerva) == 136


def test_named_resolution_with_data_dir_and_paths(tmp_path, shared_data):
    assert resolve_data_path("math500", shared_data) == shared_data / "math500.jsonl"
    assert resolve_data_path("math_train", shared_data) == shared_data / "math_train.jsonl"
    with pytest.raises(FileNotFoundError, match="not shipped"):
        resolve_data_path("dapo_math_17k")
    with pytest.raises(FileNotFoundError, match="not found"):
        resolve_data_path("aime24", tmp_path)
    with pytest.raises(FileNotFoundError, match="named data sets"):
        resolve_data_path(tmp_path / "missing.jsonl")
    user = _write_jsonl(tmp_path / "mine.jsonl", [GOOD])
    assert load_benchmark_rows(str(user))[0]["id"] == "a"


def test_shared_training_sets_load(shared_data):
    math_train = load_rows(resolve_data_path("math_train", shared_data))
    assert len(math_train.rows) == 7470 and not math_train.skipped
    dapo = load_rows(resolve_data_path("dapo_math_17k", shared_data))
    assert len(dapo.rows) == 17917


def test_non_utf8_bytes_name_file_and_line(tmp_path):
    from jaxrlvr.data.loading import DataError, load_rows

    path = tmp_path / "bad.jsonl"
    path.write_bytes(b'{"problem": "1+1", "answer": "2"}\n{"problem": "caf\xe9", "answer": "3"}\n')
    with pytest.raises(DataError, match=r"bad.jsonl:2: not valid UTF-8 \(byte 0xe9 at column 17\)"):
        load_rows(path)
    loaded = load_rows(path, skip_bad_rows=True)
    assert len(loaded.rows) == 1 and loaded.skipped == [(2, "not valid UTF-8 (byte 0xe9 at column 17)")]
