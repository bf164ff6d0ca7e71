"""Aggregation of a replication study (``scripts/study.py``): variants x seeds of training runs laid out as
``DIR/<variant>/seed_<S>/``, reduced to per-variant means with 95% confidence intervals over seeds, curves
with seed bands, and a table of the paper claims tested. Writes ``DIR/study.json``, ``DIR/study.html`` and
its PNGs (see docs/study.md).
"""

from __future__ import annotations

import html
import json
import math
import os
import pathlib
from collections.abc import Mapping, Sequence

import numpy as np

from jaxrlvr.analysis.entropy import ema
from jaxrlvr.analysis.report import _fmt, _json_safe
from jaxrlvr.runs import load_run

# metric -> (label, how it is computed from one run)
METRICS = {
    "accuracy_before": "held-out accuracy before RL",
    "accuracy_after": "held-out accuracy after RL",
    "accuracy_gain": "after - before",
    "entropy_final": "token entropy, mean of the last 10% of steps",
    "entropy_mean": "token entropy, mean over all steps",
    "entropy_pos": "entropy of correct responses (mean over steps)",
    "entropy_neg": "entropy of incorrect responses (mean over steps)",
    "length_final": "response length, mean of the last 10% of steps",
    "clipfrac": "clip fraction (mean over steps)",
    "clipfrac_low": "clip fraction, lower side",
    "clipfrac_high": "clip fraction, upper side",
    "train_accuracy_final": "training-batch accuracy, mean of the last 10% of steps",
}
CURVES = {"entropy": "token entropy (nats)", "accuracy": "training-batch accuracy", "response_length_mean": "length"}
HOLDS, OPPOSITE, NOT_SEPARABLE, NOT_RUN = "holds", "opposite", "not separable at this scale", "not run"


def run_dir(study_dir: str | os.PathLike, variant: str, seed: int) -> pathlib.Path:
    return pathlib.Path(study_dir) / variant / f"seed_{seed}"


def run_numbers(workdir: str | os.PathLike) -> dict:
    """The per-run numbers of ``METRICS`` and the ``CURVES`` (steps + values) of one finished run."""
    run = load_run(workdir)
    n = len(run.metrics)
    tail = max(1, int(math.ceil(0.1 * n)))

    def mean(key, last=None):
        v = run.series(key)[-last:] if last else run.series(key)
        v = v[np.isfinite(v)]
        return float(v.mean()) if v.size else math.nan

    s = run.summary
    before, after = s.get("heldout_accuracy_before", math.nan), s.get("heldout_accuracy_after", math.nan)
    out = {
        "accuracy_before": float(before),
        "accuracy_after": float(after),
        "accuracy_gain": float(after) - float(before),
        "entropy_final": mean("entropy", tail),
        "entropy_mean": mean("entropy"),
        "entropy_pos": mean("entropy_pos"),
        "entropy_neg": mean("entropy_neg"),
        "length_final": mean("response_length_mean", tail),
        "clipfrac": mean("clipfrac"),
        "clipfrac_low": mean("clipfrac_low"),
        "clipfrac_high": mean("clipfrac_high"),
        "train_accuracy_final": mean("accuracy", tail),
        "wall_seconds": float(s.get("wall_seconds", math.nan)),
    }
    curves = {"steps": run.steps.tolist(), **{k: run.series(k).tolist() for k in CURVES}}
    return {"metrics": out, "curves": curves}


def mean_ci(values: Sequence[float], level: float = 0.95) -> dict:
    """Mean and two-sided Student-t confidence interval over seeds (NaNs dropped): ``{"mean", "lo", "hi",
    "n"}``; with one value the interval is that point's NaN-width (lo = hi = NaN)."""
    from scipy.stats import t

    v = np.asarray([x for x in values if x is not None and math.isfinite(x)], np.float64)
    if v.size == 0:
        return {"mean": math.nan, "lo": math.nan, "hi": math.nan, "n": 0}
    m = float(v.mean())
    if v.size < 2:
        return {"mean": m, "lo": math.nan, "hi": math.nan, "n": 1}
    half = float(t.ppf(0.5 + level / 2, v.size - 1) * v.std(ddof=1) / math.sqrt(v.size))
    return {"mean": m, "lo": m - half, "hi": m + half, "n": int(v.size)}


