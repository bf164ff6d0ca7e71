"""jaxrlvr.analysis.study_stats against SciPy on fixed numbers: paired t (estimate, interval, p), TOST, Holm,
the minimum detectable effect, and verdicts."""

import math

import numpy as np
import pytest
from scipy import stats

from jaxrlvr.analysis import study_stats as S

A = np.array([0.52, 0.61, 0.47, 0.58, 0.55])
B = np.array([0.49, 0.55, 0.46, 0.51, 0.50])
D = A - B  # 0.03, 0.06, 0.01, 0.07, 0.05


def test_paired_t_matches_scipy():
    got = S.paired_t(D)
    ref = stats.ttest_rel(A, B)
    assert got["n"] == 5 and got["estimate"] == pytest.approx(0.044)
    assert got["p"] == pytest.approx(ref.pvalue, rel=1e-12) and got["t"] == pytest.approx(ref.statistic, rel=1e-12)
    lo, hi = ref.confidence_interval(0.95)
    assert got["interval"] == pytest.approx([lo, hi], rel=1e-12)
    assert math.isnan(S.paired_t([0.1])["p"]) and S.paired_t([])["n"] == 0
    assert S.paired_t([0.1, float("nan"), 0.2])["n"] == 2  # NaNs dropped


def test_tost_matches_two_one_sided_scipy_tests():
    for margin in (0.02, 0.05, 0.1):
        lo = stats.ttest_1samp(D, -margin, alternative="greater").pvalue
        hi = stats.ttest_1samp(D, margin, alternative="less").pvalue
        assert S.tost_p(D, margin) == pytest.approx(max(lo, hi), rel=1e-12)
    assert S.tost_p(D, 0.1) < 0.05 < S.tost_p(D, 0.05)  # equivalent within 0.1, not within 0.05
    with pytest.raises(ValueError, match="margin"):
        S.tost_p(D, 0.0)


def test_holm_by_hand():
    # sorted 0.01, 0.02, 0.03, 0.04 (x4, x3, x2, x1) -> 0.04, 0.06, 0.06 (monotone), 0.06; NaN not counted
    got = S.holm([0.03, 0.01, float("nan"), 0.04, 0.02])
    assert got[:2] == pytest.approx([0.06, 0.04]) and math.isnan(got[2])
    assert got[3:] == pytest.approx([0.06, 0.06])
    assert S.holm([0.5, 0.9]) == pytest.approx([1.0, 1.0])


def test_min_detectable_effect_has_the_stated_power():
    sd, n, alpha = 0.05, 5, 0.05
    mde = S.min_detectable_effect(sd, n, alpha)
    # power of the two-sided paired t-test at that true effect, from the noncentral t: about 0.8
    df, nc = n - 1, mde / (sd / math.sqrt(n))
    crit = stats.t.ppf(1 - alpha / 2, df)
    power = stats.nct.sf(crit, df, nc) + stats.nct.cdf(-crit, df, nc)
    assert 0.75 < power < 0.85
    assert math.isnan(S.min_detectable_effect(sd, 1))


def test_family_verdicts():
    claims = [dict(expect="greater"), dict(expect="less"), dict(expect="equivalent"), dict(expect="greater"),
              dict(expect="greater")]  # fmt: skip
    diffs = [D + 0.1, D + 0.1, D / 10, [0.001, -0.001, 0.002, 0.0, -0.002], [0.2, -0.3, 0.1, 0.4, -0.2]]
    got = S.judge_family(claims, diffs, margins=[0.1, 0.1, 0.01, 0.05, 0.05])
    assert [g["verdict"] for g in got] == [S.HOLDS, S.OPPOSITE, S.EQUIVALENT, S.EQUIVALENT, S.NOT_SEPARABLE]
    primary = [S.paired_t(D + 0.1)["p"], S.paired_t(D + 0.1)["p"], S.tost_p(D / 10, 0.01)] + [
        S.paired_t(d)["p"] for d in diffs[3:]
    ]
    assert [g["p_holm"] for g in got] == pytest.approx(S.holm(primary))
    assert got[4]["mde"] > 0.3  # noisy: only a large effect would be seen at 5 seeds
    missing = S.judge_family([dict(expect="greater")], [[]], [0.1])
    assert missing[0]["verdict"] == S.NOT_RUN


def test_testbed_characteristics_from_rows():
    from jaxrlvr.analysis.study import characteristics

    base = dict(study="revisiting", variant="baseline", entropy_initial=0.55, accuracy_before=0.3, entropy_ratio=0.4,
                plateau_step=60.0, length_change=0.2, clipfrac=0.02)  # fmt: skip
    rows = [dict(base, seed=0), dict(base, seed=1, accuracy_before=0.1, plateau_step=float("nan"))]
    got = {c["column"]: c for c in characteristics(rows)}
    assert got["entropy_initial"]["met"] and got["clipfrac"]["met"] and got["length_change"]["met"]
    assert got["accuracy_before"]["met"] is False and got["accuracy_before"]["values"] == [0.3, 0.1]
    assert got["plateau_step"]["met"] is False and got["plateau_step"]["met_mean"] is False  # a seed without one
    assert got["accuracy_before"]["mean"] == 0.2 and got["accuracy_before"]["met_mean"]  # the mean meets it
    rows[1]["clipfrac"] = 0.0095  # one seed narrowly below, the mean above
    got = {c["column"]: c for c in characteristics(rows)}
    assert got["clipfrac"]["met_mean"] and got["clipfrac"]["met"] is False
    rows[1]["length_change"] = -0.3  # lengths falling in one seed and rising in another: both move
    assert {c["column"]: c for c in characteristics(rows)}["length_change"]["mean"] == 0.25
    assert all(c["met"] is None and c["met_mean"] is None for c in characteristics([]))
