"""Packing a rollout batch into token-budget micro-batches (host side, numpy, deterministic).

A rollout row ``b`` is one sequence: its ``p_b`` real prompt tokens (left-padded in ``input_ids[:, :P]``)
followed by its ``r_b`` real response tokens (``attention_mask[:, P:]``, a prefix of the response columns).
The padded layout gives every row ``P + R`` slots; packing lays the ``L_b = p_b + r_b`` tokens of several
sequences end to end in rows of ``width`` slots, each with its own segment id (1, 2, ... within a row; 0 =
empty slot) and rotary positions restarting at 0, so attention (``models.attention``) never crosses
sequences and no slot holds prompt or response padding except each row's tail.

``plan_packing`` decides the layout: ``n_micro`` micro-batches of ``rows`` rows x ``width`` slots, with
``rows x width <= max_tokens`` (the token budget of one forward/backward, ``train.max_tokens_per_micro_batch``).
``rows`` is ``row_multiple`` (one row per data-parallel device); ``width`` is the smallest value on a
coarse grid (multiples of 128, 8 values per octave) that holds the longest sequence and ``1 / (n_micro *
rows)`` of all tokens, and sequences go into rows first-fit decreasing by length (ties by row index). The
grid keeps the number of distinct shapes, hence XLA compilations, to a handful per run; the first-fit
leaves a little room at row ends (the ``slots_per_token`` of the plan).

The output layer only where it is needed: of a row's ``width`` slots, only those whose hidden state predicts
a response token need the vocabulary projection, log-probs and entropies (prompt slots and empty slots do
not). ``resp_slots`` lists them per row, ``resp_width`` columns (the most any row of the batch has, on the
same grid: a static shape), so the step gathers ``[rows, resp_width]`` hidden states before the output
layer. Per-token loss arrays stay in the ``[B, R]`` layout: ``token_index[b, t]`` is the flat response slot
(``row * resp_width + k``, within micro-batch ``micro_index[b]``) that predicts response token ``t`` of
sequence ``b``, so the step gathers log-probs and entropies back into ``[B, R]`` and the loss (every
aggregation mode, KL, entropy terms, weights, metrics) is the padded one.
"""

from __future__ import annotations

import dataclasses

import numpy as np

QUANTUM = 128  # widths are multiples of this (our choice: a whole number of 128-slot attention blocks)
STEPS_PER_OCTAVE = 8  # our choice: <= 1/8 (mean ~3%) rounding waste, 4-5 distinct shapes in 20 mini-batches


