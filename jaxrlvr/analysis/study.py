"""Aggregation of a replication study (``scripts/study.py``, issue 27).

The committed results, not the run directories, are the source of truth. As each run finishes,
:func:`record_run` reduces it to one row of ``RESULTS/runs.csv`` (full precision, :data:`COLUMNS`) and one
gzipped JSON of per-step curves in ``RESULTS/curves/``. :func:`write_report` then rebuilds everything from
those files alone: per-variant tables, the claims judged by :mod:`jaxrlvr.analysis.study_stats`
(``verdicts.json``), the figures and ``RESULTS/<study>.md``. See docs/study.md.
"""

from __future__ import annotations

import csv
import fcntl
import gzip
import json
import math
import os
import pathlib
from collections.abc import Mapping, Sequence

import numpy as np

from jaxrlvr.analysis import study_stats
from jaxrlvr.analysis.entropy import ema
from jaxrlvr.analysis.report import _fmt, _json_safe
from jaxrlvr.runs import load_run

# runs.csv columns after study, variant, seed: name -> how it is computed from one run
METRICS = {
    "accuracy_before": "held-out accuracy before RL (summary.json)",
    "accuracy_after": "held-out accuracy, mean of the last 3 periodic evaluations (data.heldout_every)",
    "accuracy_final_eval": "held-out accuracy of the final evaluation alone (summary.json)",
    "entropy_initial": "mean token entropy of the first RL step's rollouts (the SFT policy)",
    "entropy_final": "mean token entropy, mean of the last 10% of steps",
    "entropy_late": "mean token entropy, mean of the last 25% of steps",
    "entropy_ratio": "entropy_final / entropy_initial",
    "entropy_pos_final": "entropy of correct responses, last 10% of steps",
    "entropy_neg_final": "entropy of incorrect responses, last 10% of steps",
    "entropy_pos_drop": "entropy of correct responses: first 3 steps minus the 3 steps up to the plateau",
    "entropy_neg_drop": "the same for incorrect responses",
    "plateau_step": "first plateau step found by the stage detector (jaxrlvr.algos.stages); NaN: none",
    "length_initial": "mean response length (tokens) of the first RL step",
    "length_final": "mean response length, last 10% of steps",
    "length_change": "length_final / length_initial - 1",
    "clipfrac": "clip fraction, mean over steps",
    "clipfrac_low": "clip fraction on the lower side, mean over steps",
    "clipfrac_high": "clip fraction on the upper side, mean over steps",
    "train_accuracy_final": "training-batch accuracy, last 10% of steps",
    "wall_seconds": "the run's wall time (summary.json)",
}
COLUMNS = ["study", "variant", "seed", *METRICS]
CURVE_KEYS = ("entropy", "entropy_pos", "entropy_neg", "accuracy", "response_length_mean", "clipfrac",
              "heldout_accuracy")  # fmt: skip
FIGURES = {"entropy": "token entropy (nats)", "heldout_accuracy": "held-out accuracy",
           "response_length_mean": "response length (tokens)"}  # fmt: skip
LAST_EVALS = 3


