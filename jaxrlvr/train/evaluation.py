"""Evaluation inside a run: held-out accuracy before / after RL, and the periodic benchmark evaluation."""

from __future__ import annotations

import pathlib

import jax
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
    if c.eval.get("keep_best", False):
        validation = ecfg.benchmarks[0]
        keep_best(workdir, model_cfg, params, step, validation, results[validation].summary["acc_at_n"], log)
    return out


def keep_best(workdir, model_cfg, params, step: int, validation: str, score: float, log, metric="acc_at_n") -> bool:
    """Saves ``params`` to ``WORKDIR/best_validated/`` (model_config.json + params/ + validation.json with the
    step, benchmark and score) when ``score`` beats the one kept there; ties keep the earlier step (as
    :func:`jaxrlvr.eval.select.best_step`). Every process takes part in the save (sharded params); process 0
    writes the JSON. ``validation.json`` is removed before and written after the params, so a save cut short
    leaves no claim of a best (the next validation saves again). Returns whether it saved."""
    import json
    import math

    from jaxrlvr.eval.select import BEST_DIR, BEST_INFO
    from jaxrlvr.models.checkpoint import save_params

    best = pathlib.Path(workdir).absolute() / BEST_DIR
    info = best / BEST_INFO
    if not math.isfinite(score):
        return False
    if info.is_file():
        kept = json.loads(info.read_text())
        if kept.get("benchmark") == validation and kept.get("metric") == metric and kept["score"] >= score:
            return False
    if jax.process_count() > 1:  # every process has decided before process 0 removes the old claim
        from jax.experimental import multihost_utils

        multihost_utils.sync_global_devices("jaxrlvr-best-validated")
    if sharding.is_main_process():
        info.unlink(missing_ok=True)
    save_params(best, model_cfg, params, force=True)
    if sharding.is_main_process():
        record = {"step": step, "benchmark": validation, "metric": metric, "score": float(score)}
        info.write_text(json.dumps(record, indent=2) + "\n")
    log(f"step {step}: best {validation} {metric} so far ({score:.4f}): params kept in {best}")
    return True
