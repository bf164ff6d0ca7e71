"""``analyze_run`` / ``write_report``: every analysis of a run directory, as numbers, PNGs and one HTML page.

Inputs (a trainer work directory): ``metrics.jsonl`` (required), ``summary.json``, ``config.json``,
``rollouts/step_*.npz`` (+ ``.texts.json``) when the run dumped rollouts, and optional evaluations of
checkpoints in ``eval/step_NNNNNN/summary.json`` (``scripts/evaluate.py`` output) for the entropy-score
rank correlations. Outputs in ``DIR/analysis/``: ``report.html``, the PNGs beside it and ``analysis.json``.
"""

from __future__ import annotations

import dataclasses
import html
import json
import math
import os
import pathlib

import numpy as np

from jaxrlvr.analysis import findings, plots
from jaxrlvr.analysis.dump_settings import dump_schedule, dump_settings_table, measured_policy, mixed_settings
from jaxrlvr.analysis.entropy import ema, entropy_by_outcome, masked_mean, positional_profile
from jaxrlvr.analysis.prompts import prompt_entropy_html, run_prompt_entropy
from jaxrlvr.analysis.rollouts import RolloutDump, Run, load_run
from jaxrlvr.analysis.shift import (
    SMALL_SHIFT,
    ppl_group_summary,
    probability_shift,
    response_log_ppl,
    small_shift_share,
    top_shift_token_log_ppl,
)
from jaxrlvr.analysis.stages import plateau_diagnostics
from jaxrlvr.analysis.stats import calibration, entropy_score_correlations, logp_adv_covariance
from jaxrlvr.analysis.text import CATEGORIES, category_shares, group_diversity, quality_rates
from jaxrlvr.analysis.vocab import vocab_html, vocab_sections
from jaxrlvr.runs import find_eval_summaries, read_eval_summary  # noqa: F401 (read_eval_summary re-exported)


@dataclasses.dataclass(frozen=True)
class ReportOptions:
    """Knobs of the analysis (defaults follow the papers)."""

    beta: float = 0.6  # EMA of curves
    num_bins: int = 20  # positional bins
    shift_threshold: float = SMALL_SHIFT  # "barely moved"
    top_fraction: float = 0.2  # top-|shift| tokens and PPL groups
    pool_last: int = 4  # distribution figures pool the last N dumps
    max_dumps: int | None = None  # per-step numbers from at most N dumps (evenly spaced, last included)
    diversity_unit: str = "word"  # distinct-n over words or characters
    stage_kwargs: tuple = ()  # extra keyword arguments of detect_plateau_start, as (name, value) pairs
    model_sections: bool = True  # Eq. 4 / Eq. 6 on the last dump with the run's checkpoint (findings.py)
    impact_rows: int = 4  # Eq. 6: responses measured
    impact_per_row: int = 2  # Eq. 6: positions per response
    impact_k: int = 4  # Eq. 6: continuations per prefix (the paper: 32)
    prompt_entropy_prompts: int = 30  # Revisiting C.2 / C.3 on the kept checkpoints, prompts per set (0: off)


