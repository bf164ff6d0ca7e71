"""PNG plots of a run's metrics.jsonl: rollout accuracy (with the held-out accuracy before and after RL from
summary.json) and entropy (overall, positive, negative) curves. Curves are smoothed with the papers' EMA,
``s_t = 0.6 s_{t-1} + 0.4 x_t`` (``jaxrlvr.algos.stages.ema``); the faint line is the raw value."""

from __future__ import annotations

import json
import pathlib

from jaxrlvr.algos.stages import ema
from jaxrlvr.runs import read_metrics


def accuracy_figure(recs: list[dict], summary: dict):
    """The accuracy figure (matplotlib ``Figure``): rollout accuracy raw and EMA, the held-out accuracy
    before RL (at step 0) and after RL (at the last step) as labelled markers, the EMA formula in the title."""
    import matplotlib.pyplot as plt

    steps = [r["step"] for r in recs]
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot(steps, [r.get("accuracy") for r in recs], alpha=0.3, color="C0", label="rollout accuracy (raw)")
    ax.plot(steps, ema([r.get("accuracy") for r in recs]), color="C0", label="rollout accuracy (EMA)")
    for key, x, marker, label in (
        ("heldout_accuracy_before", 0, "o", "held-out before RL"),
        ("heldout_accuracy_after", steps[-1], "s", "held-out after RL"),
    ):
        if summary.get(key) is not None:
            ax.scatter([x], [summary[key]], marker=marker, color="C1", zorder=3, label=f"{label}: {summary[key]:.3f}")
    ax.set_title("EMA: s_t = 0.6 s_(t-1) + 0.4 x_t (the papers' smoothing)", fontsize=9)
    ax.set_xlabel("RL step")
    ax.set_ylabel("accuracy (share correct)")
    ax.grid(alpha=0.3)
    ax.legend(loc="best", fontsize=8)
    fig.tight_layout()
    return fig


def plot_run(workdir: str | pathlib.Path) -> list[pathlib.Path]:
    """Writes ``accuracy.png`` and ``entropy.png`` into ``workdir`` and returns their paths."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    workdir = pathlib.Path(workdir)
    recs = read_metrics(workdir / "metrics.jsonl")
    if not recs:
        return []
    steps = [r["step"] for r in recs]
    out = []
    summary_file = workdir / "summary.json"
    summary = json.loads(summary_file.read_text()) if summary_file.is_file() else {}
    fig = accuracy_figure(recs, summary)
    fig.savefig(workdir / "accuracy.png", dpi=110)
    plt.close(fig)
    out.append(workdir / "accuracy.png")

    fig, ax = plt.subplots(figsize=(6, 3.5))
    for key, label, color in (
        ("entropy", "all", "k"),
        ("entropy_pos", "positive samples", "C2"),
        ("entropy_neg", "negative samples", "C3"),
    ):
        vals = [r.get(key) for r in recs]
        ax.plot(steps, ema(vals), color=color, label=label)
    ax.set_xlabel("RL step")
    ax.set_ylabel("token entropy (nats, EMA 0.6)")
    ax.grid(alpha=0.3)
    ax.legend(loc="upper right")
    fig.tight_layout()
    fig.savefig(workdir / "entropy.png", dpi=110)
    plt.close(fig)
    out.append(workdir / "entropy.png")
    return out
