"""Checkpoint selection on a validation benchmark ("Revisiting Entropy", arXiv 2511.05993: the reported
checkpoint is the one with the best AIME25 score).

``select_checkpoint(workdir, tokenizer, config)`` evaluates every step folder of a run's ``checkpoints/``
(or the ``steps`` given) on ``config.benchmarks``' first entry -- the validation benchmark, e.g.
``aime25`` -- and returns the scores and the best step. Ties go to the earliest step (our choice: the
least-trained of equally good policies). With ``config.out_dir`` each step's results go to
``OUT/step_NNNNNN/`` and the selection to ``OUT/selection.json``. Evaluate the chosen checkpoint on the
test benchmarks with :func:`jaxrlvr.eval.evaluate` (or ``scripts/evaluate.py --config.ckpt=...``).
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import pathlib
from collections.abc import Callable, Mapping

from jaxrlvr.eval.config import EvalConfig
from jaxrlvr.eval.runner import evaluate


def checkpoint_steps(workdir: str | os.PathLike) -> dict[int, pathlib.Path]:
    """``{step: folder}`` of the run's checkpoints (``WORKDIR/checkpoints/<step>``), sorted by step."""
    d = pathlib.Path(workdir).expanduser() / "checkpoints"
    if not d.is_dir():
        raise FileNotFoundError(f"{d} does not exist: not a run directory with checkpoints")
    steps = {int(p.name): p for p in d.iterdir() if p.is_dir() and p.name.isdigit()}
    if not steps:
        raise FileNotFoundError(f"no step folders in {d}")
    return dict(sorted(steps.items()))


def best_step(scores: Mapping[int, float]) -> int:
    """The step with the highest finite score; ties to the earliest step. Error when none is finite."""
    finite = {s: v for s, v in scores.items() if v is not None and math.isfinite(v)}
    if not finite:
        raise ValueError(f"no finite validation score among steps {sorted(scores)}")
    top = max(finite.values())
    return min(s for s, v in finite.items() if v == top)


def select_checkpoint(
    workdir: str | os.PathLike,
    tokenizer,
    config: EvalConfig,
    *,
    metric: str = "acc_at_n",
    steps=None,
    log: Callable[[str], None] | None = print,
) -> dict:
    """Evaluates the run's checkpoints on the validation benchmark (``config.benchmarks[0]``) and picks the
    best by ``summary[metric]`` (``acc_at_n``: mean accuracy over the N samples, as the papers report).

    Returns ``{"validation", "metric", "scores": {step: score}, "best_step", "best_checkpoint"}``."""
    from jaxrlvr.runs import load_params

    if not config.benchmarks:
        raise ValueError("select_checkpoint needs a validation benchmark in config.benchmarks (e.g. aime25)")
    validation = config.benchmarks[0]
    found = checkpoint_steps(workdir)
    if steps is not None:
        missing = sorted(set(steps) - set(found))
        if missing:
            raise ValueError(f"steps {missing} have no checkpoint in {workdir} (have {list(found)})")
        found = {s: found[s] for s in sorted(steps)}
    out = pathlib.Path(config.out_dir).expanduser() if config.out_dir else None
    scores = {}
    for step, path in found.items():
        model_cfg, params = load_params(path)
        cfg = dataclasses.replace(
            config,
            benchmarks=(validation,),
            out_dir=str(out / f"step_{step:06d}") if out is not None else None,
        )
        results = evaluate(model_cfg, params, tokenizer, cfg, log=None)
        summary = next(iter(results.values())).summary
        if metric not in summary:
            raise ValueError(f"metric {metric!r} is not in the summary (have {sorted(summary)})")
        scores[step] = float(summary[metric])
        if log is not None:
            log(f"step {step}: {validation} {metric} = {scores[step]:.4f}")
    best = best_step(scores)
    result = {
        "validation": validation,
        "metric": metric,
        "scores": scores,
        "best_step": best,
        "best_checkpoint": str(found[best]),
    }
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        (out / "selection.json").write_text(json.dumps(result, indent=2) + "\n")
    return result
