"""Performance impact of single tokens by intervention (Deng et al. 2025, Eq. 6).

For a response token o_t of prompt x, take the most probable *other* token
``o'_t = argmax_{v != o_t} pi(v | x, o_<t)``, sample ``k`` continuations (k = 32 by default) from both
``x, o_<t, o_t`` and ``x, o_<t, o'_t`` with the sampler, score the completed responses, and set

    I_t = mean_k acc(x, o_<t, o_t, continuation) - mean_k acc(x, o_<t, o'_t, continuation).

``I_t > 0``: the token the policy sampled leads to correct answers more often than its strongest rival.
All continuations of many positions go through a few batched ``jaxrlvr.sampling.generate`` calls
(``prompts_per_call`` prefixes x ``k`` samples each).

Two cases need no sampling: a prefix that ends in an EOS id is already a complete response, and with a
``response_budget`` a prefix that has used the whole budget is a truncated one; each is scored once
(its accuracy is 0 or 1).
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from jaxrlvr.models import ModelConfig, hidden_states, lm_logits


@dataclasses.dataclass(frozen=True)
class ImpactResult:
    """Per measured position (N of them), numpy arrays."""

    rows: np.ndarray  # [N] row index b
    positions: np.ndarray  # [N] response position t
    original: np.ndarray  # [N] o_t
    replacement: np.ndarray  # [N] o'_t
    acc_original: np.ndarray  # [N] mean correctness of the continuations after o_t
    acc_replaced: np.ndarray  # [N] ... after o'_t
    impact: np.ndarray  # [N] acc_original - acc_replaced

    def to_grid(self, shape: tuple[int, int]) -> np.ndarray:
        """[B, R] float64 with ``I_t`` at the measured positions and NaN elsewhere (the positional profile
        skips NaN)."""
        grid = np.full(shape, np.nan)
        grid[self.rows, self.positions] = self.impact
        return grid


def _left_pad(seqs: Sequence[Sequence[int]], pad_id: int) -> tuple[np.ndarray, np.ndarray]:
    length = max(1, max(len(s) for s in seqs))
    ids = np.full((len(seqs), length), pad_id, np.int32)
    mask = np.zeros((len(seqs), length), np.int32)
    for i, s in enumerate(seqs):
        if len(s):
            ids[i, length - len(s) :] = s
            mask[i, length - len(s) :] = 1
    return ids, mask


@functools.partial(jax.jit, static_argnums=0)
def _logits_at(model_cfg, params, ids_BS, mask_BS, rows_N, cols_N):
    h = hidden_states(model_cfg, params, ids_BS, mask_BS)
    return lm_logits(model_cfg, params, h[rows_N, cols_N][None])[0]


def replacement_tokens(
    model_cfg: ModelConfig,
    params,
    prompts: Sequence[Sequence[int]],
    responses: Sequence[Sequence[int]],
    positions: Sequence[tuple[int, int]],
    *,
    pad_id: int = 0,
    max_rows: int = 16,
) -> np.ndarray:
    """``o'_t = argmax_{v != o_t} logits_t(v)`` for every ``(row, t)`` in ``positions`` (the most probable
    other token; temperature does not change an argmax). Only the rows named are run through the model,
    ``max_rows`` at a time, and logits are built only at the requested positions. [N] int64."""
    pos = [(int(b), int(t)) for b, t in positions]
    out = np.zeros(len(pos), np.int64)
    rows = sorted({b for b, _ in pos})
    for b, t in pos:
        if not 0 <= t < len(responses[b]):
            raise ValueError(f"position {(b, t)} is outside response {b} of length {len(responses[b])}")
        if t == 0 and not len(prompts[b]):
            raise ValueError(f"position {(b, t)}: row {b} has an empty prompt, nothing predicts its first token")
    for s in range(0, len(rows), max_rows):
        chunk = rows[s : s + max_rows]
        seqs = [list(prompts[b]) + list(responses[b]) for b in chunk]
        ids, mask = _left_pad(seqs, pad_id)
        where = {b: i for i, b in enumerate(chunk)}
        sel = [(k, b, t) for k, (b, t) in enumerate(pos) if b in where]
        width = ids.shape[1]
        # the hidden state predicting response token t of row b sits at column width - len(resp) + t - 1
        cols = np.asarray([width - len(responses[b]) + t - 1 for _, b, t in sel], np.int32)
        rows_sel = np.asarray([where[b] for _, b, _ in sel], np.int32)
        logits = np.array(
            _logits_at(
                model_cfg,
                params,
                jnp.asarray(ids),
                jnp.asarray(mask),
                jnp.asarray(rows_sel),
                jnp.asarray(cols),
            )
        )
        for (k, b, t), row in zip(sel, logits, strict=True):
            row = row.copy()
            row[responses[b][t]] = -np.inf
            out[k] = int(np.argmax(row))
    return out


def performance_impact(
    model_cfg: ModelConfig,
    params,
    prompts: Sequence[Sequence[int]],
    responses: Sequence[Sequence[int]],
    golds: Sequence[str],
    positions: Sequence[tuple[int, int]],
    *,
    tokenizer,
    score_fn: Callable[[list[str], list[str]], list[bool]],
    k: int = 32,
    max_new_tokens: int,
    response_budget: int | None = None,
    temperature: float = 1.0,
    top_p: float = 1.0,
    top_k: int = 0,
    seed: int = 0,
    prompts_per_call: int = 64,
    replacements: Sequence[int] | None = None,
) -> ImpactResult:
    """Eq. 6 performance impact of the tokens at ``positions`` (see the module docstring).

    Args:
      prompts: per row, the unpadded prompt ids.
      responses: per row, the response ids (a rollout dump's ``response(i)``).
      golds: per row, the gold answer handed to ``score_fn``.
      positions: ``(row, t)`` pairs, ``0 <= t < len(responses[row])``.
      tokenizer: anything with ``decode(ids)``, ``eos_ids`` and ``pad_id`` (``jaxrlvr.data.tokenizer``).
      score_fn: ``(texts, golds) -> list[bool]``; the trainer's is ``jaxrlvr.rewards.score_batch`` based.
      k: continuations per prefix (the paper: 32).
      max_new_tokens: sampling budget of every continuation.
      response_budget: the rollout's response budget; when set, a continuation is cut so that the whole
        response has at most this many tokens (as it would have in the rollout). Keep ``max_new_tokens``
        at least ``response_budget - min(t) - 1`` so no continuation is cut early by the sampler.
      temperature, top_p, top_k: sampling settings (the rollout's).
      seed: call ``c`` of the sampler uses ``seed + c``.
      prompts_per_call: prefixes per ``generate`` call (each with ``k`` samples).
      replacements: optional [N] replacement ids (default: ``replacement_tokens``).

    Returns:
      ``ImpactResult``.
    """
    from jaxrlvr.sampling import generate

    if k < 1 or prompts_per_call < 1 or max_new_tokens < 1:
        raise ValueError(f"k={k}, prompts_per_call={prompts_per_call}, max_new_tokens={max_new_tokens} must be >= 1")
    if not (len(prompts) == len(responses) == len(golds)):
        raise ValueError(f"{len(prompts)} prompts, {len(responses)} responses and {len(golds)} golds differ")
    pos = [(int(b), int(t)) for b, t in positions]
    if replacements is None:
        repl = replacement_tokens(model_cfg, params, prompts, responses, pos, pad_id=tokenizer.pad_id)
    else:
        repl = np.asarray(replacements, np.int64).reshape(-1)
        if repl.shape[0] != len(pos):
            raise ValueError(f"{repl.shape[0]} replacements for {len(pos)} positions")
    eos = set(int(e) for e in tokenizer.eos_ids)
    orig = np.asarray([responses[b][t] for b, t in pos], np.int64)

    # Every (position, variant) is a "job": a prefix (prompt + response[:t] + token) to continue k times.
    jobs = []  # (job index, row, response prefix ids, remaining budget or None)
    for n, (b, t) in enumerate(pos):
        for v, tok in enumerate((orig[n], repl[n])):
            prefix = list(responses[b][:t]) + [int(tok)]
            remaining = None if response_budget is None else response_budget - len(prefix)
            jobs.append((2 * n + v, b, prefix, remaining))
    acc = np.zeros(2 * len(pos))

    done = [j for j in jobs if int(j[2][-1]) in eos or (j[3] is not None and j[3] <= 0)]
    if done:
        texts = [tokenizer.decode(p) for _, _, p, _ in done]
        correct = score_fn(texts, [str(golds[b]) for _, b, _, _ in done])
        for (i, *_), c in zip(done, correct, strict=True):
            acc[i] = float(bool(c))

    todo = [j for j in jobs if not (int(j[2][-1]) in eos or (j[3] is not None and j[3] <= 0))]
    for c, s in enumerate(range(0, len(todo), prompts_per_call)):
        chunk = todo[s : s + prompts_per_call]
        out = generate(
            model_cfg,
            params,
            [list(prompts[b]) + p for _, b, p, _ in chunk],
            max_new_tokens=max_new_tokens,
            temperature=temperature,
            top_p=top_p,
            top_k=top_k,
            num_samples=k,
            eos_ids=tuple(sorted(eos)),
            pad_id=tokenizer.pad_id,
            seed=seed + c,
        )
        toks, lengths = np.asarray(out.tokens), np.asarray(out.lengths)
        texts, golds_rep = [], []
        for j, (_, b, p, remaining) in enumerate(chunk):
            for i in range(j * k, (j + 1) * k):
                n_keep = int(lengths[i]) if remaining is None else min(int(lengths[i]), remaining)
                texts.append(tokenizer.decode(p + [int(x) for x in toks[i, :n_keep]]))
                golds_rep.append(str(golds[b]))
        correct = np.asarray(score_fn(texts, golds_rep), dtype=np.float64).reshape(len(chunk), k)
        for j, (i, *_) in enumerate(chunk):
            acc[i] = float(correct[j].mean())

    acc_o, acc_r = acc[0::2], acc[1::2]
    return ImpactResult(
        rows=np.asarray([b for b, _ in pos], np.int64),
        positions=np.asarray([t for _, t in pos], np.int64),
        original=orig,
        replacement=repl,
        acc_original=acc_o,
        acc_replaced=acc_r,
        impact=acc_o - acc_r,
    )


def evenly_spaced_positions(mask_BR, per_row: int, rows: Sequence[int] | None = None) -> list[tuple[int, int]]:
    """``per_row`` positions per response spread evenly over its valid tokens
    (``t_j = round(j (L - 1) / (per_row - 1))``, duplicates dropped; all tokens when ``L <= per_row``), for
    a positional impact profile at a fixed sampling cost."""
    m = np.asarray(mask_BR) != 0
    if per_row < 1:
        raise ValueError(f"per_row must be >= 1, got {per_row!r}")
    out = []
    for b in range(m.shape[0]) if rows is None else rows:
        length = int(m[b].sum())
        if length == 0:
            continue
        if per_row == 1:
            ts = [length - 1]
        else:
            ts = sorted({int(round(j * (length - 1) / (per_row - 1))) for j in range(per_row)})
        out.extend((int(b), t) for t in ts)
    return out