# ------------------------------------------------------------------------------------------ per dump
def dump_numbers(dump: RolloutDump, opts: ReportOptions = ReportOptions()) -> dict[str, float]:
    """The scalar analyses of one rollout dump (all floats; NaN where undefined)."""
    m = np.asarray(dump.mask) != 0
    pos = dump.positive
    shift = probability_shift(dump.old_logp, dump.new_logp, m)
    ent = entropy_by_outcome(dump.entropy, m, pos)
    lp = response_log_ppl(dump.old_logp, m)
    cal = calibration(dump.old_logp, m, pos)
    out = {
        "step": float(dump.step),
        "accuracy": float(np.mean(pos)),
        "mean_length": float(np.mean(dump.lengths)),
        "entropy": ent["all"],
        "entropy_pos": ent["pos"],
        "entropy_neg": ent["neg"],
        "small_shift_share": small_shift_share(shift, m, threshold=opts.shift_threshold),
        "small_shift_share_pos": small_shift_share(shift, m, threshold=opts.shift_threshold, rows_B=pos),
        "small_shift_share_neg": small_shift_share(shift, m, threshold=opts.shift_threshold, rows_B=~pos),
        "mean_shift_pos": masked_mean(shift, m & pos[:, None]),
        "mean_shift_neg": masked_mean(shift, m & ~pos[:, None]),
        "logp_adv_cov": logp_adv_covariance(dump.old_logp, dump.adv, m),
        "logp_pi_adv_cov": logp_adv_covariance(dump.old_logp, dump.adv, m, form="policy_gradient"),
        "auroc": cal["auroc"],
        "log_ppl_correct": float(np.mean(lp[pos & m.any(-1)])) if (pos & m.any(-1)).any() else math.nan,
        "log_ppl_incorrect": float(np.mean(lp[~pos & m.any(-1)])) if (~pos & m.any(-1)).any() else math.nan,
    }
    groups = ppl_group_summary(lp, dump.entropy, shift, m, pos, fraction=opts.top_fraction)
    for g in ("low", "high"):
        for k in ("entropy", "abs_shift", "accuracy"):
            out[f"ppl_{g}_{k}"] = groups[g][k]
    if dump.texts is not None:
        for k, v in quality_rates(dump.texts).items():
            out[f"quality_{k}"] = v
        for k, v in category_shares(dump.texts).items():
            out[f"category_{k}"] = v
        div = group_diversity(dump.texts, dump.group_size, unit=opts.diversity_unit)
        for k, v in div.items():
            out[k] = float(np.nanmean(v)) if np.isfinite(v).any() else math.nan
    return out


@dataclasses.dataclass
class _Pool:
    """Distributions pooled over some dumps (for the histogram / profile figures)."""

    bins: int
    sums: dict = dataclasses.field(default_factory=dict)
    lists: dict = dataclasses.field(default_factory=dict)

    def add_profile(self, key, values, mask, rows):
        mean, count = positional_profile(values, mask, num_bins=self.bins, rows_B=rows)
        s, c = self.sums.get(key, (np.zeros(self.bins), np.zeros(self.bins, np.int64)))
        self.sums[key] = (s + np.nan_to_num(mean) * count, c + count)

    def profile(self, key):
        s, c = self.sums[key]
        return np.where(c > 0, s / np.maximum(c, 1), np.nan), c

    def add(self, key, values):
        self.lists.setdefault(key, []).append(np.asarray(values, np.float64).reshape(-1))

    def get(self, key):
        parts = self.lists.get(key, [])
        return np.concatenate(parts) if parts else np.zeros(0)


def _pool_dump(pool: _Pool, dump: RolloutDump, opts: ReportOptions) -> None:
    m = np.asarray(dump.mask) != 0
    pos = dump.positive
    ent = np.asarray(dump.entropy, np.float64)
    for key, rows in (("all", None), ("pos", pos), ("neg", ~pos)):
        pool.add_profile(key, ent, m, rows)
    shift = probability_shift(dump.old_logp, dump.new_logp, m)
    lp = response_log_ppl(dump.old_logp, m)
    nonempty = m.any(-1)
    pool.add("log_ppl_correct", lp[pos & nonempty])
    pool.add("log_ppl_incorrect", lp[~pos & nonempty])
    top = top_shift_token_log_ppl(shift, lp, m, fraction=opts.top_fraction)
    pool.add("top_shift_log_ppl", top["top"])
    pool.add("all_token_log_ppl", top["all"])
    pool.add("shift_pos", shift[m & pos[:, None]])
    pool.add("shift_neg", shift[m & ~pos[:, None]])
    pool.add("shift_all", shift[m])
    pool.add("entropy_all", ent[m])
    cal = calibration(dump.old_logp, m, pos)
    pool.add("score_correct", cal["correct"])
    pool.add("score_incorrect", cal["incorrect"])


