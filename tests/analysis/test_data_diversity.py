"""Training-data diversity subsets: K-means on the policy's own problem embeddings -> high / low / random."""

import numpy as np

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
