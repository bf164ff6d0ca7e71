"""Checkpoint selection on a validation benchmark (Revisiting, arXiv 2511.05993, App. B: "AIME 2025 served as
the validation set, and the best checkpoint was evaluated on all other benchmarks").

- ``select_checkpoint(workdir, tokenizer, config)`` evaluates every step folder of a run's ``checkpoints/``
  (or the ``steps`` / ``paths`` given) on ``config.benchmarks``' first entry -- the validation benchmark,
  e.g. ``aime25`` -- and returns the scores and the best step. Ties go to the earliest step (ours: the
  least-trained of equally good policies). With ``config.out_dir`` each step's results go to
  ``OUT/step_NNNNNN/`` and the selection to ``OUT/selection.json``.
- ``select_and_evaluate(c)``: the command line's ``--config.select=best`` (configs/eval.py, preset
  ``revisiting``): the best kept checkpoint by validation (scores sampled now, or recorded by the trainer's
  periodic validation), then evaluated on the test benchmarks; ``selection.json`` and ``summary.json``
  name the chosen checkpoint's path, step and validation score.
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
    paths: Mapping[int, pathlib.Path] | None = None,
    log: Callable[[str], None] | None = print,
) -> dict:
    """Evaluates the run's checkpoints on the validation benchmark (``config.benchmarks[0]``) and picks the
    best by ``summary[metric]`` (``acc_at_n``: mean accuracy over the N samples, as the papers report).

    ``paths``: ``{step: folder}`` to evaluate instead of the run's ``checkpoints/`` (e.g.
    :func:`candidate_checkpoints`). Returns ``{"validation", "metric", "scores": {step: score}, "best_step",
    "best_checkpoint"}``."""
    from jaxrlvr.runs import load_params

    if not config.benchmarks:
        raise ValueError("select_checkpoint needs a validation benchmark in config.benchmarks (e.g. aime25)")
    validation = config.benchmarks[0]
    found = dict(sorted(paths.items())) if paths is not None else checkpoint_steps(workdir)
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


# ------------------------------------------------------------------ the checkpoint of a run's best validation
BEST_DIR = "best_validated"  # WORKDIR/best_validated/: params of the best periodic validation (eval.keep_best)
BEST_INFO = "validation.json"


def candidate_checkpoints(workdir: str | os.PathLike) -> dict[int, pathlib.Path]:
    """``{step: folder}`` of every checkpoint a run kept: ``checkpoints/<step>`` and, when the trainer kept
    the best-validated policy (``eval.keep_best``), ``best_validated/`` at the step recorded with it."""
    wd = pathlib.Path(workdir).expanduser()
    found = {}
    if (wd / "checkpoints").is_dir():
        found = {int(p.name): p for p in (wd / "checkpoints").iterdir() if p.is_dir() and p.name.isdigit()}
    info = wd / BEST_DIR / BEST_INFO
    if info.is_file():
        found.setdefault(int(json.loads(info.read_text())["step"]), wd / BEST_DIR)
    if not found:
        raise FileNotFoundError(
            f"{wd} has no checkpoints/<step> folders and no {BEST_DIR}/: select=best needs a training run's "
            "workdir (use --config.select=none to evaluate one checkpoint as it is)"
        )
    return dict(sorted(found.items()))


def recorded_scores(workdir: str | os.PathLike, validation: str, metric: str = "acc_at_n") -> dict[int, float]:
    """``{step: score}`` of the validation benchmark from the run's periodic evaluations
    (``WORKDIR/eval/step_NNNNNN/summary.json``, written with ``eval.every``)."""
    root = pathlib.Path(workdir).expanduser() / "eval"
    out = {}
    for d in sorted(root.glob("step_*")) if root.is_dir() else []:
        f = d / "summary.json"
        if not (f.is_file() and d.name[5:].isdigit()):
            continue
        payload = json.loads(f.read_text())
        for s in payload.get("summaries", []):
            if s.get("benchmark") == validation and isinstance(s.get(metric), (int, float)):
                out[int(d.name[5:])] = float(s[metric])
    return out


def select_and_evaluate(c, *, log: Callable[[str], None] | None = print) -> dict:
    """What ``scripts/evaluate.py --config.select=best`` runs (configs/eval.py): pick the checkpoint of the run
    ``c.ckpt`` with the best ``c.select_metric`` on ``c.validation`` (AIME 2025 in Revisiting's protocol), then
    evaluate it on ``c.benchmarks``.

    ``c.select_scores="evaluate"`` samples every kept checkpoint on the validation benchmark now, with this
    config's sampling (results in ``OUT/validation/step_NNNNNN/``); ``"recorded"`` takes the scores the run
    logged during training (``eval.every``) for the steps whose checkpoint was kept. Writes
    ``OUT/selection.json`` and adds ``"selection"`` (checkpoint path, step, validation score) to
    ``OUT/summary.json``. Returns the selection."""
    from jaxrlvr.eval.runner import load_eval_tokenizer, prepare_benchmarks
    from jaxrlvr.eval.scoring import format_summary_table
    from jaxrlvr.runs import load_params

    if c.select != "best":
        raise ValueError(f"select={c.select!r}: use 'best' (pick by validation) or 'none'")
    if c.select_scores not in ("evaluate", "recorded"):
        raise ValueError(f"select_scores={c.select_scores!r}: use 'evaluate' or 'recorded'")
    if not c.validation:
        raise ValueError("select=best needs a validation benchmark: set --config.validation=aime25")
    workdir = pathlib.Path(c.ckpt).expanduser()
    found = candidate_checkpoints(workdir)
    config = EvalConfig.from_mapping(c)
    tokenizer = load_eval_tokenizer(c.tokenizer, c.ckpt)
    prepared = prepare_benchmarks(config, tokenizer)  # data problems surface before any checkpoint is loaded
    out = pathlib.Path(config.out_dir).expanduser() if config.out_dir else None
    metric = c.select_metric
    if c.select_scores == "recorded":
        recorded = recorded_scores(workdir, c.validation, metric)
        scores = {s: v for s, v in recorded.items() if s in found}
        if not scores:
            raise ValueError(
                f"the run {workdir} recorded no {c.validation} {metric} at a kept checkpoint (recorded steps "
                f"{sorted(recorded)}, kept {sorted(found)}): train with eval.benchmarks={c.validation} and "
                "eval.keep_best=True, or use --config.select_scores=evaluate"
            )
    else:
        val_cfg = dataclasses.replace(config, benchmarks=(c.validation,), max_new_tokens_by_benchmark=())
        sel = select_checkpoint(
            workdir,
            tokenizer,
            dataclasses.replace(val_cfg, out_dir=str(out / "validation") if out is not None else None),
            metric=metric,
            paths=found,
            log=log,
        )
        scores = sel["scores"]
    best = best_step(scores)
    selection = {
        "run": str(workdir.absolute()),
        "validation": c.validation,
        "metric": metric,
        "scores_from": c.select_scores,
        "scores": {str(s): v for s, v in sorted(scores.items())},
        "step": best,
        "checkpoint": str(found[best].absolute()),
        "validation_score": scores[best],
    }
    if log is not None:
        log(f"selected step {best} ({found[best]}): {c.validation} {metric} = {scores[best]:.4f}")
    model_cfg, params = load_params(found[best])
    results = evaluate(model_cfg, params, tokenizer, config, log=log, prepared=prepared)
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        (out / "selection.json").write_text(json.dumps(selection, indent=2) + "\n")
        summary = out / "summary.json"
        payload = json.loads(summary.read_text()) if summary.is_file() else {}
        summary.write_text(json.dumps({**payload, "selection": selection}, indent=2) + "\n")
    if log is not None:
        log(format_summary_table([r.summary for r in results.values()]))
    return {"selection": selection, "results": results}
