"""Training-data diversity subsets: K-means on the policy's own problem embeddings -> high / low / random."""

import numpy as np
import pytest

from jaxrlvr.analysis.data_diversity import (
    diversity_subsets,
    kmeans,
    mean_pairwise_distance,
    problem_embeddings,
    write_subsets,
)


def test_kmeans_finds_separated_blobs_and_subsets_order_by_diversity():
    rng = np.random.default_rng(0)
    centres = np.array([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0], [10.0, 10.0]])
    x = np.concatenate([c + rng.normal(0, 0.3, (25, 2)) for c in centres])
    labels, _ = kmeans(x, 4, seed=0)
    assert sorted(np.bincount(labels)) == [25] * 4 and all(
        len(set(labels[i * 25 : (i + 1) * 25])) == 1 for i in range(4)
    )
    subs = diversity_subsets(labels, 20, seed=0)
    assert all(s.size == 20 and np.unique(s).size == 20 for s in subs.values())
    assert len(set(labels[subs["high"]])) == 4 and len(set(labels[subs["low"]])) == 1
    assert mean_pairwise_distance(x[subs["high"]]) > mean_pairwise_distance(x[subs["random"]]) * 0.9
    assert mean_pairwise_distance(x[subs["high"]]) > 3 * mean_pairwise_distance(x[subs["low"]])


def test_problem_embeddings_from_the_policy_and_written_subsets(tmp_path):
    from jaxrlvr.data import CharTokenizer
    from tests.eval.test_end_to_end import _tiny_model

    tok = CharTokenizer()
    cfg, params = _tiny_model()
    rows = [{"id": i, "problem": p, "answer": "1"} for i, p in enumerate(["1+2", "33+44", "5+6", "777+1", "9+9"])]
    ids = [tok.encode(r["problem"]) for r in rows]
    emb = problem_embeddings(cfg, params, ids, batch=4, pad_id=tok.pad_id)
    assert emb.shape == (5, cfg.hidden_size) and np.isfinite(emb).all()
    alone = problem_embeddings(cfg, params, ids[1:2], batch=4, pad_id=tok.pad_id)  # padding does not leak in
    np.testing.assert_allclose(alone[0], emb[1], rtol=1e-4, atol=1e-5)
    labels, _ = kmeans(emb, 2, seed=0)
    paths = write_subsets(rows, diversity_subsets(labels, 3), tmp_path)
    assert set(paths) == {"high", "low", "random"} and len(paths["high"].read_text().splitlines()) == 3


def test_data_subsets_command_writes_table3_files_and_the_preset_reads_them(tmp_path):
    """The user's path: scripts/data_subsets.py on the smoke config (character tokenizer, tiny model) over a
    700-row file, then ``configs/entropy_study.py:data_subset=kmeans_616,subsets_dir=OUT`` points at the file."""
    import json
    import os
    import pathlib
    import subprocess
    import sys

    from jaxrlvr.cli_support import load_config_file

    root = pathlib.Path(__file__).resolve().parents[2]
    rng = np.random.default_rng(0)
    rows = [
        {"id": i, "problem": f"What is {a}+{b}?" if i % 2 else f"Compute {a}*{b} please.", "answer": str(a + b)}
        for i, (a, b) in enumerate(rng.integers(1, 999, (700, 2)).tolist())
    ]
    data, out = tmp_path / "full.jsonl", tmp_path / "subsets"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    env = dict(os.environ, JAX_PLATFORMS="cpu", PYTHONPATH=str(root))

    def run(*flags):
        cmd = [sys.executable, "scripts/data_subsets.py", "--config", "configs/entropy_study.py:smoke"]
        cmd += [f"--config.data.path={data}", f"--out={out}", *flags]
        return subprocess.run(cmd, cwd=root, env=env, capture_output=True, text=True, timeout=120)

    proc = run("--k=4", "--sizes=616,8", "--batch=64")
    assert proc.returncode == 0, proc.stderr[-2000:]
    summary = json.loads((out / "subsets.json").read_text())
    assert summary["k"] == 4 and summary["sizes"] == [616, 8] and summary["rows_used"] == 700
    assert set(summary["subsets"]) == {"kmeans_616", "random_616", "kmeans_8", "random_8"}
    by_id = {r["id"]: r for r in rows}
    picked = {}
    for name, s in summary["subsets"].items():
        recs = [json.loads(line) for line in (out / s["file"]).read_text().splitlines()]
        assert len(recs) == s["size"] and all(by_id[r["id"]] == r for r in recs)  # source records, unchanged
        assert s["mean_pairwise_distance"] > 0
        picked[name] = {r["id"] for r in recs}
    assert picked["kmeans_8"] <= picked["kmeans_616"]  # taken from the top clusters: nested
    assert summary["subsets"]["kmeans_8"]["clusters"] == 1

    too_big = run("--sizes=701")
    lines = too_big.stderr.strip().splitlines()
    assert too_big.returncode == 2 and lines[-1].startswith("error: ") and "701" in lines[-1], too_big.stderr[-2000:]

    study = root / "configs" / "entropy_study.py"
    c = load_config_file(f"{study}:data_subset=kmeans_616,subsets_dir={out}")
    assert c.data.path == str(out / "kmeans_616.jsonl")
    with pytest.raises(ValueError, match=r"random_1246\.jsonl not found.*scripts/data_subsets\.py"):
        load_config_file(f"{study}:data_subset=random_1246,subsets_dir={out}")
