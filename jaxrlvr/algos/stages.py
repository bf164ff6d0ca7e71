"""Stage detection (a controller the trainer owns; ``jaxrlvr.analysis`` re-exports it): the step where the
*rising stage* (entropy falls fast, accuracy climbs fast) turns into the *plateau stage* (both flatten),
from the training curves alone.

Deng et al. 2025 ("Decomposing the Entropy-Performance Exchange") split training by eye at the knee of the
EMA-smoothed (beta = 0.6) entropy curve and leave automatic timing open. This module fixes a rule that is
causal (step t only looks at steps <= t), so the trainer can call it every step on the history so far
(position shaping with start "auto") and get the same answer an offline analysis gets on the full run.

Rule (``detect_plateau_start``), with ``E`` and ``A`` the EMA(beta)-smoothed entropy and accuracy:

1. windowed slopes ``dE_t = (E_t - E_{t-w}) / w`` and ``dA_t = (A_t - A_{t-w}) / w`` for ``t >= w``;
2. running peaks up to t: fastest entropy decline ``D_t = max_{s<=t} (-dE_s)``, fastest accuracy gain
   ``U_t = max_{s<=t} dA_s``, highest entropy so far ``M_t = max_{s<=t} E_s``;
3. step t is *flat* when all hold:
   a. ``t >= min_steps``;
   b. the entropy has fallen: ``D_t > 0`` and ``M_t - E_t >= min_entropy_drop * |M_t|``;
   c. the entropy now declines slowly: ``-dE_t <= rel_slope * D_t``;
   d. (when an accuracy series is given) the accuracy now rises slowly: ``dA_t <= rel_slope * max(U_t, 0)``;
4. the plateau starts at the first t such that t, t+1, ..., t+patience-1 are all flat. It is reported only
   once those ``patience`` steps exist, so the answer is stable: a longer history never changes an index
   already returned, and ``None`` means "still rising (or not enough data)".

Defaults: beta 0.6 (the paper's smoothing), w = 5, rel_slope = 0.2 (the curve is flat once its slope is a
fifth of its steepest), patience 3, min_steps 10, min_entropy_drop 0.1 (10% of the peak entropy). For an
exponential decay ``E_t = c + a exp(-t/tau)`` condition (c) holds from about ``t = w + tau ln(1/rel_slope)``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np


def ema(values, beta: float = 0.6) -> np.ndarray:
    """Exponential moving average, as the papers smooth training curves (beta = 0.6):
    ``s_0 = x_0``, ``s_t = beta * s_{t-1} + (1 - beta) * x_t``.

    A NaN (or None) input is skipped: ``s_t = s_{t-1}`` (NaN until the first finite value). The trainer's plots and
    the analysis report use this same function.

    Args:
      values: [N] sequence of floats (None allowed).
      beta: smoothing weight in [0, 1); 0 is no smoothing.

    Returns:
      [N] float64.
    """
    if not 0.0 <= beta < 1.0:
        raise ValueError(f"beta must be in [0, 1), got {beta!r}")
    x = np.asarray([np.nan if v is None else v for v in values], dtype=np.float64).reshape(-1)
    out = np.empty_like(x)
    acc = np.nan
    for i, v in enumerate(x):
        if np.isfinite(v):
            acc = v if not np.isfinite(acc) else beta * acc + (1.0 - beta) * v
        out[i] = acc
    return out


@dataclasses.dataclass(frozen=True)
class PlateauDiagnostics:
    """The intermediate series of the rule (all [N] float64 / bool), for plots and debugging."""

    entropy_smooth: np.ndarray
    accuracy_smooth: np.ndarray | None
    entropy_slope: np.ndarray
    accuracy_slope: np.ndarray | None
    flat: np.ndarray
    start: int | None


def _check_int(name, v, lo):
    if isinstance(v, bool) or not isinstance(v, int | np.integer) or v < lo:
        raise ValueError(f"{name} must be an integer >= {lo}, got {v!r}")
    return int(v)


def _slope(x: np.ndarray, w: int) -> np.ndarray:
    d = np.full(x.shape, np.nan)
    if x.size > w:
        d[w:] = (x[w:] - x[:-w]) / w
    return d


def _running_max(x: np.ndarray) -> np.ndarray:
    return np.fmax.accumulate(np.where(np.isfinite(x), x, -np.inf)) if x.size else x


def plateau_diagnostics(
    entropy_series: Sequence[float],
    accuracy_series: Sequence[float] | None = None,
    *,
    beta: float = 0.6,
    window: int = 5,
    rel_slope: float = 0.2,
    patience: int = 3,
    min_steps: int = 10,
    min_entropy_drop: float = 0.1,
) -> PlateauDiagnostics:
    """``detect_plateau_start`` with its intermediate series (same arguments)."""
    w = _check_int("window", window, 1)
    k = _check_int("patience", patience, 1)
    t0 = _check_int("min_steps", min_steps, 0)
    if not 0.0 < rel_slope < 1.0:
        raise ValueError(f"rel_slope must be in (0, 1), got {rel_slope!r}")
    if not 0.0 <= min_entropy_drop < 1.0:
        raise ValueError(f"min_entropy_drop must be in [0, 1), got {min_entropy_drop!r}")
    e = ema(entropy_series, beta)
    n = e.size
    de = _slope(e, w)
    decline = -de
    peak_decline = _running_max(decline)
    peak_e = _running_max(e)
    with np.errstate(invalid="ignore"):
        flat = (
            (np.arange(n) >= t0)
            & (peak_decline > 0)
            & (peak_e - e >= min_entropy_drop * np.abs(peak_e))
            & (decline <= rel_slope * peak_decline)
        )
    a = da = None
    if accuracy_series is not None:
        a = ema(accuracy_series, beta)
        if a.size != n:
            raise ValueError(f"accuracy_series has {a.size} values, entropy_series {n}")
        da = _slope(a, w)
        peak_gain = np.maximum(_running_max(da), 0.0)
        with np.errstate(invalid="ignore"):
            flat &= da <= rel_slope * peak_gain
    flat &= np.isfinite(decline)
    start = None
    if n >= k:
        run = np.convolve(flat.astype(np.int64), np.ones(k, np.int64), mode="valid")  # run[t] = flat[t:t+k]
        hits = np.flatnonzero(run == k)
        start = int(hits[0]) if hits.size else None
    return PlateauDiagnostics(e, a, de, da, flat, start)


def detect_plateau_start(
    entropy_series: Sequence[float],
    accuracy_series: Sequence[float] | None = None,
    *,
    beta: float = 0.6,
    window: int = 5,
    rel_slope: float = 0.2,
    patience: int = 3,
    min_steps: int = 10,
    min_entropy_drop: float = 0.1,
) -> int | None:
    """Index (into the series) of the first plateau-stage step, or ``None`` while training is still in the
    rising stage. The rule is in the module docstring; it is causal and stable under appending.

    Args:
      entropy_series: [N] mean token entropy per RL step (raw; None/NaN entries are skipped by the EMA).
      accuracy_series: optional [N] rollout (or held-out) accuracy per step; ``None`` = entropy only.
      beta: EMA weight applied to both series (0 = take them as already smoothed).
      window: w, steps over which slopes are measured.
      rel_slope: a slope below this fraction of the steepest one so far counts as flat.
      patience: consecutive flat steps needed.
      min_steps: no plateau before this index.
      min_entropy_drop: the entropy must have fallen by this fraction of its running maximum.

    Returns:
      ``t`` with ``0 <= t <= N - patience``, or ``None``. With metrics records starting at step 1, the RL
      step is ``steps[t]``; the detection itself happens ``patience - 1`` steps later.
    """
    return plateau_diagnostics(
        entropy_series,
        accuracy_series,
        beta=beta,
        window=window,
        rel_slope=rel_slope,
        patience=patience,
        min_steps=min_steps,
        min_entropy_drop=min_entropy_drop,
    ).start
