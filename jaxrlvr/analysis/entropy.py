"""Entropy of positive vs negative samples, EMA smoothing, and positional profiles (the U-shape).

Host-side numpy: every function takes arrays (numpy or JAX) and returns numpy; masks are explicit and
padded positions never enter a mean.
"""

from __future__ import annotations

import numpy as np

from jaxrlvr.algos.stages import ema  # noqa: F401 (re-exported: the stage detector owns the smoothing)


def _bool(x) -> np.ndarray:
    return np.asarray(x) != 0


def _check_bt(name: str, x) -> np.ndarray:
    x = np.asarray(x)
    if x.ndim != 2:
        raise ValueError(f"{name} must have shape [B, T], got shape {x.shape}")
    return x


def masked_mean(x_BT, mask_BT) -> float:
    """``sum(x * m) / sum(m)`` over the valid entries; NaN when there are none."""
    m = _bool(mask_BT)
    n = int(m.sum())
    if n == 0:
        return float("nan")
    return float(np.where(m, np.asarray(x_BT, np.float64), 0.0).sum() / n)


def entropy_by_outcome(entropy_BT, mask_BT, positive_B) -> dict[str, float]:
    """Token-mean entropy of all, positive (correct) and negative (incorrect) samples of one step.

    ``H_pos = sum_{b pos, t} H_bt m_bt / sum_{b pos, t} m_bt`` (likewise ``H_neg``, ``H_all``): the token
    mean the trainer logs as ``entropy_pos`` / ``entropy_neg`` (NaN when a class has no token).

    Returns:
      ``{"all", "pos", "neg"}`` floats.
    """
    ent = _check_bt("entropy_BT", entropy_BT)
    m = _bool(_check_bt("mask_BT", mask_BT))
    pos = _bool(positive_B).reshape(-1)
    if pos.shape[0] != ent.shape[0]:
        raise ValueError(f"positive_B has {pos.shape[0]} rows, entropy_BT {ent.shape[0]}")
    return {
        "all": masked_mean(ent, m),
        "pos": masked_mean(ent, m & pos[:, None]),
        "neg": masked_mean(ent, m & ~pos[:, None]),
    }


def relative_positions(mask_BT) -> np.ndarray:
    """``l_t = t / (L - 1)`` of the t-th valid token (t = 0 .. L-1) of a row with L valid tokens (0 when
    L = 1), as in ``jaxrlvr.algos.position_bonus``; NaN on padding. [B, T] float64."""
    m = _bool(_check_bt("mask_BT", mask_BT))
    idx = np.cumsum(m, axis=-1) - 1.0
    length = m.sum(-1, keepdims=True).astype(np.float64)
    rel = idx / np.maximum(length - 1.0, 1.0)
    return np.where(m, rel, np.nan)


def position_bins(mask_BT, num_bins: int = 20) -> np.ndarray:
    """Bin index ``k = min(floor(l_t * K), K - 1)`` of every valid token (``l_t`` from
    ``relative_positions``; the last token of a row falls in bin K-1); -1 on padding. [B, T] int64."""
    if isinstance(num_bins, bool) or not isinstance(num_bins, int) or num_bins < 1:
        raise ValueError(f"num_bins must be a positive integer, got {num_bins!r}")
    rel = relative_positions(mask_BT)
    k = np.minimum(np.floor(np.nan_to_num(rel, nan=0.0) * num_bins), num_bins - 1).astype(np.int64)
    return np.where(np.isfinite(rel), k, -1)


def positional_profile(values_BT, mask_BT, *, num_bins: int = 20, rows_B=None) -> tuple[np.ndarray, np.ndarray]:
    """Mean of a per-token quantity (entropy, impact, gradient proxy, ...) by relative-position bin.

    ``mean_k = sum_{(b,t) in bin k} v_bt / #tokens in bin k`` over the valid tokens of the selected rows
    (token-weighted, pooled across responses; bins from ``position_bins``). Non-finite values (e.g. a
    position whose impact was not measured, NaN) are left out.

    Args:
      values_BT: [B, T] per-token values.
      mask_BT: [B, T] response mask.
      num_bins: K (20 in the paper's figures).
      rows_B: optional [B] bool selecting rows (e.g. positive samples).

    Returns:
      (mean_K, count_K): float64 means (NaN for an empty bin) and int64 token counts.
    """
    v = np.asarray(_check_bt("values_BT", values_BT), np.float64)
    m = _bool(_check_bt("mask_BT", mask_BT))
    if v.shape != m.shape:
        raise ValueError(f"values_BT {v.shape} and mask_BT {m.shape} differ in shape")
    bins = position_bins(m, num_bins)
    sel = m & np.isfinite(v)
    if rows_B is not None:
        rows = _bool(rows_B).reshape(-1)
        if rows.shape[0] != v.shape[0]:
            raise ValueError(f"rows_B has {rows.shape[0]} rows, values_BT {v.shape[0]}")
        sel &= rows[:, None]
    k = bins[sel]
    count = np.bincount(k, minlength=num_bins).astype(np.int64)
    total = np.bincount(k, weights=v[sel], minlength=num_bins)
    mean = np.where(count > 0, total / np.maximum(count, 1), np.nan)
    return mean, count


def positional_profile_by_outcome(values_BT, mask_BT, positive_B, *, num_bins: int = 20) -> dict:
    """``positional_profile`` of all, positive and negative samples:
    ``{"all"|"pos"|"neg": (mean_K, count_K)}``."""
    pos = _bool(positive_B).reshape(-1)
    return {
        "all": positional_profile(values_BT, mask_BT, num_bins=num_bins),
        "pos": positional_profile(values_BT, mask_BT, num_bins=num_bins, rows_B=pos),
        "neg": positional_profile(values_BT, mask_BT, num_bins=num_bins, rows_B=~pos),
    }