def bucket(n: int, *, quantum: int = QUANTUM, steps_per_octave: int = STEPS_PER_OCTAVE) -> int:
    """The smallest grid value >= n: multiples of ``max(quantum, 2^floor(log2 n) / steps_per_octave)``."""
    n = max(int(n), 1)
    step = max(quantum, (1 << (n.bit_length() - 1)) // steps_per_octave)
    return -(-n // step) * step


@dataclasses.dataclass(frozen=True)
class PackPlan:
    """Where each sequence goes: micro-batch, row, first slot; arrays [B] (numpy int)."""

    n_micro: int
    rows: int
    width: int
    lengths: np.ndarray
    micro: np.ndarray
    row: np.ndarray
    offset: np.ndarray

    @property
    def shape(self) -> tuple[int, int, int]:
        return (self.n_micro, self.rows, self.width)

    @property
    def slots_per_token(self) -> float:
        """Slots computed per real token (1.0 = no padding at all)."""
        return self.n_micro * self.rows * self.width / max(int(self.lengths.sum()), 1)


def _first_fit_decreasing(lengths: np.ndarray, n_bins: int, capacity: int):
    """(bin, offset) per item, or None if the items do not fit. Deterministic: stable sort by length."""
    order = np.argsort(-lengths, kind="stable")
    free = np.full(n_bins, capacity, np.int64)
    bins = np.zeros(len(lengths), np.int64)
    offsets = np.zeros(len(lengths), np.int64)
    for i in order:
        fits = np.flatnonzero(free >= lengths[i])
        if fits.size == 0:
            return None
        j = fits[0]
        bins[i], offsets[i] = j, capacity - free[j]
        free[j] -= lengths[i]
    return bins, offsets


def plan_packing(lengths_B, *, max_tokens: int, row_multiple: int = 1) -> PackPlan:
    """Lays sequences of ``lengths_B`` tokens into micro-batches of ``row_multiple`` rows, each of at most
    ``max_tokens // row_multiple`` slots (see the module docstring). Raises if a sequence cannot fit."""
    lengths = np.asarray(lengths_B, np.int64)
    if lengths.ndim != 1 or lengths.size == 0 or np.any(lengths < 1):
        raise ValueError(f"lengths_B must be a non-empty 1-d array of positive lengths, got {lengths_B!r}")
    if row_multiple < 1 or max_tokens < row_multiple:
        raise ValueError(f"max_tokens={max_tokens} must be >= row_multiple={row_multiple} >= 1")
    cap = max_tokens // row_multiple
    longest, total = int(lengths.max()), int(lengths.sum())
    if longest > cap:
        raise ValueError(
            f"a sequence of {longest} tokens does not fit a row of max_tokens // devices = {max_tokens} // "
            f"{row_multiple} = {cap} slots; raise train.max_tokens_per_micro_batch to at least "
            f"{longest * row_multiple}"
        )
    n_micro = max(1, -(-total // (cap * row_multiple)))
    while True:
        n_rows = n_micro * row_multiple
        width = min(bucket(max(longest, -(-total // n_rows))), cap)
        while True:
            placed = _first_fit_decreasing(lengths, n_rows, width)
            if placed is not None or width == cap:
                break
            width = min(bucket(width + 1), cap)
        if placed is not None:
            bins, offsets = placed
            return PackPlan(
                n_micro=n_micro,
                rows=row_multiple,
                width=width,
                lengths=lengths,
                micro=bins // row_multiple,
                row=bins % row_multiple,
                offset=offsets,
            )
        n_micro += 1


def response_width(plan: PackPlan, response_lengths_B) -> int:
    """Response slots per packed row: the most response tokens any row of ``plan`` holds, rounded up on the
    width grid (``bucket``), at most the row width."""
    per_row = np.zeros(plan.n_micro * plan.rows, np.int64)
    np.add.at(per_row, plan.row * plan.n_micro + plan.micro, np.asarray(response_lengths_B, np.int64))
    return min(bucket(max(int(per_row.max()), 1)), plan.width)


def sequence_lengths(attention_mask_BS, prompt_len: int) -> tuple[np.ndarray, np.ndarray]:
    """(real prompt tokens, real response tokens) per row of a padded rollout batch; checks the layout
    (prompt left-padded, response right-padded) that packing relies on."""
    am = np.asarray(attention_mask_BS) > 0
    p_len = am[:, :prompt_len].sum(axis=1)
    r_len = am[:, prompt_len:].sum(axis=1)
    cols_p = np.arange(prompt_len)[None, :]
    cols_r = np.arange(am.shape[1] - prompt_len)[None, :]
    expect = np.concatenate([cols_p >= prompt_len - p_len[:, None], cols_r < r_len[:, None]], axis=1)
    if not np.array_equal(am, expect):
        bad = int(np.flatnonzero(np.any(am != expect, axis=1))[0])
        raise ValueError(
            f"row {bad} of attention_mask is not a left-padded prompt followed by a right-padded response; "
            "packing needs that layout (train.packing=False trains on the padded batch as it is)"
        )
    if np.any(p_len < 1):
        raise ValueError(f"row {int(np.flatnonzero(p_len < 1)[0])} has an empty prompt; packing needs >= 1 token")
    return p_len, r_len


def pack_batch(input_ids_BS, attention_mask_BS, prompt_len: int, *, max_tokens: int, row_multiple: int = 1):
    """Packs a padded rollout batch; returns (plan, arrays) with numpy int32 arrays:

    ``input_ids``, ``segment_ids``, ``positions`` [rows * n_micro, width], row ``r`` of micro-batch ``m``
    at index ``r * n_micro + m`` (so that splitting the leading axis over ``rows`` devices gives each device
    its row of every micro-batch); ``resp_slots`` / ``targets`` [rows * n_micro, K] with K =
    ``response_width``: the slots of the row that predict a response token, in order, and that token (0 in
    the unused columns). ``token_index`` [B, R]: the response slot ``r * K + k`` within the sequence's
    micro-batch that predicts response token t (0 beyond the response); ``micro_index`` [B];
    ``response_len`` [B]."""
    ids = np.asarray(input_ids_BS)
    b, s = ids.shape
    r = s - prompt_len
    p_len, r_len = sequence_lengths(attention_mask_BS, prompt_len)
    plan = plan_packing(p_len + r_len, max_tokens=max_tokens, row_multiple=row_multiple)
    m, rows, w = plan.shape
    k_resp = response_width(plan, r_len)
    shape = (rows * m, w)
    out_ids = np.zeros(shape, np.int32)
    seg = np.zeros(shape, np.int32)
    pos = np.zeros(shape, np.int32)
    slots = np.zeros((rows * m, k_resp), np.int32)
    tgt = np.zeros((rows * m, k_resp), np.int32)
    token_index = np.zeros((b, r), np.int32)
    n_in_row = np.zeros(rows * m, np.int32)
    n_resp = np.zeros(rows * m, np.int32)
    for i in np.lexsort((plan.offset, plan.row, plan.micro)):  # segment ids in slot order within a row
        flat_row = plan.row[i] * m + plan.micro[i]
        n_in_row[flat_row] += 1
        o, pl, rl = int(plan.offset[i]), int(p_len[i]), int(r_len[i])
        tokens = np.concatenate([ids[i, prompt_len - pl : prompt_len], ids[i, prompt_len : prompt_len + rl]])
        out_ids[flat_row, o : o + pl + rl] = tokens
        seg[flat_row, o : o + pl + rl] = n_in_row[flat_row]
        pos[flat_row, o : o + pl + rl] = np.arange(pl + rl)
        k0 = int(n_resp[flat_row])
        slots[flat_row, k0 : k0 + rl] = o + pl - 1 + np.arange(rl)  # slot predicting response token t
        tgt[flat_row, k0 : k0 + rl] = tokens[pl:]
        token_index[i, :rl] = plan.row[i] * k_resp + k0 + np.arange(rl)
        n_resp[flat_row] += rl
    arrays = {
        "input_ids": out_ids,
        "segment_ids": seg,
        "positions": pos,
        "resp_slots": slots,
        "targets": tgt,
        "token_index": token_index,
        "micro_index": plan.micro.astype(np.int32),
        "response_len": r_len.astype(np.int32),
    }
    return plan, arrays
