"""Calibration (does the policy's confidence separate correct from incorrect answers?), the covariance of
log-prob and advantage (Cui et al. 2025), and rank correlations across checkpoints (scipy).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from jaxrlvr.analysis.entropy import _bool, _check_bt


def mean_token_logprob(logp_BT, mask_BT) -> np.ndarray:
    """Mean per-token log-prob of every response, ``s_i = sum_t logp_t m_t / sum_t m_t = -ln PPL_i``
    (NaN for an empty row). [B] float64."""
    lp = np.asarray(_check_bt("logp_BT", logp_BT), np.float64)
    m = _bool(_check_bt("mask_BT", mask_BT))
    n = m.sum(-1)
    s = np.where(m, lp, 0.0).sum(-1)
    return np.where(n > 0, s / np.maximum(n, 1), np.nan)


def auroc(scores_B, labels_B) -> float:
    """Area under the ROC curve of ``scores`` for predicting ``labels`` (1 = positive), with ties counted
    half: ``AUROC = P(s_pos > s_neg) + P(s_pos = s_neg) / 2``, computed as the Mann-Whitney U statistic
    ``U / (n_pos * n_neg)`` (``scipy.stats.mannwhitneyu``). Non-finite scores are dropped; NaN when a class
    is empty. 0.5 = no separation; 1 = every correct response is more confident than every incorrect one.
    """
    from scipy.stats import mannwhitneyu

    s = np.asarray(scores_B, np.float64).reshape(-1)
    y = _bool(labels_B).reshape(-1)
    if s.shape != y.shape:
        raise ValueError(f"scores_B {s.shape} and labels_B {y.shape} differ in shape")
    ok = np.isfinite(s)
    pos, neg = s[ok & y], s[ok & ~y]
    if pos.size == 0 or neg.size == 0:
        return float("nan")
    u = mannwhitneyu(pos, neg, alternative="two-sided").statistic
    return float(u / (pos.size * neg.size))


def calibration(logp_BT, mask_BT, correct_B) -> dict:
    """Mean per-token log-prob of correct and incorrect responses and their AUROC:
    ``{"correct": [n_c], "incorrect": [n_i], "auroc": float}`` (empty responses left out)."""
    s = mean_token_logprob(logp_BT, mask_BT)
    c = _bool(correct_B).reshape(-1)
    ok = np.isfinite(s)
    return {"correct": s[ok & c], "incorrect": s[ok & ~c], "auroc": auroc(s, c)}


def logp_adv_covariance(logp_BT, adv_BT, mask_BT, *, form: str = "natural") -> float:
    """Covariance of token log-prob and advantage over the valid tokens of a batch (Cui et al. 2025, "The
    Entropy Mechanism of RL for Reasoning LMs", whose entropy-change estimate is proportional to it):
    ``Cov = mean_t[(logp_t - mean logp)(A_t - mean A)]`` (population covariance, means over valid tokens;
    the per-token term is what ``jaxrlvr.algos.kl_cov_select`` ranks). Positive covariance (confident
    tokens with positive advantage) lowers entropy. NaN with no valid token.

    ``form="natural"`` is the above, ``Cov(log pi, A)`` (the natural-gradient form); ``form="policy_gradient"``
    is ``Cov(log pi, pi A)`` with ``pi = exp(logp)``, the form of the entropy change under a plain
    policy-gradient (softmax logit) update ("Revisiting Entropy", arXiv 2511.05993, Appendix E.3).
    """
    if form not in ("natural", "policy_gradient"):
        raise ValueError(f"form must be 'natural' or 'policy_gradient', got {form!r}")
    lp = np.asarray(_check_bt("logp_BT", logp_BT), np.float64)
    a = np.asarray(_check_bt("adv_BT", adv_BT), np.float64)
    m = _bool(_check_bt("mask_BT", mask_BT))
    if not m.any():
        return float("nan")
    x, y = lp[m], a[m]
    if form == "policy_gradient":
        y = np.exp(x) * y
    return float(np.mean((x - x.mean()) * (y - y.mean())))


def spearman(x, y) -> tuple[float, float]:
    """Spearman rank correlation and its two-sided p-value (``scipy.stats.spearmanr``) over the pairs where
    both are finite; (NaN, NaN) with fewer than 3 pairs or a constant side."""
    from scipy.stats import spearmanr

    a = np.asarray(x, np.float64).reshape(-1)
    b = np.asarray(y, np.float64).reshape(-1)
    if a.shape != b.shape:
        raise ValueError(f"x {a.shape} and y {b.shape} differ in shape")
    ok = np.isfinite(a) & np.isfinite(b)
    a, b = a[ok], b[ok]
    if a.size < 3 or np.all(a == a[0]) or np.all(b == b[0]):
        return float("nan"), float("nan")
    res = spearmanr(a, b)
    return float(res.statistic), float(res.pvalue)


def entropy_score_correlations(
    entropy_C: Sequence[float], scores: Mapping[str, Sequence[float]]
) -> dict[str, dict[str, float]]:
    """Spearman correlation between the policy entropy at C checkpoints and each benchmark's score at the
    same checkpoints: ``{benchmark: {"rho", "p", "n"}}``.

    Args:
      entropy_C: [C] entropy per checkpoint (e.g. the smoothed training entropy at the checkpoint's step).
      scores: ``{benchmark: [C] scores}`` in the same checkpoint order (NaN = not evaluated).
    """
    ent = np.asarray(entropy_C, np.float64).reshape(-1)
    out = {}
    for name, vals in scores.items():
        v = np.asarray(vals, np.float64).reshape(-1)
        if v.shape != ent.shape:
            raise ValueError(f"scores[{name!r}] has {v.shape[0]} checkpoints, entropy_C {ent.shape[0]}")
        rho, p = spearman(ent, v)
        out[name] = {"rho": rho, "p": p, "n": int((np.isfinite(ent) & np.isfinite(v)).sum())}
    return out