def _spread(keys: list[int], n: int | None) -> list[int]:
    if n is None or len(keys) <= n:
        return keys
    idx = sorted({int(round(i * (len(keys) - 1) / max(n - 1, 1))) for i in range(n)})
    return [keys[i] for i in idx]


# ------------------------------------------------------------------------------------------ the run
@dataclasses.dataclass
class RunAnalysis:
    """Everything ``write_report`` draws and tabulates."""

    run: Run
    options: ReportOptions
    steps: np.ndarray
    curves: dict[str, np.ndarray]  # raw and smoothed metric series
    plateau_index: int | None
    plateau_step: int | None
    dump_steps: list[int]
    per_dump: list[dict[str, float]]
    pooled_steps: list[int]
    pool: _Pool | None
    correlations: dict[str, dict[str, float]]
    summary: dict[str, float | int | str | None]
    model: dict = dataclasses.field(default_factory=dict)  # findings.model_sections
    dumps: list = dataclasses.field(default_factory=list)  # dump_settings.dump_settings_table
    vocab: dict = dataclasses.field(default_factory=dict)  # analysis.vocab.vocab_sections
    prompt_entropy: dict = dataclasses.field(default_factory=dict)  # analysis.prompts.run_prompt_entropy


def analyze_run(workdir: str | os.PathLike, opts: ReportOptions = ReportOptions()) -> RunAnalysis:
    """Loads a run directory and computes every analysis (no files written)."""
    run = load_run(workdir)
    steps = run.steps
    curves = {}
    for key in (
        "entropy",
        "accuracy",
        "entropy_pos",
        "entropy_neg",
        "reward",
        "log_ppl",
        "response_length_mean",
    ):
        raw = run.series(key)
        curves[key] = raw
        curves[key + "_ema"] = ema(raw, opts.beta)
    acc = curves["accuracy"] if np.isfinite(curves["accuracy"]).any() else None
    diag = plateau_diagnostics(curves["entropy"], acc, beta=opts.beta, **dict(opts.stage_kwargs))
    plateau_step = int(steps[diag.start]) if diag.start is not None else None

    dump_steps = _spread(list(run.dumps), opts.max_dumps)
    pooled_steps = list(run.dumps)[-opts.pool_last :] if opts.pool_last > 0 else []
    per_dump = []
    pool = _Pool(opts.num_bins) if pooled_steps else None
    for s in sorted(set(dump_steps) | set(pooled_steps)):
        dump = run.dump(s)
        if s in dump_steps:
            per_dump.append(dump_numbers(dump, opts))
        if s in pooled_steps:
            _pool_dump(pool, dump, opts)

    dumps_table = dump_settings_table(run)
    evals = find_eval_summaries(run.workdir)
    correlations = {}
    if evals:
        ent_ema = curves["entropy_ema"]
        at = {int(s): i for i, s in enumerate(steps)}
        ckpts = [s for s in sorted(evals) if s in at]
        benches = sorted({b for s in ckpts for b in evals[s]})
        correlations = entropy_score_correlations(
            [ent_ema[at[s]] for s in ckpts],
            {b: [evals[s].get(b, math.nan) for s in ckpts] for b in benches},
        )

    def last(key):
        v = curves[key]
        ok = np.isfinite(v)
        return float(v[ok][-1]) if ok.any() else None

    summary = {
        "workdir": str(run.workdir),
        "num_steps": int(steps[-1]) if steps.size else 0,
        "plateau_start_step": plateau_step,
        "final_entropy_ema": last("entropy_ema"),
        "final_accuracy_ema": last("accuracy_ema"),
        "num_dumps": len(run.dumps),
        "dump_schedule": dump_schedule(dumps_table),  # each dump's own settings, not config.json's
        "entropy_measured_under": measured_policy(dumps_table),
    }
    for k in ("heldout_accuracy_before", "heldout_accuracy_after"):
        if k in run.summary:
            summary[k] = run.summary[k]
    if pool is not None:
        sc, si = pool.get("score_correct"), pool.get("score_incorrect")
        from jaxrlvr.analysis.stats import auroc

        summary["pooled_dumps"] = ", ".join(str(s) for s in pooled_steps)
        if mixed := mixed_settings(dumps_table, pooled_steps):
            summary["pooled_dumps_note"] = mixed
        summary["pooled_auroc"] = auroc(np.concatenate([sc, si]), np.r_[np.ones(sc.size), np.zeros(si.size)])
        sh = pool.get("shift_all")
        summary["pooled_small_shift_share"] = float(np.mean(np.abs(sh) < opts.shift_threshold)) if sh.size else None
    model = {}
    if opts.model_sections and run.dumps:
        last_dump = run.dump(list(run.dumps)[-1])
        model = findings.model_sections(
            run, last_dump, impact_rows=opts.impact_rows, impact_per_row=opts.impact_per_row, impact_k=opts.impact_k
        )
    on = opts.model_sections and opts.prompt_entropy_prompts  # entropy on the prompts themselves (prompts.py)
    return RunAnalysis(
        prompt_entropy=run_prompt_entropy(run, opts.prompt_entropy_prompts) if on else {},
        dumps=dumps_table,
        model=model,
        run=run,
        options=opts,
        steps=steps,
        curves=curves,
        plateau_index=diag.start,
        plateau_step=plateau_step,
        dump_steps=dump_steps,
        per_dump=per_dump,
        pooled_steps=pooled_steps,
        pool=pool,
        correlations=correlations,
        summary=summary,
        vocab=vocab_sections(run, window=2, fraction=opts.top_fraction),
    )


