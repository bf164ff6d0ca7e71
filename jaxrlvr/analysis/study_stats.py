"""Statistics of the study (issue 27): paired tests by seed, Holm within a family, TOST equivalence, the
minimum detectable effect, and the verdict of a claim. Pure functions over NumPy arrays, checked against
SciPy in tests/study/test_stats.py.

A claim compares variants ``a`` and ``b`` on one metric, paired by seed (the variants of a seed share the SFT
warm start, data order and rollout seed): ``d_S = a_S - b_S``. It expects ``greater`` (a > b), ``less`` or
``equivalent`` (|a - b| < margin). Its primary p-value is the two-sided paired t-test for a direction claim and
the TOST p-value for an equivalence claim; the primary p-values of one paper's claims are Holm-adjusted
together (:func:`holm`). Verdicts (:func:`verdict`):

- ``holds``: a direction claim whose Holm-adjusted p < alpha, with the estimate on the expected side;
- ``opposite``: the same on the other side; or an equivalence claim whose difference test is significant
  after Holm (the two differ, so the claimed equivalence is refuted);
- ``equivalent``: an equivalence claim whose Holm-adjusted TOST p < alpha; or a direction claim that is not
  significant but whose TOST p (Holm-adjusted over the family's direction claims) < alpha, i.e. any effect
  is smaller than the margin, which refutes a claimed difference;
- ``not separable``: none of these; the claim reports the minimum detectable effect at the seeds run.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

HOLDS, OPPOSITE, EQUIVALENT, NOT_SEPARABLE, NOT_RUN = "holds", "opposite", "equivalent", "not separable", "not run"
EXPECTS = ("greater", "less", "equivalent")


def _clean(d_S) -> np.ndarray:
    d = np.asarray(d_S, np.float64).ravel()
    return d[np.isfinite(d)]


def paired_t(d_S: Sequence[float], level: float = 0.95) -> dict:
    """Paired t statistics of the per-seed differences ``d_S``: ``n``, ``estimate`` (mean), ``sd``, ``se``,
    ``interval`` (two-sided ``level`` t-interval), ``t`` and ``p`` (two-sided, H0: mean = 0). Fewer than two
    differences (or zero spread with mean 0) give NaN p and interval."""
    from scipy.stats import t as student

    d = _clean(d_S)
    n = int(d.size)
    if n == 0:
        return {"n": 0, "estimate": math.nan, "sd": math.nan, "se": math.nan, "interval": [math.nan, math.nan],
                "t": math.nan, "p": math.nan}  # fmt: skip
    m = float(d.mean())
    if n < 2:
        return {"n": 1, "estimate": m, "sd": math.nan, "se": math.nan, "interval": [math.nan, math.nan],
                "t": math.nan, "p": math.nan}  # fmt: skip
    sd = float(d.std(ddof=1))
    se = sd / math.sqrt(n)
    half = float(student.ppf(0.5 + level / 2, n - 1)) * se
    if se == 0.0:
        t, p = (math.copysign(math.inf, m), 0.0) if m != 0 else (math.nan, math.nan)
    else:
        t = m / se
        p = float(2 * student.sf(abs(t), n - 1))
    return {"n": n, "estimate": m, "sd": sd, "se": se, "interval": [m - half, m + half], "t": t, "p": p}


def tost_p(d_S: Sequence[float], margin: float) -> float:
    """Two one-sided tests of equivalence, H0: |mean d| >= ``margin``: the larger of the p-values of
    H0: mean <= -margin and H0: mean >= +margin (paired t). NaN with fewer than two differences."""
    from scipy.stats import t as student

    if not margin > 0:
        raise ValueError(f"tost_p: margin must be > 0, got {margin}")
    d = _clean(d_S)
    n = d.size
    if n < 2:
        return math.nan
    m, se = float(d.mean()), float(d.std(ddof=1)) / math.sqrt(n)
    if se == 0.0:
        return 0.0 if abs(m) < margin else 1.0
    p_low = float(student.sf((m + margin) / se, n - 1))  # H0: mean <= -margin
    p_high = float(student.cdf((m - margin) / se, n - 1))  # H0: mean >= +margin
    return max(p_low, p_high)


def holm(p: Sequence[float]) -> list[float]:
    """Holm's step-down adjusted p-values (NaN stays NaN and does not count in the family's size):
    sorted ascending, ``p_(i) * (m - i)`` for i = 0.., made monotone and capped at 1."""
    p = [float(x) for x in p]
    idx = [i for i, x in enumerate(p) if math.isfinite(x)]
    m = len(idx)
    out = [math.nan] * len(p)
    running = 0.0
    for rank, i in enumerate(sorted(idx, key=lambda i: p[i])):
        running = max(running, min(1.0, p[i] * (m - rank)))
        out[i] = running
    return out


def min_detectable_effect(sd: float, n: int, alpha: float = 0.05, power: float = 0.8) -> float:
    """The smallest true paired mean difference a two-sided paired t-test at ``alpha`` detects with
    probability ``power`` over ``n`` seeds of spread ``sd`` (the usual approximation
    ``(t_{1-alpha/2} + t_{power}) * sd / sqrt(n)`` with n - 1 degrees of freedom). NaN below two seeds."""
    from scipy.stats import t as student

    if n < 2 or not math.isfinite(sd):
        return math.nan
    q = float(student.ppf(1 - alpha / 2, n - 1) + student.ppf(power, n - 1))
    return q * sd / math.sqrt(n)


def verdict(expect: str, estimate: float, p_holm: float, tost_holm: float, alpha: float = 0.05) -> str:
    """The verdict of one claim from its Holm-adjusted p-values (module docstring)."""
    if expect not in EXPECTS:
        raise ValueError(f"expect must be one of {EXPECTS}, got {expect!r}")
    if expect == "equivalent":
        if math.isfinite(tost_holm) and tost_holm < alpha:
            return EQUIVALENT
        if math.isfinite(p_holm) and p_holm < alpha:
            return OPPOSITE
        return NOT_SEPARABLE
    if math.isfinite(p_holm) and p_holm < alpha:
        return HOLDS if (estimate > 0) == (expect == "greater") else OPPOSITE
    if math.isfinite(tost_holm) and tost_holm < alpha:
        return EQUIVALENT
    return NOT_SEPARABLE


def judge_family(claims: Sequence[dict], diffs: Sequence[Sequence[float]], margins: Sequence[float],
                 alpha: float = 0.05) -> list[dict]:  # fmt: skip
    """Judges one paper's claims together: ``diffs[i]`` are claim i's per-seed differences a - b and
    ``margins[i]`` its absolute equivalence margin. Returns per claim ``n``, ``estimate``, ``interval``,
    ``p`` (primary: two-sided t or TOST), ``p_holm``, ``p_diff`` / ``p_tost`` (both tests), ``p_tost_holm``
    (direction claims: the TOST p Holm-adjusted over the family's direction claims), ``mde`` (at the
    Bonferroni level alpha / m, conservative for Holm) and ``verdict``."""
    rows = []
    for c, d, margin in zip(claims, diffs, margins, strict=True):
        s = paired_t(d)
        p_t = tost_p(d, margin) if margin > 0 and math.isfinite(margin) else math.nan
        rows.append({"s": s, "p_diff": s["p"], "p_tost": p_t, "eq": c["expect"] == "equivalent"})
    primary = holm([r["p_tost"] if r["eq"] else r["p_diff"] for r in rows])
    secondary = holm([math.nan if r["eq"] else r["p_tost"] for r in rows])
    diff_of_eq = holm([r["p_diff"] if r["eq"] else math.nan for r in rows])
    m = max(1, sum(math.isfinite(x) for x in primary))
    out = []
    for c, r, p1, p2, p3 in zip(claims, rows, primary, secondary, diff_of_eq, strict=True):
        s = r["s"]
        if s["n"] == 0:
            out.append({"n": 0, "estimate": math.nan, "interval": [math.nan, math.nan], "p": math.nan,
                        "p_holm": math.nan, "p_diff": math.nan, "p_tost": math.nan, "p_tost_holm": math.nan,
                        "mde": math.nan, "verdict": NOT_RUN})  # fmt: skip
            continue
        if r["eq"]:
            v = verdict("equivalent", s["estimate"], p3, p1, alpha)
        else:
            v = verdict(c["expect"], s["estimate"], p1, p2, alpha)
        out.append({
            "n": s["n"], "estimate": s["estimate"], "interval": s["interval"],
            "p": r["p_tost"] if r["eq"] else r["p_diff"], "p_holm": p1, "p_diff": r["p_diff"],
            "p_tost": r["p_tost"], "p_tost_holm": p1 if r["eq"] else p2,
            "mde": min_detectable_effect(s["sd"], s["n"], alpha / m), "verdict": v,
        })  # fmt: skip
    return out
