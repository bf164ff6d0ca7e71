"""Math answer extraction, equivalence (math-verify on sympy) and the +1 / -1 reward.

- :func:`extract_answer`: the content of the last ``\\boxed{...}`` (balanced braces; ``\\fbox{...}`` and
  ``\\boxed x`` too), or None.
- :func:`extract_final_answer`: the boxed answer, else the DAPO ``Answer: ...`` line.
- :func:`is_equivalent`: math-verify based equivalence with a hard timeout; safe from any thread.
- :func:`math_reward` / :func:`score_batch`: the reward of one response / of many in parallel worker
  processes (per-item deadlines, results in input order).

Every sympy call runs in a verifier worker process (:mod:`jaxrlvr.rewards.pool`); answers whose
normalised strings already decide the question (``\\dfrac{1}{2}`` vs ``\\frac12``, ``\\text{(C)}`` vs
``C``, ``025`` vs ``25``) are settled in the calling process without a worker.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence

from jaxrlvr.rewards._verify_core import brace_matches, canonical_answer, quick_verdict
from jaxrlvr.rewards.pool import EquivResult, VerifierPool, default_pool

_BOX_COMMANDS = ("\\boxed", "\\fbox")
_BOX_RE = re.compile(r"\\(?:boxed|fbox)(?![a-zA-Z])")
_ANSWER_LINE = re.compile(r"(?:^|(?<=[\s*#]))\**answer\**\s*:\**\s*(?P<ans>[^\n]*)", re.IGNORECASE)


# Our choice: the longest gold answer in the shipped math benchmarks is far shorter (see
# docs/rewards_data_eval.md); an extracted answer longer than this (after whitespace runs are collapsed)
# is scored incorrect without canonicalisation or sympy.
MAX_ANSWER_CHARS = 2048
# Our choice: a response longer than this is scored on its last MAX_RESPONSE_CHARS characters (the final
# answer is at the end). 256k characters is over 12 characters per token for a 20k-token DAPO rollout;
# pass ``max_response_chars`` from the rollout's token limit to tighten it.
MAX_RESPONSE_CHARS = 1 << 18
_WS_RUN = re.compile(r"\s+")


def find_boxed(response: str) -> list[str]:
    """Contents of every top-level ``\\boxed{...}`` / ``\\fbox{...}`` / ``\\boxed x``, in order.

    A box nested inside another box is part of the outer one; an unterminated box (a truncated
    response) is not a box. Linear in the length of ``response`` (braces are matched in one pass).
    """
    if not isinstance(response, str) or "\\" not in response:
        return []
    out: list[str] = []
    matches: dict[int, int] | None = None
    pos = 0
    n = len(response)
    while True:
        m = _BOX_RE.search(response, pos)
        if m is None:
            break
        j = m.end()
        k = j
        while k < n and response[k] in " \t":
            k += 1
        if k < n and response[k] == "{":
            if matches is None:
                matches = brace_matches(response)
            end = matches.get(k, -1)
            if end < 0:
                pos = j
                continue
            out.append(response[k + 1 : end])
            pos = end + 1
        elif k > j and k < n:
            # ``\boxed 5``: the text up to the next '$', newline or end
            end = k
            while end < n and response[end] not in "$\n":
                end += 1
            out.append(response[k:end])
            pos = end
        else:
            pos = j
    return out


def _clean_boxed(content: str, max_chars: int = MAX_ANSWER_CHARS) -> str | None:
    s = _WS_RUN.sub(" ", content).strip()
    if len(s) > max_chars:
        return s  # too long to be an answer: check_equivalence scores it incorrect
    # a box around a box: keep the innermost
    inner = find_boxed(s)
    while len(inner) == 1 and _BOX_RE.match(s) and s.endswith("}"):
        s = inner[0].strip()
        inner = find_boxed(s)
    if s.endswith(".") and not s.endswith("..."):
        s = s[:-1].rstrip()
    return s or None


def extract_answer(response: str) -> str | None:
    """The content of the last ``\\boxed{...}`` (nested braces fine; ``\\fbox{}``, ``\\boxed x``), or None."""
    boxes = find_boxed(response)
    if not boxes:
        return None
    return _clean_boxed(boxes[-1])


def extract_answer_line(response: str) -> str | None:
    """The DAPO format: the text after the last ``Answer:`` (to the end of its line), or None."""
    if not isinstance(response, str):
        return None
    last = None
    for m in _ANSWER_LINE.finditer(response):
        last = m
    if last is None:
        return None
    s = last.group("ans").strip()
    boxed = extract_answer(s)
    if boxed is not None:
        return boxed
    for _ in range(2):
        s = s.strip("*").strip()
        if s.endswith(".") and not s.endswith("..."):
            s = s[:-1].rstrip()
        if s.startswith("$") and s.endswith("$") and len(s) >= 2:
            s = s.strip("$").strip()
    return s or None


def extract_final_answer(response: str, *, answer_line: bool = True) -> str | None:
    """The boxed answer; failing that (and if ``answer_line``), the ``Answer: ...`` line."""
    ans = extract_answer(response)
    if ans is None and answer_line:
        ans = extract_answer_line(response)
    return ans


def format_violation(response: str) -> bool:
    """True when the response has no ``\\boxed`` answer or more than one (Appendix B's format check)."""
    return len(find_boxed(response)) != 1


def normalize_answer(answer: str | None) -> str:
    """The canonical string form used for exact matching and for grouping votes ('' for None)."""
    return "" if answer is None else canonical_answer(answer)


def _golds(gold: str | Sequence[str]) -> tuple[str, ...]:
    if isinstance(gold, str):
        return (gold,)
    golds = tuple(g for g in gold if isinstance(g, str))
    if not golds:
        raise ValueError(f"gold must be a string or a non-empty sequence of strings, got {gold!r}")
    return golds


def check_equivalence(
    pairs: Sequence[tuple[str | None, str | Sequence[str]]],
    *,
    workers: int | None = None,
    timeout_s: float = 5.0,
    pool: VerifierPool | None = None,
    max_answer_chars: int = MAX_ANSWER_CHARS,
) -> list[EquivResult]:
    """Batch equivalence: for each ``(pred, gold_or_golds)``, is ``pred`` equivalent to (any) gold?

    Pairs whose normalised strings decide the answer are settled here (linear-time string work on at most
    ``max_answer_chars`` characters); the rest go to the worker pool (``pool``, or the shared default pool
    grown to ``workers``), where each item has a hard deadline of ``timeout_s``. A ``pred`` longer than
    ``max_answer_chars`` is not equivalent (``error="answer too long"``). In input order.
    """
    results: list[EquivResult | None] = [None] * len(pairs)
    todo_idx: list[int] = []
    todo: list[tuple[str, tuple[str, ...]]] = []
    for i, (pred, gold) in enumerate(pairs):
        golds = _golds(gold)
        if pred is None or not isinstance(pred, str) or not pred.strip():
            results[i] = EquivResult(False)
            continue
        if len(pred) > max_answer_chars:
            results[i] = EquivResult(False, error="answer too long")
            continue
        verdicts = [quick_verdict(pred, g) for g in golds]
        if any(v is True for v in verdicts):
            results[i] = EquivResult(True)
        elif all(v is False for v in verdicts):
            results[i] = EquivResult(False)
        else:
            todo_idx.append(i)
            todo.append((pred, tuple(g for g, v in zip(golds, verdicts, strict=True) if v is None)))
    if todo:
        p = pool if pool is not None else default_pool(workers)
        for i, r in zip(todo_idx, p.check(todo, timeout_s=timeout_s, max_workers=workers), strict=True):
            results[i] = r
    return results  # type: ignore[return-value]


def is_equivalent(pred: str | None, gold: str | Sequence[str], *, timeout_s: float = 5.0) -> bool:
    """True when the answer ``pred`` equals ``gold`` (or any of several golds) mathematically.

    Built on math-verify: fractions/decimals, ``\\dfrac``, ``\\left(``, intervals, sets, tuples, matrices,
    ``\\sqrt``, pi, percentages, units and degrees, ``x = 3`` vs ``3``, text answers. Runs in a worker
    process with a hard deadline: a pathological input returns False within ``timeout_s``. Safe to call
    from any thread.
    """
    return check_equivalence([(pred, gold)], workers=1, timeout_s=timeout_s)[0].equal


@dataclasses.dataclass(frozen=True)
class ScoreResult:
    """The score of one response.

    Attributes:
      reward: ``correct`` or ``incorrect`` value (e.g. +1 / -1).
      correct: the extracted answer is equivalent to the gold (and the format is fine in strict mode).
      answer: the extracted answer (None when there is none).
      format_ok: exactly one ``\\boxed`` answer.
      timed_out: the equivalence check hit its deadline (counted as incorrect).
      error: a verifier failure (counted as incorrect), else None.
    """

    reward: float
    correct: bool
    answer: str | None
    format_ok: bool
    timed_out: bool = False
    error: str | None = None


def score_batch(
    responses: Sequence[str],
    golds: Sequence[str | Sequence[str]],
    *,
    workers: int | None = None,
    timeout_s: float = 5.0,
    correct: float = 1.0,
    incorrect: float = -1.0,
    strict_format: bool = False,
    answer_line: bool = True,
    pool: VerifierPool | None = None,
    max_response_chars: int = MAX_RESPONSE_CHARS,
    max_answer_chars: int = MAX_ANSWER_CHARS,
) -> list[ScoreResult]:
    """Scores responses against gold answers in parallel worker processes; results in input order.

    Args:
      responses: model outputs (decoded text).
      golds: one gold answer string per response, or a sequence of acceptable gold strings.
      workers: worker processes to use (the shared pool grows to this; default: the pool's size, which is
        ``min(8, os.cpu_count())`` when the pool is first created here).
      timeout_s: hard deadline per item; a timed-out item is incorrect.
      correct / incorrect: the two reward values (the papers use +1 / -1).
      strict_format: only a response with exactly one ``\\boxed`` answer can be correct.
      answer_line: without a box, fall back to the DAPO ``Answer: ...`` line (ignored when strict).
      pool: a :class:`VerifierPool` to use instead of the shared one.
      max_response_chars: a longer response is scored on its last ``max_response_chars`` characters. The
        longest real response is the rollout's token limit: pass about ``16 * max_new_tokens``.
      max_answer_chars: a longer extracted answer (whitespace runs collapsed) is incorrect.

    Extraction and the string shortcuts run here, in linear time on at most ``max_response_chars``
    characters; everything else runs in the worker pool under the per-item deadline ``timeout_s``.
    """
    if len(responses) != len(golds):
        raise ValueError(f"score_batch got {len(responses)} responses but {len(golds)} golds")
    if max_response_chars < 1 or max_answer_chars < 1:
        raise ValueError(
            f"max_response_chars={max_response_chars} and max_answer_chars={max_answer_chars} must be >= 1"
        )
    answers: list[str | None] = []
    format_ok: list[bool] = []
    for r in responses:
        if isinstance(r, str) and len(r) > max_response_chars:
            r = r[-max_response_chars:]
        boxes = find_boxed(r) if isinstance(r, str) else []
        ok = len(boxes) == 1
        format_ok.append(ok)
        if strict_format and not ok:
            answers.append(None)
            continue
        ans = _clean_boxed(boxes[-1], max_answer_chars) if boxes else None
        if ans is None and answer_line and not strict_format:
            ans = extract_answer_line(r)
        answers.append(ans)
    eq = check_equivalence(
        list(zip(answers, golds, strict=True)),
        workers=workers,
        timeout_s=timeout_s,
        pool=pool,
        max_answer_chars=max_answer_chars,
    )
    out = []
    for ans, ok, e in zip(answers, format_ok, eq, strict=True):
        good = e.equal and (ok or not strict_format)
        out.append(
            ScoreResult(
                reward=float(correct if good else incorrect),
                correct=bool(good),
                answer=ans,
                format_ok=ok,
                timed_out=e.timed_out,
                error=e.error,
            )
        )
    return out


def math_reward(
    response: str,
    gold: str | Sequence[str],
    *,
    correct: float = 1.0,
    incorrect: float = -1.0,
    strict_format: bool = False,
    timeout_s: float = 5.0,
) -> float:
    """+1 (``correct``) when the response's final answer equals the gold, else -1 (``incorrect``).

    Non-strict: the last ``\\boxed`` answer counts, else the ``Answer:`` line. Strict: the response must
    hold exactly one ``\\boxed`` answer.
    """
    return score_batch(
        [response],
        [gold],
        workers=1,
        timeout_s=timeout_s,
        correct=correct,
        incorrect=incorrect,
        strict_format=strict_format,
    )[0].reward