# ------------------------------------------------------------------------------------------ writing
_PER_DUMP_COLUMNS = (
    ("step", "step"),
    ("accuracy", "acc"),
    ("entropy_pos", "H pos"),
    ("entropy_neg", "H neg"),
    ("small_shift_share", "|shift|<thr"),
    ("logp_adv_cov", "cov(logp,A)"),
    ("logp_pi_adv_cov", "cov(logp,pi*A)"),
    ("auroc", "AUROC"),
    ("log_ppl_correct", "lnPPL corr"),
    ("log_ppl_incorrect", "lnPPL inc"),
    ("quality_any", "quality issue"),
    ("distinct_2", "distinct-2"),
    ("self_bleu", "Self-BLEU"),
)


def _fmt(v) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        if not math.isfinite(v):
            return "-"
        return f"{v:.4g}"
    return html.escape(str(v))


def _json_safe(x):
    if isinstance(x, dict):
        return {str(k): _json_safe(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_json_safe(v) for v in x]
    if isinstance(x, np.generic):
        x = x.item()
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return x


def write_figures(a: RunAnalysis, out: pathlib.Path) -> list[str]:
    """Writes the PNGs of ``a`` into ``out``; returns their file names."""
    names = []
    c, b = a.curves, a.plateau_step
    if a.steps.size:
        plots.save(
            plots.curves_with_stage(a.steps, c["entropy"], c["accuracy"], c["entropy_ema"], c["accuracy_ema"], b),
            out / "curves.png",
        )
        names.append("curves.png")
        if np.isfinite(c["entropy_pos"]).any() or np.isfinite(c["entropy_neg"]).any():
            plots.save(
                plots.pos_neg_entropy(a.steps, c["entropy_pos_ema"], c["entropy_neg_ema"], b),
                out / "entropy_pos_neg.png",
            )
            names.append("entropy_pos_neg.png")
    p = a.pool
    if p is not None:
        plots.save(
            plots.positional_curve({k: p.profile(k) for k in ("all", "pos", "neg")}),
            out / "positional_entropy.png",
        )
        plots.save(
            plots.ppl_histograms(
                p.get("log_ppl_correct"),
                p.get("log_ppl_incorrect"),
                p.get("top_shift_log_ppl"),
                p.get("all_token_log_ppl"),
            ),
            out / "ppl_histograms.png",
        )
        plots.save(
            plots.probability_shifts(
                p.get("shift_pos"),
                p.get("shift_neg"),
                p.get("shift_all"),
                p.get("entropy_all"),
                threshold=a.options.shift_threshold,
            ),
            out / "probability_shift.png",
        )
        plots.save(
            plots.calibration_hist(
                p.get("score_correct"), p.get("score_incorrect"), a.summary.get("pooled_auroc", math.nan)
            ),
            out / "calibration.png",
        )
        names += ["positional_entropy.png", "ppl_histograms.png", "probability_shift.png", "calibration.png"]
    if a.per_dump:
        steps = [int(d["step"]) for d in a.per_dump]

        def col(k):
            return [d.get(k, math.nan) for d in a.per_dump]

        series = {
            f"share |shift| < {a.options.shift_threshold}": {
                "all": col("small_shift_share"),
                "pos": col("small_shift_share_pos"),
                "neg": col("small_shift_share_neg"),
            },
            "cov(log-prob, advantage)": {"cov": col("logp_adv_cov")},
            "calibration AUROC": {"AUROC": col("auroc")},
        }
        if "quality_any" in a.per_dump[0]:
            series["quality issue rate"] = {
                k: col(f"quality_{k}") for k in ("format_violation", "language_mixing", "repetition")
            }
            series["token categories (share)"] = {k.replace("_", " "): col(f"category_{k}") for k in CATEGORIES}
            series["diversity"] = {"distinct-2": col("distinct_2"), "Self-BLEU": col("self_bleu")}
        plots.save(plots.dump_series(steps, series, b), out / "dump_metrics.png")
        names.append("dump_metrics.png")
    return names


def _table(rows: list[tuple[str, object]]) -> str:
    body = "".join(f"<tr><th>{html.escape(k)}</th><td>{_fmt(v)}</td></tr>" for k, v in rows)
    return f"<table class='kv'>{body}</table>"


def _glossary(entries: dict[str, str]) -> str:
    body = "".join(f"<dt><code>{html.escape(k)}</code></dt><dd>{html.escape(v)}</dd>" for k, v in entries.items())
    return f"<dl>{body}</dl>"


def _model_html(model: dict) -> list[str]:
    """The Eq. 4 gradient-share and Eq. 6 impact sections (or why they are missing)."""
    head = "<h2>Gradient share (Eq. 4) and token impact (Eq. 6)</h2>"
    if not model:
        return []
    if "note" in model:
        return [head, f"<p>{html.escape(model['note'])}.</p>"]
    grad = [(k, model[k]) for k in ("checkpoint", "dump_step", "grad_share_negative", "negative_token_share")]
    grad.append(("grad_share_high_entropy", model["grad_share_high_entropy"]))
    parts = [head, f"<h3>Eq. 4 ({findings.DECOMPOSING}): where the LM-head gradient comes from</h3>", _table(grad)]
    parts.append("<h3>Eq. 6: performance impact of single tokens</h3>")
    if "impact_note" in model:
        parts.append(f"<p>{html.escape(model['impact_note'])}.</p>")
    else:
        keys = ("impact_positions", "impact_k", "impact_mean", "impact_abs_mean", "impact_share_nonzero")
        keys += ("impact_abs_high_entropy", "impact_abs_low_entropy")
        parts.append(_table([(k, model[k]) for k in keys]))
    return parts


def render_html(a: RunAnalysis, figures: list[str]) -> str:
    """The report page (figures referenced by file name, beside it)."""
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'><title>jaxrlvr run analysis</title><style>",
        "body{font-family:sans-serif;max-width:1000px;margin:2em auto;color:#222}"
        "table{border-collapse:collapse;margin:1em 0;font-size:13px}"
        "td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}th{background:#f4f4f4}"
        "table.kv th{text-align:left}figure{margin:1.5em 0}figcaption{font-size:13px;color:#555}"
        "img{max-width:100%}",
        "</style></head><body>",
        f"<h1>Run analysis</h1><p><code>{html.escape(str(a.run.workdir))}</code></p>",
        "<h2>Summary</h2>",
        _table(list(a.summary.items())),
    ]
    if a.plateau_step is None:
        parts.append(
            "<p>No plateau detected yet: the smoothed entropy (and accuracy) are still falling (rising) "
            "faster than a fifth of their steepest rate, or the run is too short.</p>"
        )
    if a.per_dump:
        head = "".join(f"<th>{html.escape(label)}</th>" for _, label in _PER_DUMP_COLUMNS)
        rows = "".join(
            "<tr>" + "".join(f"<td>{_fmt(d.get(k, math.nan))}</td>" for k, _ in _PER_DUMP_COLUMNS) + "</tr>"
            for d in a.per_dump
        )
        parts += ["<h2>Rollout dumps</h2>", f"<table><tr>{head}</tr>{rows}</table>"]
        parts.append("<p>One row per analysed dump (not pooled).</p>")
        if "category_formal_reasoning" in a.per_dump[-1]:
            last = a.per_dump[-1]
            parts.append("<h3>Last dump: quality and token categories</h3>")
            parts.append(
                _table(
                    [
                        (f"quality: {k}", last.get(f"quality_{k}"))
                        for k in ("format_violation", "language_mixing", "repetition", "any")
                    ]
                    + [(f"category: {k}", last.get(f"category_{k}")) for k in CATEGORIES]
                    + [
                        (f"PPL group {g}: {k}", last.get(f"ppl_{g}_{k}"))
                        for g in ("low", "high")
                        for k in ("entropy", "abs_shift", "accuracy")
                    ]
                )
            )
    if a.correlations:
        head = "<tr><th>benchmark</th><th>Spearman rho</th><th>p</th><th>checkpoints</th></tr>"
        rows = "".join(
            f"<tr><td>{html.escape(k)}</td><td>{_fmt(v['rho'])}</td><td>{_fmt(v['p'])}</td><td>{v['n']}</td></tr>"
            for k, v in a.correlations.items()
        )
        parts += ["<h2>Entropy vs benchmark score across checkpoints</h2>", f"<table>{head}{rows}</table>"]
    parts += _model_html(a.model)
    parts.append(vocab_html(a.vocab))
    parts.append(prompt_entropy_html(a.prompt_entropy))
    parts.append("<h2>Figures</h2>")
    notes = findings.captions(a)
    for name in figures:
        parts.append(
            f"<figure><img src='{html.escape(name)}' alt='{html.escape(name)}'>"
            f"<figcaption>{html.escape(notes.get(name, name))}</figcaption></figure>"
        )
    parts.append("<h2>Glossary</h2>")
    parts.append(_glossary({**findings.GLOSSARY, **(findings.MODEL_GLOSSARY if a.model else {})}))
    parts.append("</body></html>\n")
    return "\n".join(parts)


def write_report(
    workdir: str | os.PathLike,
    out_dir: str | os.PathLike | None = None,
    opts: ReportOptions = ReportOptions(),
) -> pathlib.Path:
    """Analyses a run and writes ``report.html``, its PNGs and ``analysis.json`` into ``out_dir``
    (default ``WORKDIR/analysis``); returns the path of ``report.html``."""
    a = analyze_run(workdir, opts)
    out = pathlib.Path(out_dir) if out_dir is not None else a.run.workdir / "analysis"
    out.mkdir(parents=True, exist_ok=True)
    figures = write_figures(a, out)
    payload = {
        "summary": a.summary,
        "plateau_index": a.plateau_index,
        "per_dump": a.per_dump,
        "dumps": a.dumps,
        "correlations": a.correlations,
        "vocab": a.vocab,
        "figures": figures,
        "model_sections": a.model,
        "prompt_entropy": a.prompt_entropy,
    }
    (out / "analysis.json").write_text(json.dumps(_json_safe(payload), indent=2) + "\n")
    path = out / "report.html"
    path.write_text(render_html(a, figures))
    return path
