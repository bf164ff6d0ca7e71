"""Prompt-level entropy analyses (our reading of "Revisiting Entropy", arXiv 2511.05993, App. C.2 / C.3,
which relate entropy to the prompt: we could not consult the appendix text offline, so the exact
quantities below are our choice).

Per prompt (a group of G responses in a rollout dump): the token-pooled mean entropy of its responses,
the spread of the per-response mean entropy across the G responses, and the group accuracy. Prompts are
bucketed by accuracy (``0``, ``(0, 0.5]``, ``(0.5, 1)``, ``1``: unsolved, hard, easy, solved -- the first
and last are the zero-advantage groups DAPO drops), and the rank correlation between prompt entropy and
accuracy is reported.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

BUCKETS = ("acc=0", "0<acc<=0.5", "0.5<acc<1", "acc=1")


def prompt_entropy(dump) -> dict[str, np.ndarray]:
    """[P] arrays for one dump: ``entropy`` (token-pooled over the group), ``spread`` (std over the G
    responses of their mean entropy, non-empty responses only), ``accuracy``."""
    g = int(dump.group_size)
    m = np.asarray(dump.mask) != 0
    ent = np.where(m, np.asarray(dump.entropy, np.float64), 0.0)
    b = m.shape[0]
    if b % g:
        raise ValueError(f"{b} rows are not a multiple of group_size={g}")
    tok_sum, tok_n = ent.sum(1).reshape(-1, g), m.sum(1).reshape(-1, g)
    per_resp = np.where(tok_n > 0, tok_sum / np.maximum(tok_n, 1), np.nan)
    with np.errstate(invalid="ignore"):
        spread = np.array([np.nanstd(r) if np.isfinite(r).sum() > 1 else np.nan for r in per_resp])
    return {
        "entropy": tok_sum.sum(1) / np.maximum(tok_n.sum(1), 1),
        "spread": spread,
        "accuracy": np.asarray(dump.positive, np.float64).reshape(-1, g).mean(1),
    }


def prompt_entropy_summary(dumps: Sequence) -> dict:
    """Pooled over ``dumps``: per accuracy bucket the number of prompts, mean prompt entropy and mean
    spread; ``spearman_entropy_accuracy`` (rho, p) across the prompts."""
    from jaxrlvr.analysis.stats import spearman

    parts = [prompt_entropy(d) for d in dumps]
    if not parts:
        return {}
    e = np.concatenate([p["entropy"] for p in parts])
    s = np.concatenate([p["spread"] for p in parts])
    a = np.concatenate([p["accuracy"] for p in parts])
    which = np.where(a == 0, 0, np.where(a <= 0.5, 1, np.where(a < 1, 2, 3)))
    out = {}
    for i, name in enumerate(BUCKETS):
        sel = which == i
        out[name] = {
            "prompts": int(sel.sum()),
            "entropy": float(e[sel].mean()) if sel.any() else float("nan"),
            "spread": float(np.nanmean(s[sel])) if sel.any() and np.isfinite(s[sel]).any() else float("nan"),
        }
    rho, p = spearman(e, a)
    return {"buckets": out, "spearman_entropy_accuracy": {"rho": rho, "p": p}, "num_prompts": int(e.size)}
