"""The training-data-diversity experiment of "Revisiting Entropy" (arXiv 2511.05993, section 6.3 / App. D.3):
cluster the training problems by embedding (K-means) and build subsets of the same size but different
diversity, then train on each.

Embeddings are the policy's own mean final-norm hidden state over the problem's prompt tokens
(:func:`problem_embeddings`), so nothing has to be downloaded; the paper's embedding model may differ (our
choice). :func:`kmeans` is a seeded numpy K-means (k-means++ start, Lloyd iterations).
:func:`diversity_subsets` draws, for a subset of ``size`` problems, ``"high"``: round-robin over all
clusters (as many clusters as possible, evenly); ``"low"``: whole clusters, the largest first, until
``size`` is reached (as few clusters as possible); ``"random"``: uniform, the control. Each subset's
diversity is measured by :func:`mean_pairwise_distance` of its embeddings. Write the subsets with
:func:`write_subsets` and point ``data.path`` at each file.
"""

from __future__ import annotations

import json
import os
import pathlib
from collections.abc import Sequence

import numpy as np


def problem_embeddings(model_cfg, params, prompt_ids: Sequence[Sequence[int]], *, batch: int = 32, pad_id: int = 0):
    """[N, D] float32: the mean final-norm hidden state over each prompt's tokens (left-padded batches of
    ``batch`` prompts, padding masked out of the mean)."""
    import jax
    import jax.numpy as jnp

    from jaxrlvr.models import hidden_states

    @jax.jit
    def embed(p, ids, mask):
        h = hidden_states(model_cfg, p, ids, mask).astype(jnp.float32)
        m = mask[..., None].astype(jnp.float32)
        return jnp.sum(h * m, axis=1) / jnp.maximum(jnp.sum(m, axis=1), 1.0)

    if not prompt_ids:
        raise ValueError("problem_embeddings: no prompts")
    width = max(len(p) for p in prompt_ids)
    out = []
    for i in range(0, len(prompt_ids), batch):
        chunk = list(prompt_ids[i : i + batch])
        n = len(chunk)
        chunk += [chunk[-1]] * (batch - n)  # one compiled shape
        ids = np.full((batch, width), pad_id, np.int32)
        mask = np.zeros((batch, width), np.int32)
        for j, p in enumerate(chunk):
            ids[j, width - len(p) :], mask[j, width - len(p) :] = p, 1
        out.append(np.asarray(embed(params, ids, mask))[:n])
    return np.concatenate(out)


def kmeans(x, k: int, *, seed: int = 0, iters: int = 50) -> tuple[np.ndarray, np.ndarray]:
    """(labels [N], centres [k, D]) of ``x`` [N, D] (float64 internally; k-means++ initialisation)."""
    x = np.asarray(x, np.float64)
    n = x.shape[0]
    if not 1 <= k <= n:
        raise ValueError(f"kmeans: k={k} must be in [1, N={n}]")
    rng = np.random.default_rng(seed)
    centres = [x[rng.integers(n)]]
    for _ in range(1, k):
        d2 = np.min(((x[:, None, :] - np.asarray(centres)[None]) ** 2).sum(-1), axis=1)
        p = d2 / d2.sum() if d2.sum() > 0 else np.full(n, 1.0 / n)
        centres.append(x[rng.choice(n, p=p)])
    c = np.asarray(centres)
    labels = np.zeros(n, np.int64)
    for it in range(iters):
        new = np.argmin(((x[:, None, :] - c[None]) ** 2).sum(-1), axis=1)
        if it and np.array_equal(new, labels):
            break
        labels = new
        for j in range(k):
            if np.any(labels == j):
                c[j] = x[labels == j].mean(0)
    return labels, c


def diversity_subsets(labels, size: int, *, seed: int = 0) -> dict[str, np.ndarray]:
    """Index arrays of ``size`` problems: ``high`` (round-robin over clusters), ``low`` (largest clusters
    whole, fewest clusters), ``random`` (uniform)."""
    labels = np.asarray(labels)
    n = labels.size
    if not 1 <= size <= n:
        raise ValueError(f"diversity_subsets: size={size} must be in [1, N={n}]")
    rng = np.random.default_rng(seed)
    clusters = [rng.permutation(np.flatnonzero(labels == j)) for j in np.unique(labels)]
    high, depth = [], 0
    while len(high) < size:
        for members in clusters:
            if depth < members.size and len(high) < size:
                high.append(members[depth])
        depth += 1
    low = np.concatenate(sorted(clusters, key=lambda m: -m.size))[:size]
    return {
        "high": np.sort(np.asarray(high)),
        "low": np.sort(low),
        "random": np.sort(rng.choice(n, size, replace=False)),
    }


def mean_pairwise_distance(x) -> float:
    """Mean Euclidean distance between distinct rows of ``x`` (the subsets' diversity); NaN below 2 rows."""
    x = np.asarray(x, np.float64)
    if x.shape[0] < 2:
        return float("nan")
    d = np.sqrt(np.maximum(((x[:, None, :] - x[None]) ** 2).sum(-1), 0.0))
    return float(d.sum() / (x.shape[0] * (x.shape[0] - 1)))


def write_subsets(rows: Sequence[dict], subsets: dict[str, np.ndarray], out_dir: str | os.PathLike) -> dict:
    """Writes ``OUT/<name>.jsonl`` (the rows of each subset) and returns ``{name: path}``."""
    out = pathlib.Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {}
    for name, idx in subsets.items():
        path = out / f"{name}.jsonl"
        with open(path, "w", encoding="utf-8") as f:
            for i in idx:
                row = {k: v for k, v in rows[int(i)].items() if k != "prompt_ids"}
                f.write(json.dumps(row, ensure_ascii=False) + "\n")
        paths[name] = path
    return paths