def judge_claim(
    claim: Mapping, per_variant: Mapping[str, Mapping[str, dict]], runs: Mapping | None = None, seeds=()
) -> dict:
    """Observed direction of ``a`` vs ``b`` on ``metric`` (seed means) and the verdict.

    The runs of one seed share their SFT warm start, data order and rollout seed across variants, so the
    comparison is paired: ``paired`` is the mean and 95% t-interval of the per-seed differences a - b over
    the seeds both variants finished (given ``runs`` / ``seeds``). Verdict: ``holds`` / ``opposite`` when
    that interval excludes 0 on the expected / other side, else ``not separable at this scale`` (always so
    with fewer than 2 paired seeds); ``not run`` when a side is missing. ``unpaired_separated`` records the
    stricter unpaired test too (the two variants' own intervals do not overlap). Without ``runs`` the
    verdict falls back to that unpaired test. No correction for testing many claims at once: at 95% about
    one claim in 20 separates by chance (docs/study.md)."""
    a, b, metric = claim["a"], claim["b"], claim["metric"]
    out = dict(claim)
    sa, sb = per_variant.get(a, {}).get(metric), per_variant.get(b, {}).get(metric)
    if not sa or not sb or not sa["n"] or not sb["n"]:
        return dict(out, observed="-", difference=math.nan, verdict=NOT_RUN, paired=mean_ci([]))
    diff = sa["mean"] - sb["mean"]
    observed = ">" if diff > 0 else "<" if diff < 0 else "="
    unpaired = sa["n"] > 1 and sb["n"] > 1 and (sa["lo"] > sb["hi"] or sb["lo"] > sa["hi"])
    paired = mean_ci([])
    if runs is not None:
        pairs = [
            runs[f"{a}/seed_{s}"]["metrics"][metric] - runs[f"{b}/seed_{s}"]["metrics"][metric]
            for s in seeds
            if f"{a}/seed_{s}" in runs and f"{b}/seed_{s}" in runs
        ]
        paired = mean_ci(pairs)
        side = None
        if paired["n"] > 1:
            side = ">" if paired["lo"] > 0 else "<" if paired["hi"] < 0 else None
    else:
        side = observed if unpaired else None
    if side is None:
        verdict = NOT_SEPARABLE
    else:
        verdict = HOLDS if side == claim["expect"] else OPPOSITE
    return dict(out, observed=observed, difference=diff, verdict=verdict, paired=paired, unpaired_separated=unpaired)


def aggregate(study_dir, variants: Sequence[str], seeds: Sequence[int], claims: Sequence[Mapping] = ()) -> dict:
    """Reads every finished run (one with ``summary.json``) of the grid; returns the ``study.json`` payload:
    ``variants`` -> ``{"seeds": [...], "metrics": {name: mean_ci}, "settings": {...}}``, ``runs`` (per-run
    numbers), ``claims`` (judged) and ``missing`` (runs without a summary)."""
    runs, per_variant, settings, missing = {}, {}, {}, []
    for v in variants:
        done = []
        for s in seeds:
            d = run_dir(study_dir, v, s)
            if not (d / "summary.json").is_file():
                missing.append(f"{v}/seed_{s}")
                continue
            runs[f"{v}/seed_{s}"] = run_numbers(d)
            done.append(s)
            if v not in settings and (d / "config.json").is_file():
                settings[v] = run_settings(json.loads((d / "config.json").read_text()))
        per_variant[v] = {
            "seeds": done,
            "metrics": {m: mean_ci([runs[f"{v}/seed_{s}"]["metrics"][m] for s in done]) for m in METRICS},
            "settings": settings.get(v, {}),
        }
    metrics_only = {v: d["metrics"] for v, d in per_variant.items()}
    return {
        "variants": per_variant,
        "runs": runs,
        "claims": [judge_claim(c, metrics_only, runs, seeds) for c in claims],
        "missing": missing,
        "seeds": list(seeds),
    }


