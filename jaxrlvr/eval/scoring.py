"""The scoring layer: per-problem lists of response texts -> per-sample records and a summary.

A :class:`Scorer` decides, for a batch of problems, whether each response is correct
(:class:`SampleScore`: ``correct`` plus free-form ``extras``) and which responses vote for the same answer
(the groups of Maj@N). :class:`MathScorer` uses the math verifier (:mod:`jaxrlvr.rewards`);
:class:`FunctionScorer` wraps a per-sample function, which is all an out-of-domain benchmark (code
execution, multiple choice, instruction checks) needs to join the same runner and tables.

:func:`score_responses` returns a :class:`BenchmarkResult`: one record per sample (problem id, sample
index, response, extracted answer, correct, length, quality flags, vote group, extras) and the summary
(Acc@N, Maj@N, Pass@k for k = 1..N, mean length, truncation and quality-issue rates).

Maj@N needs answers that can be voted on. A scorer whose ``vote_groups`` returns None (code execution,
instruction following) gets ``maj_at_n = None`` in the summary and "n/a" in the table. A scorer may also
define ``extra_tables(rows, scores) -> {title: {column: value}}`` for benchmark-specific metrics (IFEval's
strict/loose accuracies); they go into the summary under ``extra_tables`` and are printed after the
Pass@k table.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Hashable, Mapping, Sequence
from typing import Any, Protocol

from jaxrlvr.eval.metrics import acc_at_n, maj_at_n, mean_over_problems, pass_at_k
from jaxrlvr.rewards import (
    check_equivalence,
    extract_answer_line,
    format_violation,
    language_mixing,
    normalize_answer,
    repetition,
    score_batch,
)


@dataclasses.dataclass(frozen=True)
class SampleScore:
    """The verdict on one response: ``correct``, the extracted ``answer`` (None: none), and ``extras``."""

    correct: bool
    answer: str | None = None
    extras: Mapping[str, Any] = dataclasses.field(default_factory=dict)


class Scorer(Protocol):
    """Scores the N responses of each problem of a benchmark."""

    def score(self, rows: Sequence[dict], responses: Sequence[Sequence[str]]) -> list[list[SampleScore]]:
        """``result[p][i]`` scores ``responses[p][i]`` against ``rows[p]``."""
        ...

    def vote_groups(
        self, rows: Sequence[dict], scores: Sequence[Sequence[SampleScore]]
    ) -> list[list[Hashable | None]] | None:
        """Maj@N groups: equal labels = the same answer; None = no vote. Returning None instead of the
        lists means Maj@N does not apply to this benchmark."""
        ...


class FunctionScorer:
    """A scorer from a per-sample function ``fn(row, response) -> SampleScore | bool``.

    Votes group samples by their ``answer`` string exactly (None does not vote); pass ``vote_key`` to
    group by something else (e.g. the option a shuffled multiple-choice letter points to), or
    ``majority=False`` when answers cannot be voted on (Maj@N is then reported as not applicable).
    """

    def __init__(
        self,
        fn: Callable[[dict, str], SampleScore | bool],
        *,
        vote_key: Callable[[dict, SampleScore], Hashable | None] | None = None,
        majority: bool = True,
    ):
        self.fn = fn
        self.vote_key = vote_key
        self.majority = majority

    def score(self, rows, responses):
        out = []
        for row, resp in zip(rows, responses, strict=True):
            scores = []
            for r in resp:
                s = self.fn(row, r)
                scores.append(s if isinstance(s, SampleScore) else SampleScore(correct=bool(s)))
            out.append(scores)
        return out

    def vote_groups(self, rows, scores):
        if not self.majority:
            return None
        key = self.vote_key or (lambda row, s: s.answer)
        return [[key(row, s) for s in ss] for row, ss in zip(rows, scores, strict=True)]


def gold_answers(row: Mapping[str, Any]) -> list[str]:
    """The gold answer and its accepted alternatives."""
    golds = [row["answer"]]
    golds += [a for a in row.get("answer_alternatives") or () if a not in golds]
    return golds


class MathScorer:
    """Math answers: the last ``\\boxed{}`` (else the ``Answer:`` line) checked by the verifier.

    Maj@N groups: answers with the same normalised string form one group; all correct answers form one
    group (each is equivalent to the gold); the ``max_vote_classes`` most frequent remaining answer forms
    of a problem are merged when the verifier finds them equivalent (pairwise, in worker processes).

    Args:
      workers / timeout_s: verifier worker processes and per-item deadline.
      strict_format: only responses with exactly one ``\\boxed`` answer can be correct.
      answer_line: accept a DAPO ``Answer:`` line when there is no box.
      max_vote_classes: how many distinct wrong answers per problem are compared pairwise.
      pool: a :class:`jaxrlvr.rewards.VerifierPool` (default: the shared pool).
    """

    def __init__(
        self,
        *,
        workers: int = 2,
        timeout_s: float = 5.0,
        strict_format: bool = False,
        answer_line: bool = True,
        max_vote_classes: int = 16,
        pool=None,
    ):
        self.workers = workers
        self.timeout_s = timeout_s
        self.strict_format = strict_format
        self.answer_line = answer_line
        self.max_vote_classes = max_vote_classes
        self.pool = pool

    def score(self, rows, responses):
        flat_resp, flat_gold, shape = [], [], []
        for row, resp in zip(rows, responses, strict=True):
            golds = gold_answers(row)
            shape.append(len(resp))
            flat_resp += list(resp)
            flat_gold += [golds] * len(resp)
        res = score_batch(
            flat_resp,
            flat_gold,
            workers=self.workers,
            timeout_s=self.timeout_s,
            strict_format=self.strict_format,
            answer_line=self.answer_line,
            pool=self.pool,
        )
        out, pos = [], 0
        for n in shape:
            chunk = res[pos : pos + n]
            pos += n
            out.append(
                [
                    SampleScore(
                        correct=r.correct,
                        answer=r.answer,
                        extras={"timed_out": r.timed_out, "verifier_error": r.error},
                    )
                    for r in chunk
                ]
            )
        return out

    def vote_groups(self, rows, scores):
        labels_all: list[list[Hashable | None]] = []
        pairs: list[tuple[str, str]] = []
        pair_owner: list[tuple[int, str, str]] = []
        for p, ss in enumerate(scores):
            labels: list[Hashable | None] = []
            counts: dict[str, int] = {}
            first_raw: dict[str, str] = {}
            for s in ss:
                if s.answer is None or not normalize_answer(s.answer):
                    labels.append(None)
                elif s.correct:
                    labels.append(("gold",))
                else:
                    key = normalize_answer(s.answer)
                    labels.append(("ans", key))
                    counts[key] = counts.get(key, 0) + 1
                    first_raw.setdefault(key, s.answer)
            labels_all.append(labels)
            order = list(counts)  # first appearance order
            top = sorted(order, key=lambda k: -counts[k])[: self.max_vote_classes]
            top.sort(key=order.index)
            for j, b in enumerate(top):
                for a in top[:j]:
                    pairs.append((first_raw[b], first_raw[a]))
                    pair_owner.append((p, b, a))
        if pairs:
            eq = check_equivalence(pairs, workers=self.workers, timeout_s=self.timeout_s, pool=self.pool)
            parents: dict[tuple[int, str], str] = {}

            def find(p: int, k: str) -> str:
                while parents.get((p, k), k) != k:
                    k = parents[(p, k)]
                return k

            for (p, b, a), r in zip(pair_owner, eq, strict=True):
                if r.equal:
                    rb, ra = find(p, b), find(p, a)
                    if rb != ra:
                        parents[(p, rb)] = ra  # merge into the earlier class
            for p, labels in enumerate(labels_all):
                for i, lab in enumerate(labels):
                    if isinstance(lab, tuple) and lab[0] == "ans":
                        labels[i] = ("ans", find(p, lab[1]))
        return labels_all


def answer_line_violation(response: str) -> bool:
    """The format check for ``Answer:``-style prompts (``dapo_answer``): no ``Answer:`` line with content."""
    return extract_answer_line(response) is None


@dataclasses.dataclass
class BenchmarkResult:
    """Per-sample ``records`` and the ``summary`` of one benchmark."""

    name: str
    records: list[dict]
    summary: dict


def _rate(values: Sequence[bool]) -> float:
    return float(sum(bool(v) for v in values) / len(values)) if len(values) else float("nan")


def _label_str(label: Hashable | None) -> str | None:
    if label is None:
        return None
    if isinstance(label, tuple):
        return "gold" if label == ("gold",) else str(label[-1])
    return str(label)


def score_responses(
    name: str,
    rows: Sequence[dict],
    responses: Sequence[Sequence[str]],
    scorer: Scorer,
    *,
    lengths: Sequence[Sequence[int]] | None = None,
    truncated: Sequence[Sequence[bool]] | None = None,
    format_check: Callable[[str], bool] | None = format_violation,
    gold_of: Callable[[dict], Any] | None = None,
) -> BenchmarkResult:
    """Scores N responses per problem; returns the per-sample records and the summary.

    Args:
      name: the benchmark name (in records and summary).
      rows: the problems (each with ``id``).
      responses: ``responses[p]`` are the N response texts of ``rows[p]`` (the same N for every problem).
      scorer: a :class:`Scorer`.
      lengths: response lengths in tokens (from the sampler); None counts characters only.
      truncated: whether each response hit the length limit.
      format_check: the format-violation check (None for benchmarks without a boxed answer).
      gold_of: what to record as the gold (default: ``row["answer"]`` if present).

    ``summary["maj_at_n"]`` is None when the scorer's ``vote_groups`` returns None (Maj@N does not apply).
    """
    if len(rows) != len(responses):
        raise ValueError(f"{name}: {len(rows)} problems but {len(responses)} response lists")
    if not rows:
        raise ValueError(f"{name}: no problems to score")
    ns = {len(r) for r in responses}
    if len(ns) != 1 or 0 in ns:
        raise ValueError(f"{name}: every problem needs the same number (>= 1) of responses, got {sorted(ns)}")
    n = ns.pop()
    for arr, what in ((lengths, "lengths"), (truncated, "truncated")):
        if arr is not None and [len(a) for a in arr] != [n] * len(rows):
            raise ValueError(f"{name}: {what} must have the shape of responses")
    scores = scorer.score(rows, responses)
    votes = scorer.vote_groups(rows, scores)
    voting = votes is not None
    if not voting:
        votes = [[None] * n for _ in rows]
    gold_of = gold_of or (lambda row: row.get("answer"))
    records: list[dict] = []
    acc, maj, correct_counts = [], [], []
    flags = {"format_violation": [], "language_mixing": [], "repetition": []}
    lens: list[int] = []
    chars: list[int] = []
    truncs: list[bool] = []
    no_answer: list[bool] = []
    for p, row in enumerate(rows):
        correct = [bool(s.correct) for s in scores[p]]
        acc.append(acc_at_n(correct))
        if voting:
            maj.append(maj_at_n(votes[p], correct))
        correct_counts.append(sum(correct))
        for i, (resp, s) in enumerate(zip(responses[p], scores[p], strict=True)):
            fv = bool(format_check(resp)) if format_check is not None else None
            lm = language_mixing(resp)
            rp = repetition(resp)
            if fv is not None:
                flags["format_violation"].append(fv)
            flags["language_mixing"].append(lm)
            flags["repetition"].append(rp)
            length = int(lengths[p][i]) if lengths is not None else None
            tr = bool(truncated[p][i]) if truncated is not None else None
            if length is not None:
                lens.append(length)
            if tr is not None:
                truncs.append(tr)
            chars.append(len(resp))
            no_answer.append(s.answer is None)
            rec = {
                "benchmark": name,
                "problem_id": row["id"],
                "sample_index": i,
                "gold": gold_of(row),
                "response": resp,
                "answer": s.answer,
                "correct": bool(s.correct),
                "length": length,
                "num_chars": len(resp),
                "truncated": tr,
                "format_violation": fv,
                "language_mixing": lm,
                "repetition": rp,
                "vote_group": _label_str(votes[p][i]),
            }
            for k, v in s.extras.items():
                rec.setdefault(k, v)
            records.append(rec)
    summary = {
        "benchmark": name,
        "num_problems": len(rows),
        "num_samples": n,
        "acc_at_n": mean_over_problems(acc),
        "maj_at_n": mean_over_problems(maj) if voting else None,
        "pass_at_k": {
            str(k): mean_over_problems([pass_at_k(n, c, k) for c in correct_counts]) for k in range(1, n + 1)
        },
        "mean_length": (sum(lens) / len(lens)) if lens else float("nan"),
        "mean_chars": sum(chars) / len(chars),
        "truncation_rate": _rate(truncs),
        "no_answer_rate": _rate(no_answer),
        "format_violation_rate": _rate(flags["format_violation"]),
        "language_mixing_rate": _rate(flags["language_mixing"]),
        "repetition_rate": _rate(flags["repetition"]),
    }
    timeouts = [r.get("timed_out") for r in records if "timed_out" in r]
    if timeouts:
        summary["verifier_timeout_rate"] = _rate(timeouts)
    extra_tables = getattr(scorer, "extra_tables", None)
    if extra_tables is not None:
        tables = extra_tables(rows, scores)
        if tables:
            summary["extra_tables"] = {str(t): dict(cols) for t, cols in tables.items()}
    return BenchmarkResult(name=name, records=records, summary=summary)


# ----------------------------------------------------------------------------------------------- tables
def _pct(x: float) -> str:
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{100 * x:.1f}%"


# One convention for every table (summary.md and the printed summary): rates and accuracies in percent.
TABLE_NOTE = (
    "Accuracies and rates in percent (%) of samples (Pass@k, Maj@N: of problems); problems, N and other "
    "integers are counts; mean length in tokens."
)


def pass_k_columns(n: int) -> list[int]:
    """The k shown in the Pass@k table: every k up to 16, then powers of two, and N itself."""
    ks = [k for k in range(1, n + 1) if k <= 16 or (k & (k - 1)) == 0]
    if n not in ks:
        ks.append(n)
    return ks


def _maj_cell(s: Mapping[str, Any]) -> str:
    return "n/a" if s.get("maj_at_n", float("nan")) is None else _pct(s["maj_at_n"])


def _problems_cell(s: Mapping[str, Any]) -> str:
    skipped = s.get("skipped_problems") or 0
    return f"{s['num_problems']} ({skipped} skipped)" if skipped else str(s["num_problems"])


def _extra_cell(v: Any) -> str:
    if isinstance(v, bool) or v is None:
        return "-" if v is None else str(v)
    if isinstance(v, float):
        return _pct(v)
    return str(v)


def format_extra_tables(summaries: Sequence[Mapping[str, Any]]) -> str:
    """Markdown for the summaries' ``extra_tables``: one table per title, one row per benchmark that has it.
    Floats are fractions (shown as percentages), ints are counts; string values are listed under the table
    (e.g. which sentence tokenizer IFEval used)."""
    titles: dict[str, list[Mapping[str, Any]]] = {}
    for s in summaries:
        for title in s.get("extra_tables") or {}:
            titles.setdefault(title, []).append(s)
    blocks = []
    for title, group in titles.items():
        cols: list[str] = []
        notes: list[str] = []
        for s in group:
            for k, v in s["extra_tables"][title].items():
                if isinstance(v, str):
                    notes.append(f"- {s['benchmark']}: {k} = {v}")
                elif k not in cols:
                    cols.append(k)
        lines = [f"{title}:", "", "| benchmark | " + " | ".join(cols) + " |", "|" + " --- |" * (len(cols) + 1)]
        for s in group:
            t = s["extra_tables"][title]
            lines.append(f"| {s['benchmark']} | " + " | ".join(_extra_cell(t.get(c)) for c in cols) + " |")
        if notes:
            lines += [""] + notes
        blocks.append("\n".join(lines) + "\n")
    return "\n".join(blocks)


def format_summary_table(summaries: Sequence[Mapping[str, Any]]) -> str:
    """Markdown: the units line (:data:`TABLE_NOTE`), one row per benchmark (percentages), a Pass@k table
    (all k are in the JSON), then the benchmark-specific tables (:func:`format_extra_tables`). Maj@N shows
    "n/a" where it does not apply."""
    if not summaries:
        return ""
    head = (
        "| benchmark | problems | N | Acc@N | Maj@N | Pass@N | mean length | truncated | no answer | "
        "format viol. | lang. mixing | repetition |"
    )
    lines = [TABLE_NOTE, "", head, "|" + " --- |" * 12]
    for s in summaries:
        n = s["num_samples"]
        ml = s.get("mean_length")
        ml_str = "-" if ml is None or math.isnan(ml) else f"{ml:.0f}"
        lines.append(
            f"| {s['benchmark']} | {_problems_cell(s)} | {n} | {_pct(s['acc_at_n'])} | "
            f"{_maj_cell(s)} | {_pct(s['pass_at_k'][str(n)])} | {ml_str} | "
            f"{_pct(s['truncation_rate'])} | "
            f"{_pct(s['no_answer_rate'])} | {_pct(s['format_violation_rate'])} | "
            f"{_pct(s['language_mixing_rate'])} | {_pct(s['repetition_rate'])} |"
        )
    n_max = max(s["num_samples"] for s in summaries)
    ks = pass_k_columns(n_max)
    lines += [
        "",
        "| benchmark | " + " | ".join(f"Pass@{k}" for k in ks) + " |",
        "|" + " --- |" * (len(ks) + 1),
    ]
    for s in summaries:
        cells = [_pct(s["pass_at_k"].get(str(k), float("nan"))) for k in ks]
        lines.append(f"| {s['benchmark']} | " + " | ".join(cells) + " |")
    out = "\n".join(lines) + "\n"
    extra = format_extra_tables(summaries)
    return out + ("\n" + extra if extra else "")
