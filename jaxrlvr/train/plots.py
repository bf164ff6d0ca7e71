"""PNG plots of a run's metrics.jsonl: reward / accuracy and entropy (overall, positive, negative) curves."""

from __future__ import annotations

import pathlib

from jaxrlvr.algos.stages import ema
from jaxrlvr.runs import read_metrics


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

    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot(steps, [r.get("accuracy") for r in recs], alpha=0.3, color="C0")
    ax.plot(steps, ema([r.get("accuracy") for r in recs]), color="C0", label="rollout accuracy (EMA 0.6)")
    ax.set_xlabel("RL step")
    ax.set_ylabel("accuracy")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    fig.tight_layout()
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