def run_settings(config: Mapping) -> dict:
    """The settings that tell variants apart, from a run's ``config.json``."""
    a, t, o = config.get("algo", {}), config.get("train", {}), config.get("optim", {})
    keys = (
        "clip_low", "clip_high", "loss_variant", "loss_agg_mode", "entropy_coef", "entropy_adaptive",
        "ppl_shaping", "ppl_alpha", "position_shaping", "position_direction", "pos_adv_mode", "pos_adv_lambda",
        "drop_negative_adv", "rand_pos_clip", "entropy_adv", "kl_coef",
    )  # fmt: skip
    out = {k: a[k] for k in keys if k in a}
    rows = config.get("rollout", {}).get("prompts_per_step", 0)
    out["updates_per_batch"] = rows // max(1, t.get("mini_batch_prompts", 1))
    for k in ("ppo_epochs", "ppl_window", "position_window", "num_steps"):
        out[k] = t.get(k)
    out["schedule"] = o.get("schedule")
    return out


# ---------------------------------------------------------------------------------------------- figures
def curve_figure(payload: dict, key: str, beta: float = 0.6):
    """One curve per variant: the seed mean of the EMA-smoothed curve, and a band from the seeds' minimum to
    maximum."""
    from jaxrlvr.analysis.plots import _plt

    plt = _plt()
    fig, ax = plt.subplots(figsize=(9, 5))
    cmap = plt.get_cmap("tab20")
    for i, (v, info) in enumerate(payload["variants"].items()):
        curves = [payload["runs"][f"{v}/seed_{s}"]["curves"] for s in info["seeds"]]
        if not curves:
            continue
        n = min(len(c["steps"]) for c in curves)
        if n == 0:
            continue
        steps = np.asarray(curves[0]["steps"][:n])
        ys = np.stack([ema(np.asarray(c[key][:n], np.float64), beta) for c in curves])
        color = cmap((2 * i) % 20 + (2 * i) // 20 % 2)  # dark shades first, then the light ones
        ax.plot(steps, np.nanmean(ys, 0), color=color, lw=1.5, label=v)
        if len(curves) > 1:
            ax.fill_between(steps, np.nanmin(ys, 0), np.nanmax(ys, 0), color=color, alpha=0.15, lw=0)
    ax.set_xlabel("RL step")
    ax.set_ylabel(CURVES[key])
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    return fig


def write_study(study_dir, name: str, variants, seeds, claims=(), extra: Mapping | None = None) -> pathlib.Path:
    """Aggregates the grid and writes ``study.json``, ``study.html``, ``study.md`` (the tables in Markdown) and
    ``study_<curve>.png`` into ``study_dir``; returns the HTML path."""
    from jaxrlvr.analysis.plots import save

    out = pathlib.Path(study_dir)
    payload = aggregate(out, variants, seeds, claims)
    payload = {"study": name, **dict(extra or {}), **payload}
    figures = []
    if payload["runs"]:
        for key in CURVES:
            figures.append(save(curve_figure(payload, key), out / f"study_{key}.png").name)
    payload["figures"] = figures
    (out / "study.json").write_text(json.dumps(_json_safe(payload), indent=2) + "\n")
    (out / "study.md").write_text(markdown_tables(payload))
    path = out / "study.html"
    path.write_text(render_html(payload))
    return path


def _ci(s: Mapping) -> str:
    if not s or not s.get("n"):
        return "-"
    if s["n"] < 2:
        return f"{_fmt(s['mean'])} (1 seed)"
    return f"{_fmt(s['mean'])} [{_fmt(s['lo'])}, {_fmt(s['hi'])}]"


def markdown_tables(payload: Mapping) -> str:
    """The variant and claims tables as Markdown (for docs/study.md)."""
    cols = [m for m in METRICS if m != "accuracy_gain"]
    lines = ["| variant | seeds | " + " | ".join(cols) + " |", "|---" * (len(cols) + 2) + "|"]
    for v, info in payload["variants"].items():
        cells = [_ci(info["metrics"][m]) for m in cols]
        lines.append(f"| {v} | {len(info['seeds'])} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "| claim | metric | expected | observed (a - b) | paired a - b [95% CI] | verdict |",
        "|---|---|---|---|---|---|",
    ]
    for c in payload["claims"]:
        lines.append(
            f"| {c['a']} vs {c['b']}: {c['where']} | {c['metric']} | {c['a']} {c['expect']} {c['b']} | "
            f"{c['observed']} ({_fmt(c['difference'])}) | {_ci(c.get('paired'))} | {c['verdict']} |"
        )
    return "\n".join(lines) + "\n"


def render_html(payload: Mapping) -> str:
    cols = list(METRICS)
    head = "".join(f"<th title='{html.escape(METRICS[m])}'>{html.escape(m)}</th>" for m in cols)
    rows = "".join(
        f"<tr><th>{html.escape(v)}</th><td>{len(info['seeds'])}</td>"
        + "".join(f"<td>{html.escape(_ci(info['metrics'][m]))}</td>" for m in cols)
        + "</tr>"
        for v, info in payload["variants"].items()
    )
    claim_rows = "".join(
        f"<tr><td>{html.escape(c['paper'])}</td><td style='text-align:left'>{html.escape(c['where'])}</td>"
        f"<td>{html.escape(c['metric'])}</td><td>{html.escape(c['a'])} {html.escape(c['expect'])} "
        f"{html.escape(c['b'])}</td><td>{html.escape(c['observed'])} ({_fmt(c['difference'])})</td>"
        f"<td>{html.escape(_ci(c.get('paired')))}</td><td><b>{html.escape(c['verdict'])}</b></td></tr>"
        for c in payload["claims"]
    )
    settings_rows = "".join(
        f"<tr><th>{html.escape(v)}</th><td style='text-align:left'><code>"
        f"{html.escape(json.dumps(info['settings']))}</code></td></tr>"
        for v, info in payload["variants"].items()
    )
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'><title>jaxrlvr study</title><style>",
        "body{font-family:sans-serif;max-width:1200px;margin:2em auto;color:#222}"
        "table{border-collapse:collapse;margin:1em 0;font-size:12px}"
        "td,th{border:1px solid #ccc;padding:3px 6px;text-align:right}th{background:#f4f4f4}img{max-width:100%}",
        "</style></head><body>",
        f"<h1>Study: {html.escape(str(payload.get('study')))}</h1>",
        f"<p>Seeds {html.escape(str(payload['seeds']))}. Cells: mean over seeds [95% t-interval]. "
        "Claims are paired by seed (the variants of a seed share the SFT start, data order and rollout seed): "
        "a claim holds (or is opposite) when the 95% t-interval of the per-seed differences a - b excludes 0 "
        "on the expected (or other) side; no correction for testing many claims.</p>",
        f"<h2>Variants</h2><table><tr><th>variant</th><th>seeds</th>{head}</tr>{rows}</table>",
        "<h2>Paper claims</h2><table><tr><th>paper</th><th>claim</th><th>metric</th><th>expected</th>"
        f"<th>observed (a - b)</th><th>paired a - b [95% CI]</th><th>verdict</th></tr>{claim_rows}</table>",
    ]
    if payload.get("missing"):
        parts.append(f"<p>Runs without a summary (not finished): {html.escape(', '.join(payload['missing']))}</p>")
    parts += [f"<figure><img src='{html.escape(f)}' alt='{html.escape(f)}'></figure>" for f in payload["figures"]]
    parts.append(f"<h2>Settings (from each run's config.json)</h2><table>{settings_rows}</table>")
    parts.append("</body></html>\n")
    return "\n".join(parts)
