"""grain prompt pipelines: shuffle, epochs, shards, batches, checkpointable iterator state."""

import json

import pytest

from jaxrlvr.data import CharTokenizer, DataConfig, DataError, PromptDataset, make_prompt_dataset

TOK = CharTokenizer()


def _file(tmp_path, n=10):
    path = tmp_path / "p.jsonl"
    path.write_text(
        "".join(json.dumps({"id": f"r{i}", "problem": f"{i}+1?", "answer": str(i + 1)}) + "\n" for i in range(n))
    )
    return str(path)


def _ids(batches):
    return [[r["id"] for r in b] for b in batches]


def test_rows_have_the_promised_fields(tmp_path):
    ds = PromptDataset(DataConfig(_file(tmp_path), batch_size=None, shuffle=False, template="plain_boxed"), TOK)
    row = next(iter(ds))
    assert set(row) >= {"id", "problem", "answer", "prompt_ids", "answer_alternatives"}
    assert row["id"] == "r0" and row["answer"] == "1"
    assert row["prompt_ids"] == TOK.encode(
        "0+1?\nPlease reason step by step, and put your final answer within \\boxed{}.\n"
    )
    assert all(isinstance(i, int) for i in row["prompt_ids"])


def test_seeded_shuffle_epochs_and_batching(tmp_path):
    path = _file(tmp_path)
    a = _ids(PromptDataset(DataConfig(path, batch_size=5, seed=1, num_epochs=2), TOK))
    b = _ids(PromptDataset(DataConfig(path, batch_size=5, seed=1, num_epochs=2), TOK))
    c = _ids(PromptDataset(DataConfig(path, batch_size=5, seed=2, num_epochs=2), TOK))
    assert a == b and a != c
    assert len(a) == 4
    epoch1, epoch2 = a[0] + a[1], a[2] + a[3]
    assert sorted(epoch1) == sorted(epoch2) == sorted(f"r{i}" for i in range(10))
    assert epoch1 != epoch2  # reshuffled every epoch
    # drop_remainder
    assert len(PromptDataset(DataConfig(path, batch_size=3), TOK)) == 3
    assert [len(b) for b in PromptDataset(DataConfig(path, batch_size=3, drop_remainder=False), TOK)] == [
        3,
        3,
        3,
        1,
    ]
    unshuffled = _ids(PromptDataset(DataConfig(path, batch_size=5, shuffle=False), TOK))
    assert unshuffled == [[f"r{i}" for i in range(5)], [f"r{i}" for i in range(5, 10)]]


