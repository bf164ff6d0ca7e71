"""The training-data-diversity experiment of "Revisiting Entropy" (arXiv 2511.05993, section 6.3 / App. D.3):
cluster the training problems by embedding (K-means) and build subsets of the same size but different
diversity, then train on each.

Embeddings are the policy's own mean final-norm hidden state over the problem's prompt tokens
(:func:`problem_embeddings`), as D.3's "mean-pooled token embedding from the final layer of
Qwen2.5-Math-7B" (after the final norm and over the chat-templated prompt: ours). :func:`kmeans` is a
seeded numpy K-means (k-means++ start, Lloyd iterations). :func:`diversity_subsets` draws, for a subset of
``size`` problems, ``"high"``: round-robin over all clusters (as many clusters as possible, evenly);
``"low"``: whole clusters, the largest first, until ``size`` is reached (as few clusters as possible);
``"random"``: uniform, the control. Each subset's diversity is measured by :func:`mean_pairwise_distance`
of its embeddings. Write the subsets with :func:`write_subsets` and point ``data.path`` at each file;
:func:`build_subset_files` (``scripts/data_subsets.py``) writes Table 3's ``kmeans_<size>`` / ``random_<size>``
files from a trainer config.
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


def _sq_dist(x, sq_x, c):
    """[N, k] squared distances as |x|^2 - 2 x.c + |c|^2 (no [N, k, D] intermediate), clipped at 0."""
    return np.maximum(sq_x[:, None] - 2.0 * (x @ c.T) + np.einsum("kd,kd->k", c, c)[None], 0.0)


def kmeans(x, k: int, *, seed: int = 0, iters: int = 50) -> tuple[np.ndarray, np.ndarray]:
    """(labels [N], centres [k, D]) of ``x`` [N, D] (float64 internally; k-means++ initialisation).

    Memory is O(N*D + N*k): distances use the |x|^2 - 2 x.c + |c|^2 form, so 17k x 3584 embeddings fit."""
    x = np.asarray(x, np.float64)
    n = x.shape[0]
    if not 1 <= k <= n:
        raise ValueError(f"kmeans: k={k} must be in [1, N={n}]")
    rng = np.random.default_rng(seed)
    sq_x = np.einsum("nd,nd->n", x, x)
    centres = [x[rng.integers(n)]]
    d2 = _sq_dist(x, sq_x, centres[0][None])[:, 0]
    for _ in range(1, k):
        p = d2 / d2.sum() if d2.sum() > 0 else np.full(n, 1.0 / n)
        centres.append(x[rng.choice(n, p=p)])
        d2 = np.minimum(d2, _sq_dist(x, sq_x, centres[-1][None])[:, 0])
    c = np.asarray(centres)
    labels = np.zeros(n, np.int64)
    for it in range(iters):
        new = np.argmin(_sq_dist(x, sq_x, c), axis=1)
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


def mean_pairwise_distance(x, *, chunk: int = 1024) -> float:
    """Mean Euclidean distance between distinct rows of ``x`` (the subsets' diversity); NaN below 2 rows.
    Computed ``chunk`` rows at a time (memory O(chunk*N + N*D))."""
    x = np.asarray(x, np.float64)
    n = x.shape[0]
    if n < 2:
        return float("nan")
    sq = np.einsum("nd,nd->n", x, x)
    total = 0.0
    for i in range(0, n, chunk):
        d2 = np.maximum(sq[i : i + chunk, None] - 2.0 * (x[i : i + chunk] @ x.T) + sq[None], 0.0)
        rows = np.arange(d2.shape[0])
        d2[rows, i + rows] = 0.0  # a row's distance to itself (rounding can leave ~1e-12)
        total += float(np.sqrt(d2).sum())
    return total / (n * (n - 1))


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


TABLE3_SIZES = (10001, 5031, 2538, 1246, 616)  # Revisiting App. D.3: "subsets of 10,001, 5,031, 2,538, 1,246, and 616"
DEFAULT_K = 16  # ours: D.3's K is lost from our text; 16 keeps the 616 subset inside the largest cluster
SUBSET_KINDS = {"kmeans": "low", "random": "random"}  # file prefix -> diversity_subsets key


def _jsonable(value):
    return value.tolist() if hasattr(value, "tolist") else str(value)


def build_subset_files(
    c, out_dir, sizes=TABLE3_SIZES, *, k: int = DEFAULT_K, seed: int = 0, batch: int = 16, log=lambda *a, **kw: None
) -> dict:
    """Table 3's training files from a trainer config ``c`` (its ``data.path`` is the full training file):
    every prompt the trainer would keep (same template, tokenizer and ``rollout.max_prompt_len`` filter) is
    embedded with the config's model (:func:`problem_embeddings`), clustered (:func:`kmeans`), and for each
    size ``OUT/kmeans_<size>.jsonl`` (whole clusters, largest first: D.3's "selecting samples from the top
    clusters") and ``OUT/random_<size>.jsonl`` are written with the source file's records unchanged, plus
    ``OUT/subsets.json``. Returns that summary. A size above the usable rows is a ``ValueError``."""
    import jax

    from jaxrlvr.data.loading import iter_records
    from jaxrlvr.data.pipeline import prompt_dataset_from_config
    from jaxrlvr.train import config as config_lib
    from jaxrlvr.train.setup import build_model, build_tokenizer, filter_long_prompts

    c, notes = config_lib.resolve_sources(c)
    if c.data.source != "file":
        raise ValueError("no training file: give the full data set with --config.data.path=FULL.jsonl")
    sizes = [int(s) for s in sizes]
    if not sizes or min(sizes) < 1:
        raise ValueError(f"sizes={sizes}: give positive subset sizes (e.g. --sizes 10001,5031,2538,1246,616)")
    for note in notes:
        log(note)
    tokenizer = build_tokenizer(c)
    ds = prompt_dataset_from_config(c, tokenizer)
    skipped = {line for line, _ in ds.skipped}
    records = [rec for line, rec in iter_records(ds.path, ds.config.format) if line not in skipped]
    if len(records) != len(ds.rows):  # every record is either a row or skipped
        raise ValueError(f"{ds.path}: {len(records)} records vs {len(ds.rows)} rows; cannot map rows to records")
    all_rows = list(ds.rows)  # every prompt is embedded: read them all (ds.rows reads a row when indexed)
    for i, row in enumerate(all_rows):
        row["_record"] = i
    rows, n_long = filter_long_prompts(c, all_rows, "training")
    too_big = [s for s in sizes if s > len(rows)]
    if too_big:
        raise ValueError(
            f"subset size {too_big[0]} is larger than the {len(rows)} usable rows of {ds.path} "
            f"({n_long} longer than rollout.max_prompt_len, {len(ds.skipped)} skipped); give smaller --sizes"
        )
    if not 1 <= k <= len(rows):
        raise ValueError(f"--k={k} must be in [1, {len(rows)}] (the usable rows)")
    log(f"embedding {len(rows)} prompts of {ds.path}")
    model_cfg, params = build_model(c, tokenizer, jax.random.fold_in(jax.random.key(c.seed), 1), log=log)
    emb = problem_embeddings(model_cfg, params, [r["prompt_ids"] for r in rows], batch=batch, pad_id=tokenizer.pad_id)
    labels, _ = kmeans(emb, k, seed=seed)
    out = pathlib.Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    subsets = {}
    for size in sizes:
        picked = diversity_subsets(labels, size, seed=seed)
        for prefix, key in SUBSET_KINDS.items():
            name, idx = f"{prefix}_{size}", picked[key]
            with open(out / f"{name}.jsonl", "w", encoding="utf-8") as f:
                for i in idx:
                    rec = records[rows[int(i)]["_record"]]
                    f.write(json.dumps(rec, ensure_ascii=False, default=_jsonable) + "\n")
            subsets[name] = {
                "file": f"{name}.jsonl",
                "size": int(size),
                "clusters": int(np.unique(labels[idx]).size),
                "mean_pairwise_distance": mean_pairwise_distance(emb[idx]),
            }
            mpd = subsets[name]["mean_pairwise_distance"]
            log(f"{name}: {subsets[name]['clusters']} clusters, mean pairwise distance {mpd:.4g}")
    model = c.model.hf_path or c.model.init_ckpt or "the config's model (random init)"
    summary = {
        "source": str(ds.path),
        "rows_used": len(rows),
        "rows_dropped_overlong": n_long,
        "rows_skipped_bad": len(ds.skipped),
        "sizes": sizes,
        "k": k,
        "seed": seed,
        "cluster_sizes": sorted((int(n) for n in np.bincount(labels, minlength=k)), reverse=True),
        "embedding": f"mean final-norm hidden state over the {c.data.template!r} prompt tokens of {model}",
        "subsets": subsets,
    }
    (out / "subsets.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary
