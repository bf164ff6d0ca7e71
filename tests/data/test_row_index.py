"""Training files indexed rather than read whole (jaxrlvr/data/row_index.py): the trainer's data path gives the
same rows, order and resume state as reading the file eagerly, the same errors, and a memory peak that is
small next to the file."""

import json
import subprocess
import sys
import textwrap

import ml_collections
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from jaxrlvr.data import CharTokenizer, DataError, get_template, load_rows
from jaxrlvr.data.row_index import index_rows
from jaxrlvr.train.setup import PromptStream, build_data, filter_long_prompts

TOK = CharTokenizer()


def _rows(n):
    out = [
        {"id": f"r{i}", "problem": f"{i}+{i % 7}?" + "x" * (40 if i % 9 == 4 else 0), "answer": str(i)}
        for i in range(n)
    ]
    out[5] = "{not json"  # bad rows: skipped with data.skip_bad_rows
    out[11] = {"id": "r3", "problem": "dup", "answer": "1"}
    out[17] = {"id": "r17", "problem": "p"}
    return out


def _config(path, **data):
    c = ml_collections.ConfigDict()
    c.data = ml_collections.ConfigDict(
        dict(source="file", path=str(path), problem_key="problem", answer_key="answer", id_key="id",
             template="plain_boxed", skip_bad_rows=True, filter_overlong_prompts=True, **data)
    )  # fmt: skip
    c.rollout = ml_collections.ConfigDict({"max_prompt_len": 100})
    return c


def _eager(path, c):
    """What the trainer held before the index: every row read, tokenized and filtered up front."""
    loaded = load_rows(path, skip_bad_rows=True)
    tpl = get_template(c.data.template)
    rows = [dict(r, prompt_ids=tpl.encode(r["problem"], TOK)) for r in loaded.rows]
    kept = [r for r in rows if len(r["prompt_ids"]) <= c.rollout.max_prompt_len]
    return kept, loaded.num_skipped, len(rows) - len(kept)


@pytest.mark.parametrize("fmt", ["jsonl", "parquet"])
def test_same_prompts_order_and_resume_as_the_eager_path(tmp_path, fmt):
    path = tmp_path / f"train.{fmt}"
    if fmt == "jsonl":
        path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in _rows(60)))
    else:
        good = [r for r in _rows(60) if isinstance(r, dict) and "answer" in r]
        pq.write_table(pa.Table.from_pylist(good), path, row_group_size=16)
    c = _config(path)
    eager, n_bad_eager, n_long_eager = _eager(path, c)
    rows, heldout, n_bad = build_data(c, TOK)
    rows, n_long = filter_long_prompts(c, rows, "training")
    assert type(rows).__name__ == "IndexedRows" and heldout == []
    assert (n_bad, n_long) == (n_bad_eager, n_long_eager) and n_long > 0 and n_bad > 0
    assert len(rows) == len(eager) and list(rows) == eager  # same rows, same fields, same prompt ids
    a, b = PromptStream(eager, 8, 3), PromptStream(rows, 8, 3)
    for _ in range(9):  # past an epoch: the reshuffle too
        assert next(a) == next(b)
    state = b.get_state()
    assert state == a.get_state()
    rest = [next(a) for _ in range(4)]
    resumed = PromptStream(rows, 8, 3)
    resumed.set_state(state)
    assert [next(resumed) for _ in range(4)] == rest


def test_errors_and_skipped_rows_match_load_rows(tmp_path):
    path = tmp_path / "bad.jsonl"
    lines = [json.dumps(r) if isinstance(r, dict) else r for r in _rows(20)]
    lines[8] = json.dumps({"id": "r1", "problem": "dup of line 2", "answer": "3"})  # a duplicate before line 12's
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError) as eager:
        load_rows(path)
    with pytest.raises(DataError) as lazy:
        index_rows(path)
    assert str(lazy.value) == str(eager.value) and f"{path}:6: invalid JSON" in str(lazy.value)
    lines[5] = json.dumps({"id": "r5", "problem": "fixed", "answer": "5"})
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match=r"bad.jsonl:9: duplicate id 'r1' \(first on line 2\)"):
        index_rows(path)  # the first error in file order, though duplicates are found after the pass
    loaded, index = load_rows(path, skip_bad_rows=True), index_rows(path, skip_bad_rows=True)
    assert list(index) == loaded.rows and list(index.lines) == loaded.lines
    assert list(index.skipped) == loaded.skipped and len(loaded.skipped) == 3


_MEMORY = """
import json, sys
import grain, ml_collections
import jaxrlvr.data.pipeline
from jaxrlvr.data.templates import PromptTemplate, register_template
from jaxrlvr.train.setup import PromptStream, build_data, filter_long_prompts

class Bytes:  # a fast tokenizer: the pass's cost here is reading and checking rows, not tokenizing
    def encode(self, text):
        return list(text.encode())

register_template(PromptTemplate(name="bare", kind="plain", user="{problem}"))
c = ml_collections.ConfigDict({"seed": 0, "rollout": {"max_prompt_len": 16}, "data": dict(
    source="file", path=sys.argv[1], problem_key="problem", answer_key="answer", id_key="id", template="bare",
    skip_bad_rows=True, filter_overlong_prompts=True)})
def status_mb(key):  # VmHWM: this process's peak RSS (ru_maxrss would count the forking parent's pages)
    return next(int(x.split()[1]) for x in open("/proc/self/status") if x.startswith(key)) / 1024
before = status_mb("VmRSS")
rows, _, n_bad = build_data(c, Bytes())
rows, n_long = filter_long_prompts(c, rows, "training")
batch = next(PromptStream(rows, 64, 0))
peak = status_mb("VmHWM")
print(json.dumps({"rows": len(rows), "bad": n_bad, "long": n_long, "batch": len(batch), "grew_mb": peak - before}))
"""


def test_memory_is_small_next_to_the_file(tmp_path):
    """A 200k-row file: the trainer's data set-up grows the process by well under the file's size (reading it
    whole held text, dicts and token ids of every row: about 20x the file)."""
    path = tmp_path / "big.jsonl"
    with open(path, "w") as f:
        for i in range(200_000):
            problem = f"{i % 997}+{i % 13}=?" + ("y" * 20 if i % 50 == 0 else "")  # 2% over max_prompt_len
            f.write(json.dumps({"id": f"row-{i}", "problem": problem, "answer": str(i % 997 + i % 13)}) + "\n")
        f.write("{torn\n")
    size_mb = path.stat().st_size / 2**20
    out = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(_MEMORY), str(path)], capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr[-2000:]
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert (got["rows"], got["bad"], got["long"], got["batch"]) == (196_000, 1, 4_000, 64)
    assert got["grew_mb"] < 3 * size_mb, (got, size_mb)


def test_overlong_prompts_refused_with_the_same_line_as_the_eager_path(tmp_path):
    path = tmp_path / "t.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in _rows(30) if isinstance(r, dict) and "answer" in r))
    c = _config(path)
    c.data.filter_overlong_prompts = False
    rows, _, _ = build_data(c, TOK)
    with pytest.raises(ValueError) as lazy:
        filter_long_prompts(c, rows, "training")
    with pytest.raises(ValueError) as eager:
        filter_long_prompts(c, list(rows), "training")
    assert str(lazy.value) == str(eager.value) and "row 'r4'" in str(lazy.value)
    c.rollout.max_prompt_len, c.data.filter_overlong_prompts = 5, True
    with pytest.raises(ValueError, match="every training prompt is longer than rollout.max_prompt_len=5"):
        filter_long_prompts(c, rows, "training")
