"""Matplotlib figures of the papers' figure types. Each function takes plain arrays and returns a Figure
(Agg backend, nothing shown); ``save`` writes a PNG and closes it."""

from __future__ import annotations

import pathlib

import numpy as np

POS_COLOR, NEG_COLOR, ALL_COLOR = "C2", "C3", "0.2"


def _plt():
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def save(fig, path: str | pathlib.Path, *, dpi: int = 100) -> pathlib.Path:
    path = pathlib.Path(path)
    fig.savefig(path, dpi=dpi)
    _plt().close(fig)
    return path


def _boundary(ax, step):
    if step is not None:
        ax.axvline(step, color="red", lw=1.2, ls="--", label=f"plateau from step {step}")


def curves_with_stage(steps, entropy, accuracy, entropy_smooth, accuracy_smooth, boundary_step=None):
    """Entropy and accuracy vs step (raw faint, EMA solid) with the rising/plateau boundary."""
    plt = _plt()
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.2))
    for ax, raw, sm, name, color in (
        (axes[0], entropy, entropy_smooth, "token entropy (nats)", "C0"),
        (axes[1], accuracy, accuracy_smooth, "rollout accuracy", "C1"),
    ):
        ax.plot(steps, raw, color=color, alpha=0.25, lw=1)
        ax.plot(steps, sm, color=color, lw=1.8, label="EMA 0.6")
        _boundary(ax, boundary_step)
        ax.set_xlabel("RL step")
        ax.set_ylabel(name)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def pos_neg_entropy(steps, entropy_pos, entropy_neg, boundary_step=None):
    """EMA entropy of positive (correct) and negative samples vs step."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5, 3.2))
    ax.plot(steps, entropy_pos, color=POS_COLOR, label="positive samples")
    ax.plot(steps, entropy_neg, color=NEG_COLOR, label="negative samples")
    _boundary(ax, boundary_step)
    ax.set_xlabel("RL step")
    ax.set_ylabel("token entropy (nats, EMA 0.6)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def positional_curve(profiles: dict, *, ylabel: str = "mean token entropy (nats)"):
    """Mean value by relative-position bin for positive / negative / all samples (the U-shape).
    ``profiles``: ``{"all"|"pos"|"neg": (mean_K, count_K)}``."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5, 3.2))
    for key, label, color in (
        ("all", "all", ALL_COLOR),
        ("pos", "positive", POS_COLOR),
        ("neg", "negative", NEG_COLOR),
    ):
        if key not in profiles:
            continue
        mean, _ = profiles[key]
        k = len(mean)
        ax.plot((np.arange(k) + 0.5) / k, mean, marker="o", ms=3, color=color, label=label)
    ax.set_xlabel("relative position in response")
    ax.set_ylabel(ylabel)
    ax.set_xlim(0, 1)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def _hist(ax, data, label, color, bins):
    data = np.asarray(data, np.float64)
    data = data[np.isfinite(data)]
    if data.size:
        ax.hist(data, bins=bins, density=True, alpha=0.5, color=color, label=f"{label} (n={data.size})")


def _common_bins(*arrays, n=30):
    vals = np.concatenate([np.asarray(a, np.float64).reshape(-1) for a in arrays])
    vals = vals[np.isfinite(vals)]
    if vals.size == 0:
        return n
    lo, hi = float(vals.min()), float(vals.max())
    if hi <= lo:
        hi = lo + 1e-6
    return np.linspace(lo, hi, n + 1)


def ppl_histograms(log_ppl_correct, log_ppl_incorrect, top_shift_log_ppl, all_token_log_ppl):
    """Left: log-PPL of correct vs incorrect responses. Right: log-PPL behind the top-20% |shift| tokens
    vs all tokens."""
    plt = _plt()
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.2))
    b = _common_bins(log_ppl_correct, log_ppl_incorrect)
    _hist(axes[0], log_ppl_correct, "correct", POS_COLOR, b)
    _hist(axes[0], log_ppl_incorrect, "incorrect", NEG_COLOR, b)
    axes[0].set_xlabel("response log-PPL")
    b = _common_bins(top_shift_log_ppl, all_token_log_ppl)
    _hist(axes[1], all_token_log_ppl, "all tokens", ALL_COLOR, b)
    _hist(axes[1], top_shift_log_ppl, "top-20% |shift| tokens", "C4", b)
    axes[1].set_xlabel("log-PPL of the token's response")
    for ax in axes:
        ax.set_ylabel("density")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def probability_shifts(shift_pos, shift_neg, shift_all, entropy_all, *, threshold: float = 0.06, max_points=5000):
    """Left: histogram of token probability shifts for positive / negative samples (|d| < threshold
    band marked). Right: shift vs token entropy."""
    plt = _plt()
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.2))
    b = _common_bins(shift_pos, shift_neg, n=40)
    for data, label, color in ((shift_pos, "positive", POS_COLOR), (shift_neg, "negative", NEG_COLOR)):
        d = np.asarray(data, np.float64)
        if d.size:
            axes[0].hist(d, bins=b, alpha=0.5, color=color, label=f"{label} (n={d.size})", log=True)
    axes[0].axvspan(-threshold, threshold, color="0.85", zorder=0, label=f"|shift| < {threshold}")
    axes[0].set_xlabel("p_new - p_old of sampled token")
    axes[0].set_ylabel("tokens")
    axes[0].legend(fontsize=8)
    s, e = np.asarray(shift_all, np.float64), np.asarray(entropy_all, np.float64)
    if s.size > max_points:
        idx = np.random.default_rng(0).choice(s.size, max_points, replace=False)
        s, e = s[idx], e[idx]
    axes[1].scatter(e, s, s=3, alpha=0.3, color="C0")
    axes[1].axhline(0, color="0.5", lw=0.8)
    axes[1].set_xlabel("token entropy (nats)")
    axes[1].set_ylabel("p_new - p_old")
    for ax in axes:
        ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def calibration_hist(score_correct, score_incorrect, auroc: float):
    """Mean per-token log-prob of correct vs incorrect responses, with the AUROC."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5, 3.2))
    b = _common_bins(score_correct, score_incorrect)
    _hist(ax, score_correct, "correct", POS_COLOR, b)
    _hist(ax, score_incorrect, "incorrect", NEG_COLOR, b)
    ax.set_xlabel("mean token log-prob of response")
    ax.set_ylabel("density")
    ax.set_title(f"AUROC = {auroc:.3f}", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def dump_series(steps, series: dict, boundary_step=None):
    """A grid of small per-dump-step curves: ``series`` maps a panel title to ``{label: [S] values}``."""
    plt = _plt()
    n = len(series)
    cols = min(3, max(n, 1))
    rows = -(-n // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.4 * cols, 2.6 * rows), squeeze=False)
    for ax, (title, lines) in zip(axes.reshape(-1), series.items(), strict=False):
        for label, vals in lines.items():
            ax.plot(steps, vals, marker="o", ms=3, label=label)
        _boundary(ax, boundary_step)
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("RL step", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
        if len(lines) > 1:
            ax.legend(fontsize=6)
    for ax in axes.reshape(-1)[n:]:
        ax.axis("off")
    fig.tight_layout()
    return fig
