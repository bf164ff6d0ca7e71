"""Text-level analyses of rollouts: quality issue rates, token categories, and diversity.

- Quality (Deng et al. 2025, Appendix B): format violation, language mixing, repetition, with the checks
  of ``jaxrlvr.rewards`` (``quality_flags``).
- Token categories (Appendix C): every word / number / symbol of a response is put in one of four
  classes by the lexicons and rules below (``classify_units``), and counted per response.
- Diversity of the G samples of a prompt: distinct-n ratio and Self-BLEU (``sacrebleu``).

Token-category rules, applied to the *units* of a text, found left to right by one regular expression:

1. a LaTeX command (``\\frac``, ``\\sqrt``, ...), a number (``12``, ``3.5``, ``1,000``) or a math symbol
   (``+ - * / = < > ^ ( ) [ ] { } | ! % $ _`` and the Unicode operators ``√ ∑ ∏ ∫ ≤ ≥ ≠ ± × ÷ · π ∞ °``)
   is **formal reasoning**;
2. a word (letters, with inner ``'``/``-``): lowercased, it is looked up in the lexicons below, first as
   part of a listed multi-word phrase (``let me``, ``double check``, ``make sure``, ``on second thought``:
   all **metacognitive**), then alone: ``METACOGNITIVE`` -> metacognitive, ``LOGICAL`` -> logical
   structuring, ``FORMAL_WORDS`` -> formal reasoning; a single letter other than ``a``/``i`` is a variable
   (formal reasoning); every other word is **semantic support**;
3. anything else (``. , ; : ? "`` and other punctuation) is not counted.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np

CATEGORIES = ("formal_reasoning", "logical_structuring", "metacognitive", "semantic_support")
QUALITY_ISSUES = ("format_violation", "language_mixing", "repetition")

FORMAL_WORDS = frozenset(
    """
    add addition angle area average carry circle coefficient compute calculate cube cubed degree denominator
    derivative diameter difference digit digits divide divided divisible division equal equals equation
    equations even exponent expression factor factors formula fraction function gcd hypotenuse inequality
    integer integers integral lcm log logarithm matrix maximum mean median minimum minus mod modulo multiple
    multiply multiplied number numbers numerator odd percent perimeter polynomial power prime probability
    product quotient radius ratio remainder root roots sequence series simplify sin cos tan solve solution
    solutions square squared subtract subtraction sum substitute term terms times total triangle value values
    variable vector vertex vertices volume plus
    """.split()
)
LOGICAL = frozenset(
    """
    therefore thus hence so because since if then else otherwise however but although though whereas while
    first firstly second secondly third next finally lastly step steps consequently implies imply given
    assume assuming suppose let let's case cases when which means conclude conclusion and or not both either
    neither only also furthermore moreover additionally result follows following answer now
    """.split()
)
METACOGNITIVE = frozenset(
    """
    wait hmm hmmm check checking verify verifying verification recheck re-check double-check re-examine
    reconsider actually mistake mistakes error errors wrong correct correctly incorrect oops perhaps maybe
    think thinking seems seem sure confirm confident alternatively again recall remember understand note
    notice careful reflect review realize
    """.split()
)
PHRASES_METACOGNITIVE = (("on", "second", "thought"), ("let", "me"), ("double", "check"), ("make", "sure"))

_UNIT = re.compile(
    r"(?P<latex>\\[A-Za-z]+)"
    r"|(?P<number>\d+(?:[.,]\d+)*)"
    r"|(?P<word>[A-Za-z]+(?:['\u2019-][A-Za-z]+)*)"
    r"|(?P<symbol>[-+*/=<>^()\[\]{}|!%$_\u221a\u2211\u220f\u222b\u2264\u2265\u2260\u00b1\u00d7\u00f7\u00b7\u03c0\u221e\u00b0])"
    r"|(?P<other>\S)"
)


def quality_flags_batch(texts: Sequence[str]) -> dict[str, np.ndarray]:
    """``{issue: [N] bool}`` for the three quality issues (``jaxrlvr.rewards.quality_flags``) and ``any``."""
    from jaxrlvr.rewards import quality_flags

    flags = [quality_flags(t) for t in texts]
    out = {k: np.asarray([f[k] for f in flags], bool) for k in QUALITY_ISSUES}
    out["any"] = np.logical_or.reduce([out[k] for k in QUALITY_ISSUES]) if flags else np.zeros(0, bool)
    return out


def quality_rates(texts: Sequence[str], rows_B=None) -> dict[str, float]:
    """Share of responses with each quality issue (and with any): ``{issue: rate}``; NaN when no response
    is selected. ``rows_B`` (optional [N] bool) restricts it, e.g. to incorrect responses."""
    flags = quality_flags_batch(texts)
    sel = np.ones(len(texts), bool) if rows_B is None else np.asarray(rows_B, bool).reshape(-1)
    n = int(sel.sum())
    return {k: (float(v[sel].mean()) if n else float("nan")) for k, v in flags.items()}


def classify_units(text: str) -> list[tuple[str, str | None]]:
    """``[(unit, category or None)]`` for the units of ``text`` by the rules of the module docstring."""
    units = [(m.group(0), m.lastgroup) for m in _UNIT.finditer(text or "")]
    words = [u.lower() if kind == "word" else None for u, kind in units]
    out: list[tuple[str, str | None]] = []
    i = 0
    while i < len(units):
        unit, kind = units[i]
        phrase = next(
            (p for p in PHRASES_METACOGNITIVE if tuple(words[i : i + len(p)]) == p),
            None,
        )
        if phrase is not None:
            out.extend((units[i + j][0], "metacognitive") for j in range(len(phrase)))
            i += len(phrase)
            continue
        if kind in ("latex", "number", "symbol"):
            cat = "formal_reasoning"
        elif kind == "word":
            w = words[i].replace("\u2019", "'")
            if w in METACOGNITIVE:
                cat = "metacognitive"
            elif w in LOGICAL:
                cat = "logical_structuring"
            elif w in FORMAL_WORDS or (len(w) == 1 and w not in ("a", "i")):
                cat = "formal_reasoning"
            else:
                cat = "semantic_support"
        else:
            cat = None
        out.append((unit, cat))
        i += 1
    return out


def category_counts(texts: Sequence[str]) -> np.ndarray:
    """[N, 4] int64 counts of the units of each response per category (order ``CATEGORIES``)."""
    out = np.zeros((len(texts), len(CATEGORIES)), np.int64)
    index = {c: j for j, c in enumerate(CATEGORIES)}
    for i, t in enumerate(texts):
        for _, cat in classify_units(t):
            if cat is not None:
                out[i, index[cat]] += 1
    return out


def category_shares(texts: Sequence[str], rows_B=None) -> dict[str, float]:
    """Share of each category among all counted units of the (selected) responses (pooled)."""
    counts = category_counts(texts)
    if rows_B is not None:
        counts = counts[np.asarray(rows_B, bool).reshape(-1)]
    total = counts.sum()
    return {c: (float(counts[:, j].sum() / total) if total else float("nan")) for j, c in enumerate(CATEGORIES)}


def _units(text: str, unit: str) -> list[str]:
    if unit == "word":
        return (text or "").split()
    if unit == "char":
        return list(text or "")
    raise ValueError(f"unit must be 'word' or 'char', got {unit!r}")


def distinct_n(texts: Sequence[str], n: int = 2, *, unit: str = "word") -> float:
    """Distinct-n ratio of a set of texts: ``#unique n-grams / #n-grams``, pooled over the texts (words by
    whitespace, or characters with ``unit="char"``); 1 = no n-gram repeats. NaN with no n-gram."""
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n!r}")
    grams = []
    for t in texts:
        u = _units(t, unit)
        grams.extend(tuple(u[i : i + n]) for i in range(len(u) - n + 1))
    return float(len(set(grams)) / len(grams)) if grams else float("nan")


def self_bleu(texts: Sequence[str]) -> float:
    """Self-BLEU of a set of samples: the mean over i of sentence BLEU (sacrebleu, 13a tokenisation,
    exponential smoothing, effective order) of sample i against the other samples as references, divided
    by 100. 0 = no shared n-grams, 1 = identical samples. NaN with fewer than 2 samples."""
    from sacrebleu.metrics import BLEU

    if len(texts) < 2:
        return float("nan")
    bleu = BLEU(effective_order=True)
    scores = [
        bleu.sentence_score(str(t), [str(r) for j, r in enumerate(texts) if j != i]).score for i, t in enumerate(texts)
    ]
    return float(np.mean(scores) / 100.0)


def group_diversity(
    texts: Sequence[str], group_size: int, *, ns: Sequence[int] = (1, 2, 3), unit: str = "word"
) -> dict[str, np.ndarray]:
    """Per prompt (groups of ``group_size`` contiguous samples): ``distinct_<n>`` for each n in ``ns`` and
    ``self_bleu``; ``{name: [P] float64}``."""
    if group_size < 1 or len(texts) % group_size:
        raise ValueError(f"{len(texts)} texts do not split into groups of {group_size}")
    groups = [list(texts[i : i + group_size]) for i in range(0, len(texts), group_size)]
    out = {f"distinct_{n}": np.asarray([distinct_n(g, n, unit=unit) for g in groups]) for n in ns}
    out["self_bleu"] = np.asarray([self_bleu(g) for g in groups])
    return out
