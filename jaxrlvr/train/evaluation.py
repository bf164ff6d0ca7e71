"""Evaluation inside a run: held-out accuracy before / after RL, and the periodic benchmark evaluation."""

from __future__ import annotations

import pathlib

import numpy as np

from jaxrlvr import sharding
from jaxrlvr.train import config as config_lib


def heldout_accuracy(c, model_cfg, params, tokenizer, rows, score_fn, seed, generate_fn=None) -> dict:
    """Mean correctness of ``data.heldout_samples`` samples per held-out problem at the rollout settings."""
    from jaxrlvr.sampling import generate

    generate = generate_fn or generate
    n = c.data.heldout_samples
    out = generate(
        model_cfg,
        params,
        [r["prompt_ids"] for r in rows],
        max_new_tokens=c.rollout.max_new_tokens,
        temperature=c.rollout.temperature,
        top_p=c.rollout.top_p,
        top_k=c.rollout.top_k,
        num_samples=n,
        eos_ids=tuple(tokenizer.eos_ids),
        pad_id=tokenizer.pad_id,
        seed=seed,
    )
    tokens, lengths = np.asarray(out.tokens), np.asarray(out.lengths)
    texts = [tokenizer.decode(tokens[i, : lengths[i]]) for i in range(tokens.shape[0])]
    correct = np.asarray(score_fn(texts, [r["answer"] for r in rows for _ in range(n)])).reshape(len(rows), n)
    return {
        "accuracy": float(correct.mean()),
        "pass_at_n": float(correct.any(1).mean()),
        "mean_length": float(lengths.mean()),
        "example": texts[0],
    }


def periodic_eval(c, model_cfg, params, tokenizer, workdir, step: int, log, generate_fn=None) -> dict:
    """Runs the configured benchmarks; returns ``eval/<bench>/<metric>`` entries for metrics.jsonl. Every
    process samples (on the mesh) and scores; process 0 writes the files."""
    from jaxrlvr.eval import evaluate

    out_dir = pathlib.Path(workdir) / "eval" / f"step_{step:06d}"
    ecfg = config_lib.eval_config(c, str(out_dir) if sharding.is_main_process() else None)
    results = evaluate(model_cfg, params, tokenizer, ecfg, sampler=generate_fn, log=log)
    out = {}
    for name, res in results.items():
        for key in ("acc_at_n", "maj_at_n", "mean_length"):
            if key in res.summary and isinstance(res.summary[key], (int, float)):
                out[f"eval/{name}/{key}"] = float(res.summary[key])
    return out