def run_row(workdir: str | os.PathLike) -> tuple[dict, dict]:
    """(the :data:`METRICS` of one finished run, its per-step curves ``{"steps": [...], key: [...]}``)."""
    from jaxrlvr.algos.stages import detect_plateau_start

    run = load_run(workdir)
    n = len(run.metrics)
    tail, late = max(1, math.ceil(0.1 * n)), max(1, math.ceil(0.25 * n))

    def series(key):
        return np.asarray(run.series(key), np.float64) if n else np.zeros(0)

    def mean(v):
        v = v[np.isfinite(v)]
        return float(v.mean()) if v.size else math.nan

    ent, acc = series("entropy"), series("accuracy")
    plateau = detect_plateau_start(ent.tolist(), acc.tolist()) if n else None
    stop = plateau + 1 if plateau is not None else max(3, n // 3)

    def drop(key):
        v = series(key)
        return mean(v[:3]) - mean(v[max(0, stop - 3) : stop])

    evals = series("heldout_accuracy")
    evals = evals[np.isfinite(evals)]
    s = run.summary
    e0, l0 = (float(ent[0]) if n else math.nan), (float(series("response_length_mean")[0]) if n else math.nan)
    row = {
        "accuracy_before": float(s.get("heldout_accuracy_before", math.nan)),
        "accuracy_after": float(evals[-LAST_EVALS:].mean()) if evals.size else float(
            s.get("heldout_accuracy_after", math.nan)),
        "accuracy_final_eval": float(s.get("heldout_accuracy_after", math.nan)),
        "entropy_initial": e0,
        "entropy_final": mean(ent[-tail:]),
        "entropy_late": mean(ent[-late:]),
        "entropy_ratio": mean(ent[-tail:]) / e0 if e0 else math.nan,
        "entropy_pos_final": mean(series("entropy_pos")[-tail:]),
        "entropy_neg_final": mean(series("entropy_neg")[-tail:]),
        "entropy_pos_drop": drop("entropy_pos"),
        "entropy_neg_drop": drop("entropy_neg"),
        "plateau_step": float(plateau + 1) if plateau is not None else math.nan,
        "length_initial": l0,
        "length_final": mean(series("response_length_mean")[-tail:]),
        "length_change": mean(series("response_length_mean")[-tail:]) / l0 - 1 if l0 else math.nan,
        "clipfrac": mean(series("clipfrac")),
        "clipfrac_low": mean(series("clipfrac_low")),
        "clipfrac_high": mean(series("clipfrac_high")),
        "train_accuracy_final": mean(acc[-tail:]),
        "wall_seconds": float(s.get("wall_seconds", math.nan)),
    }  # fmt: skip
    curves = {"steps": run.steps.tolist(), **{k: series(k).tolist() for k in CURVE_KEYS}}
    return row, curves


def curves_path(results, study: str, variant: str, seed: int) -> pathlib.Path:
    return pathlib.Path(results) / "curves" / study / f"{variant}__seed_{seed}.json.gz"


def read_rows(results) -> list[dict]:
    """The rows of ``RESULTS/runs.csv`` (numbers as floats, seed as int); [] without the file."""
    path = pathlib.Path(results) / "runs.csv"
    if not path.is_file():
        return []
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    out = []
    for r in rows:
        row = {"study": r["study"], "variant": r["variant"], "seed": int(r["seed"])}
        row.update({k: float(r[k]) if r.get(k) not in (None, "") else math.nan for k in METRICS})
        out.append(row)
    return out


def has_result(results, study: str, variant: str, seed: int) -> bool:
    """A run is done when its row and its curves are in the results (it is then never re-run)."""
    key = (study, variant, seed)
    return curves_path(results, *key).is_file() and any(
        (r["study"], r["variant"], r["seed"]) == key for r in read_rows(results)
    )


def record_run(results, study: str, variant: str, seed: int, workdir) -> dict:
    """Reduces a finished run to its runs.csv row (replacing an older row of the same run) and its curves;
    safe against concurrent writers (an exclusive lock on ``RESULTS/.lock``)."""
    metrics, curves = run_row(workdir)
    results = pathlib.Path(results)
    results.mkdir(parents=True, exist_ok=True)
    path = curves_path(results, study, variant, seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    with gzip.open(path, "wt") as f:
        json.dump(_json_safe(curves), f)
    row = {"study": study, "variant": variant, "seed": seed, **metrics}
    with open(results / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        rows = [r for r in read_rows(results) if (r["study"], r["variant"], r["seed"]) != (study, variant, seed)]
        rows.append(row)
        rows.sort(key=lambda r: (r["study"], r["variant"], r["seed"]))
        tmp = results / "runs.csv.tmp"
        with open(tmp, "w", newline="") as f:
            w = csv.DictWriter(f, COLUMNS, lineterminator="\n")
            w.writeheader()
            for r in rows:
                w.writerow({k: (repr(float(v)) if k in METRICS else v) for k, v in r.items()})
        tmp.replace(results / "runs.csv")
    return row


# ---------------------------------------------------------------------------------------------- judging
def _value(rows_by_key, study, variant, seed, metric):
    r = rows_by_key.get((study, variant, seed))
    return r[metric] if r is not None else math.nan


def judge_claims(rows: Sequence[Mapping], claims: Sequence[Mapping], alpha: float = 0.05) -> list[dict]:
    """Judges the claims from runs.csv rows, one Holm family per paper (``claim["paper"]``): per claim its
    fields plus ``study``, ``margin`` (absolute; from ``margin_relative`` x the mean of ``b``), ``seeds``,
    the per-seed ``diffs`` and :func:`jaxrlvr.analysis.study_stats.judge_family`'s numbers."""
    by_key = {(r["study"], r["variant"], r["seed"]): r for r in rows}
    out = [None] * len(claims)
    for paper in dict.fromkeys(c["paper"] for c in claims):
        idx = [i for i, c in enumerate(claims) if c["paper"] == paper]
        prepared, diffs, margins = [], [], []
        for i in idx:
            c = dict(claims[i])
            study, mb = c.get("study", c["paper"]), c.get("metric_b", c["metric"])
            seeds = sorted({s for (st, v, s) in by_key if st == study and v == c["a"]}
                           & {s for (st, v, s) in by_key if st == study and v == c["b"]})  # fmt: skip
            d = [_value(by_key, study, c["a"], s, c["metric"]) - _value(by_key, study, c["b"], s, mb) for s in seeds]
            b_mean = np.nanmean([_value(by_key, study, c["b"], s, mb) for s in seeds]) if seeds else math.nan
            margin = c.get("margin") or (abs(float(b_mean)) * c.get("margin_relative", math.nan))
            prepared.append(dict(c, study=study, margin=margin, margin_relative=c.get("margin_relative"),
                                 seeds=seeds, diffs=d))  # fmt: skip
            diffs.append(d)
            margins.append(margin if margin == margin else math.nan)
        judged = study_stats.judge_family([{"expect": p["expect"]} for p in prepared], diffs, margins, alpha)
        for i, p, j in zip(idx, prepared, judged, strict=True):
            out[i] = {**p, **j}
    return out


def variant_table(rows: Sequence[Mapping], study: str) -> dict:
    """variant -> {"seeds": [...], metric: {"mean", "lo", "hi", "n"}} (95% t-interval over seeds)."""
    out = {}
    for r in rows:
        if r["study"] == study:
            out.setdefault(r["variant"], []).append(r)
    table = {}
    for v, rs in out.items():
        table[v] = {"seeds": sorted(r["seed"] for r in rs)}
        for m in METRICS:
            s = study_stats.paired_t([r[m] for r in rs])
            table[v][m] = {"mean": s["estimate"], "lo": s["interval"][0], "hi": s["interval"][1], "n": s["n"]}
    return table


# The testbed's required characteristics (issue 27), read from the baseline's rows: name -> (column, test, text)
CHARACTERISTICS = {
    "initial entropy >= 0.3 nats": ("entropy_initial", lambda x: x >= 0.3),
    "held-out accuracy before RL in [0.2, 0.6]": ("accuracy_before", lambda x: 0.2 <= x <= 0.6),
    "entropy falls to <= 0.5 of its start": ("entropy_ratio", lambda x: x <= 0.5),
    "the stage detector finds a plateau": ("plateau_step", lambda x: math.isfinite(x)),
    "mean length changes by >= 15%": ("length_change", lambda x: abs(x) >= 0.15),
    "clip fraction >= 1%": ("clipfrac", lambda x: x >= 0.01),
}


# Characteristics about a change in either direction: their mean over seeds is of the magnitudes (seeds whose
# length rises and seeds whose length falls both move it; a signed mean would cancel them)
MEAN_OF_MAGNITUDES = frozenset({"length_change"})


def characteristics(rows: Sequence[Mapping], study: str = "revisiting", variant: str = "baseline") -> list[dict]:
    """Each characteristic of :data:`CHARACTERISTICS` on ``study``/``variant``'s rows: ``column``, the
    per-seed ``values``, their ``mean`` (of magnitudes for :data:`MEAN_OF_MAGNITUDES`; a seed without a
    plateau makes the plateau's mean NaN), ``met_mean``
    (the mean meets it) and ``met`` (every seed meets it); None without rows."""
    mine = sorted((r for r in rows if r["study"] == study and r["variant"] == variant), key=lambda r: r["seed"])
    out = []
    for name, (col, test) in CHARACTERISTICS.items():
        vals = [float(r[col]) for r in mine]
        finite = [v for v in vals if math.isfinite(v)]
        mean = float(np.mean(np.abs(vals) if col in MEAN_OF_MAGNITUDES else vals)) if finite else math.nan
        out.append({
            "characteristic": name, "column": col, "values": vals, "mean": mean,
            "met_mean": bool(test(mean)) if vals else None,
            "met": all(test(v) for v in vals) if vals else None,
        })  # fmt: skip
    return out


def characteristics_table(found: Sequence[Mapping], label: str) -> str:
    lines = [f"Testbed characteristics (issue 27) on {label}: per seed, their mean (of magnitudes for the length"
             " change), and whether the mean and every seed meet it:", "",
             "| characteristic | runs.csv column | per seed | mean | met by the mean | met by every seed |",
             "|---|---|---|---|---|---|"]  # fmt: skip
    yes = lambda m: "-" if m is None else ("yes" if m else "**no**")  # noqa: E731
    for c in found:
        per_seed, mean = ", ".join(_fmt(v) for v in c["values"]) or "-", _fmt(c["mean"]) if c["values"] else "-"
        lines.append(f"| {c['characteristic']} | `{c['column']}` | {per_seed} | {mean} | {yes(c['met_mean'])} "
                     f"| {yes(c['met'])} |")  # fmt: skip
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------------- report
def read_curves(results, study: str, variant: str, seeds: Sequence[int]) -> list[dict]:
    out = []
    for s in seeds:
        p = curves_path(results, study, variant, s)
        if p.is_file():
            with gzip.open(p, "rt") as f:
                out.append(json.load(f))
    return out


def curve_figure(results, study: str, variants: Mapping[str, dict], key: str, beta: float = 0.6):
    """One line per variant: the seed mean of the EMA-smoothed curve (sparse curves: their evaluated
    steps), and a band from the seeds' minimum to maximum."""
    from jaxrlvr.analysis.plots import _plt

    plt = _plt()
    fig, ax = plt.subplots(figsize=(9, 5))
    cmap = plt.get_cmap("tab20")
    for i, (v, info) in enumerate(variants.items()):
        curves = read_curves(results, study, v, info["seeds"])
        ys, steps = [], None
        for c in curves:
            y = np.asarray([math.nan if x is None else x for x in c.get(key, [])], np.float64)
            st = np.asarray(c["steps"])
            ok = np.isfinite(y)
            if not ok.any():
                continue
            st, y = st[ok], y[ok]
            if steps is None or len(st) < len(steps):
                steps = st
            ys.append(ema(y, beta) if key != "heldout_accuracy" else y)
        if not ys:
            continue
        n = len(steps)
        y = np.stack([a[:n] for a in ys])
        color = cmap((2 * i) % 20 + (2 * i) // 20 % 2)
        ax.plot(steps, y.mean(0), color=color, lw=1.5, label=v)
        if len(ys) > 1:
            ax.fill_between(steps, y.min(0), y.max(0), color=color, alpha=0.15, lw=0)
    ax.set_xlabel("RL step")
    ax.set_ylabel(FIGURES[key])
    ax.set_title(study)
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    return fig


def _ci(s: Mapping) -> str:
    if not s or not s.get("n"):
        return "-"
    if s["n"] < 2:
        return f"{_fmt(s['mean'])} (1 seed)"
    return f"{_fmt(s['mean'])} [{_fmt(s['lo'])}, {_fmt(s['hi'])}]"


TABLE_METRICS = ("accuracy_before", "accuracy_after", "entropy_initial", "entropy_final", "entropy_late",
                 "length_initial", "length_final", "clipfrac", "plateau_step", "wall_seconds")  # fmt: skip


def markdown_report(study: str, table: Mapping, claims: Sequence[Mapping]) -> str:
    lines = [f"## {study}", "", "| variant | seeds | " + " | ".join(TABLE_METRICS) + " |",
             "|---" * (len(TABLE_METRICS) + 2) + "|"]  # fmt: skip
    for v, info in table.items():
        lines.append(f"| {v} | {len(info['seeds'])} | " + " | ".join(_ci(info[m]) for m in TABLE_METRICS) + " |")
    lines += ["", "| claim (quote, section) | a vs b | metric | expect | n | a - b [95% CI] | p | p (Holm) | "
              "margin | MDE | verdict |", "|---" * 11 + "|"]  # fmt: skip
    for c in claims:
        metric = c["metric"] + (f" vs {c['metric_b']}" if c.get("metric_b") else "")
        lines.append(
            f'| "{c["quote"]}" ({c["section"]}) | {c["a"]} vs {c["b"]} | {metric} | {c["expect"]} | {c["n"]} | '
            f"{_fmt(c['estimate'])} [{_fmt(c['interval'][0])}, {_fmt(c['interval'][1])}] | {_fmt(c['p'])} | "
            f"{_fmt(c['p_holm'])} | {_fmt(c['margin'])} | {_fmt(c['mde'])} | **{c['verdict']}** |"
        )
    return "\n".join(lines) + "\n"


def summary_line(claims: Sequence[Mapping]) -> str:
    """The README's one-line summary, from the verdict counts."""
    counts = {v: sum(c["verdict"] == v for c in claims) for v in (study_stats.HOLDS, study_stats.OPPOSITE,
              study_stats.EQUIVALENT, study_stats.NOT_SEPARABLE, study_stats.NOT_RUN)}  # fmt: skip
    runs = "; ".join(f"{k}: {n}" for k, n in counts.items() if n)
    return f"Study verdicts ({len(claims)} paper claims, Holm-corrected per paper; docs/study.md): {runs}."


def write_report(results, studies: Mapping[str, Sequence[str]], claims: Sequence[Mapping],
                 extra: Mapping | None = None) -> dict:  # fmt: skip
    """Rebuilds every table, verdict and figure from ``RESULTS/runs.csv`` and ``RESULTS/curves/``:
    ``verdicts.json``, ``<study>.md``, ``<study>_<curve>.png`` and ``summary.md`` (the README line).
    ``studies`` maps each study to its variants (table order)."""
    from jaxrlvr.analysis.plots import save

    results = pathlib.Path(results)
    results.mkdir(parents=True, exist_ok=True)
    rows = read_rows(results)
    judged = judge_claims(rows, claims)
    payload = {"claims": judged, **dict(extra or {})}
    figures = []
    for study, variants in studies.items():
        full = variant_table(rows, study)
        table = {v: full[v] for v in variants if v in full}
        mine = [c for c in judged if c["study"] == study]
        text = markdown_report(study, table, mine)
        if "baseline" in variants:
            found = characteristics(rows, study)
            payload.setdefault("testbed_characteristics", {})[study] = found
            text += "\n" + characteristics_table(found, f"{study}/baseline")
        (results / f"{study}.md").write_text(text)
        if table:
            for key in FIGURES:
                figures.append(save(curve_figure(results, study, table, key), results / f"{study}_{key}.png").name)
    (results / "verdicts.json").write_text(json.dumps(_json_safe(payload), indent=2) + "\n")
    line = summary_line(judged)
    (results / "summary.md").write_text(line + "\n")
    return {"claims": judged, "figures": figures, "summary": line, "rows": len(rows)}