def test_shards_are_disjoint_equal_and_match_the_global_stream(tmp_path):
    def stream(path, index, count):
        cfg = DataConfig(path, batch_size=None, seed=3, num_epochs=2, shard_index=index, shard_count=count)
        return [r["id"] for r in PromptDataset(cfg, TOK)]

    path11 = _file(tmp_path, n=11)
    shards = [stream(path11, i, 3) for i in range(3)]
    assert [len(s) for s in shards] == [6, 6, 6]  # 11 rows -> 9 usable per epoch, equal shards
    for epoch in range(2):
        ids = sum((s[epoch * 3 : epoch * 3 + 3] for s in shards), [])
        assert len(set(ids)) == 9  # disjoint within an epoch
    # shard i of n holds elements i, i+n, ... of the single-process stream over the same rows
    (tmp_path / "nine").mkdir()
    path9 = _file(tmp_path / "nine", n=9)
    full = stream(path9, 0, 1)
    shards9 = [stream(path9, i, 3) for i in range(3)]
    assert [shards9[k % 3][k // 3] for k in range(18)] == full
    with pytest.raises(ValueError, match="shard_index"):
        DataConfig(path9, shard_index=3, shard_count=3)


def test_shard_defaults_follow_jax_processes(tmp_path):
    ds = PromptDataset(DataConfig(_file(tmp_path), shard_index=None, shard_count=None), TOK)
    assert (ds.shard_index, ds.shard_count) == (0, 1)


def test_iterator_state_restores_exactly(tmp_path):
    ds = PromptDataset(DataConfig(_file(tmp_path), batch_size=2, seed=5, num_epochs=3), TOK)
    it = ds.iterator()
    for _ in range(4):
        next(it)
    state = json.loads(json.dumps(it.get_state()))  # JSON round trip, as a checkpoint would
    rest = _ids(list(it))
    resumed = ds.iterator(state)
    assert _ids(list(resumed)) == rest
    # and a fresh dataset object (as after a restart) resumes the same way
    ds2 = PromptDataset(DataConfig(_file(tmp_path), batch_size=2, seed=5, num_epochs=3), TOK)
    it2 = ds2.iterator()
    it2.set_state(state)
    assert _ids(list(it2)) == rest


def test_infinite_repeat(tmp_path):
    ds = PromptDataset(DataConfig(_file(tmp_path), batch_size=4, num_epochs=None), TOK)
    it = iter(ds)
    got = [next(it) for _ in range(10)]
    assert all(len(b) == 4 for b in got)
    with pytest.raises(TypeError):
        len(ds)


def test_max_prompt_tokens_and_skip_counts(tmp_path):
    path = tmp_path / "mixed.jsonl"
    path.write_text(
        json.dumps({"id": "short", "problem": "1+1?", "answer": "2"})
        + "\n"
        + json.dumps({"id": "long", "problem": "x" * 200, "answer": "2"})
        + "\n"
        + json.dumps({"id": "bad", "problem": "p", "answer": ""})
        + "\n"
    )
    cfg = DataConfig(str(path), template="plain_boxed", max_prompt_tokens=150, batch_size=None)
    with pytest.raises(DataError, match="mixed.jsonl:3"):
        PromptDataset(cfg, TOK)
    ds = PromptDataset(DataConfig(**{**cfg.__dict__, "skip_bad_rows": True}), TOK)
    assert [r["id"] for r in ds.rows] == ["short"]
    assert ds.num_skipped == 2 and sorted(line for line, _ in ds.skipped) == [2, 3]


def test_config_validation_and_mapping(tmp_path):
    path = _file(tmp_path)
    with pytest.raises(ValueError, match="unknown data config keys"):
        DataConfig.from_mapping({"path": path, "batchsize": 2})
    with pytest.raises(ValueError, match="unknown prompt template"):
        DataConfig(path, template="nope")
    with pytest.raises(ValueError, match="batch_size"):
        DataConfig(path, batch_size=0)
    ds = make_prompt_dataset({"path": path, "batch_size": 5, "extra_fields": ["id"]}, TOK)
    assert len(ds) == 2 and ds.config.extra_fields == ("id",)


def test_named_benchmark_pipeline():
    ds = PromptDataset(DataConfig("amc23", batch_size=8, shuffle=False), TOK)
    assert len(ds) == 5 and ds.path.name == "amc23.jsonl"


def test_dapo_training_set_pipeline(shared_data):
    ds = PromptDataset(
        DataConfig("dapo_math_17k", data_dir=str(shared_data), template="dapo_answer", batch_size=64, shard_count=2),
        TOK,
    )
    batch = next(iter(ds))
    assert len(batch) == 64 and "Answer:" in TOK.decode(batch[0]["prompt_ids"])


def test_load_prompt_rows_accepts_trainer_style_config(tmp_path):
    import ml_collections

    c = ml_collections.ConfigDict()
    c.data = ml_collections.ConfigDict(
        {
            "source": "file",
            "path": _file(tmp_path),
            "problem_key": "problem",
            "answer_key": "answer",
            "id_key": "id",
            "template": "plain_boxed",
            "skip_bad_rows": False,
            "synthetic_digits": 2,
        }
    )
    from jaxrlvr.data import load_prompt_rows

    rows = load_prompt_rows(c, TOK)
    assert [r["id"] for r in rows] == [f"r{i}" for i in range(10)]
    assert rows[3]["prompt_ids"] == TOK.encode(
        "3+1?\nPlease reason step by step, and put your final answer within \\boxed{}.\n"
    )
    assert load_prompt_rows(DataConfig(_file(tmp_path), seed=9), TOK)[0]["id"] == "r0"
