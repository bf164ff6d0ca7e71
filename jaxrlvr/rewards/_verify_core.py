"""Answer normalisation and the math-verify equivalence check (the code that runs inside verifier workers).

This module must stay importable on its own, by file path, with only the standard library at import time:
the verifier worker loads it without importing the ``jaxrlvr`` package (see ``_worker.py``). ``math_verify``
(and through it sympy) is imported lazily by :func:`check_equivalent`.

Two normal forms of an answer string:

- :func:`canonical_answer` -- an aggressive string form (no spaces, no ``\\text`` wrappers, no units of
  degrees/percent/dollars, ``\\dfrac`` -> ``\\frac``, choice letters ``(C)`` -> ``C``). Two answers with
  the same canonical form are treated as equal without sympy; it is also the key that groups identical votes.
- :func:`latex_answer` -- a lighter clean-up (units, degrees, separators, e-notation) that keeps the
  structure and ``\\text`` words; it is handed to math-verify's parser (with its unit stripping off).
"""

from __future__ import annotations

import math
import re
from functools import lru_cache

# --------------------------------------------------------------------------------------------------
# helpers shared by the two normal forms
# --------------------------------------------------------------------------------------------------

_WRAPPERS = (("$$", "$$"), ("$", "$"), ("\\(", "\\)"), ("\\[", "\\]"))


_BRACE_TOKEN = re.compile(r"\\.|[{}]", re.DOTALL)


def brace_matches(s: str) -> dict[int, int]:
    """``{index of '{': index of its matching '}'}`` for every closed ``{`` of ``s``, in one linear pass
    (escaped braces ``\\{`` ``\\}`` skipped). Unclosed braces are absent."""
    out: dict[int, int] = {}
    stack: list[int] = []
    for m in _BRACE_TOKEN.finditer(s):
        c = m.group()
        if c == "{":
            stack.append(m.start())
        elif c == "}" and stack:
            out[stack.pop()] = m.start()
    return out


def _matching_brace(s: str, open_idx: int) -> int:
    """Index of the ``}`` closing the ``{`` at ``open_idx`` (escaped braces skipped), or -1."""
    depth = 0
    i = open_idx
    n = len(s)
    while i < n:
        c = s[i]
        if c == "\\":
            i += 2
            continue
        if c == "{":
            depth += 1
        elif c == "}":
            depth -= 1
            if depth == 0:
                return i
        i += 1
    return -1


def _unwrap_command(s: str, commands: tuple[str, ...], keep_content: bool = True) -> str:
    """Replaces every ``\\cmd{content}`` (balanced) by ``content`` (or by nothing)."""
    for cmd in commands:
        token = "\\" + cmd
        start = 0
        while True:
            i = s.find(token, start)
            if i < 0:
                break
            j = i + len(token)
            # the command name must end here (``\\textbf`` is not ``\\text`` + ``bf``)
            if j < len(s) and s[j].isalpha():
                start = j
                continue
            k = j
            while k < len(s) and s[k] == " ":
                k += 1
            if k >= len(s) or s[k] != "{":
                start = j
                continue
            end = _matching_brace(s, k)
            if end < 0:
                break
            inner = s[k + 1 : end] if keep_content else ""
            s = s[:i] + inner + s[end + 1 :]
            start = i
    return s


def _strip_outer_wrappers(s: str) -> str:
    changed = True
    while changed and s:
        changed = False
        s = s.strip()
        for left, right in _WRAPPERS:
            if len(s) >= len(left) + len(right) and s.startswith(left) and s.endswith(right):
                s = s[len(left) : len(s) - len(right)]
                changed = True
                break
        for cmd in ("\\boxed", "\\fbox"):
            if s.startswith(cmd):
                k = len(cmd)
                while k < len(s) and s[k] == " ":
                    k += 1
                if k < len(s) and s[k] == "{" and _matching_brace(s, k) == len(s) - 1:
                    s = s[k + 1 : -1]
                    changed = True
    return s.strip()


_THOUSANDS_LATEX = re.compile(r"(\d)(?:\{,\}|,\\!|,\\,)(?=\d{3}(?!\d))")
_PLAIN_THOUSANDS = re.compile(r"[+-]?\d{1,3}(?:,\d{3})+(?:\.\d+)?")
_SPACING = re.compile(r"(?<!\\)\\[!,;: ]|\\q?quad\b|~")
_LEFT_RIGHT = re.compile(r"\\(?:left|right|big|Big|bigg|Bigg)(?![a-zA-Z])\s*(\.)?")
_FRAC_VARIANTS = re.compile(r"\\[dtc]frac(?![a-zA-Z])")
_DEGREES = re.compile(
    r"(?:\^\s*\{\s*\\circ\s*\}|\^\s*\\circ(?![a-zA-Z])|\\circ(?![a-zA-Z])|°|\\degree(?![a-zA-Z]))"
    r"(?:\s*(?:\\(?:mathrm|text)\s*\{\s*[CFK]\s*\}|[CFK](?![A-Za-z])))?"  # 100^\circ C, ^\circ\mathrm{F}
)
# Units. math-verify's own unit stripping is turned off (it removes trailing single letters such as
# t, s, c, h, m, g, d after a number, so "3t" == "3" and "\frac{1}{m} t" == "\frac{1}{m}"); instead:
# - a trailing \text{...} / \mbox{...} / \mathrm{...} of words after a number or a closing brace is
#   a unit or an annotation ("5\text{ cm}", "18 \text{square units}", "24 \text{ cm}^2");
# - \text{<number> <words>} is the number;
# - a trailing unit word from a list of multi-letter units ("5 cm", "12 inches", "3 hours").
_TEXT_UNIT = re.compile(
    r"(?<=[\d}\s])\s*(?:\\(?:text|textrm|textnormal|textit|textbf|mbox|mathrm)\s*"
    r"\{\s*[A-Za-z][A-Za-z .\-]*[A-Za-z.]\s*\}"  # two or more letters: a unit word
    r"|\\(?:text|mbox)\s*\{\s*[msgKLNJWVACF]\s*\})"  # single-letter SI units, in \text only
    r"\s*(?:\^\s*\{?\s*[23]\s*\}?)?\s*$"
)
_TEXT_NUMBER_UNIT = re.compile(r"\\(?:text|mbox|textrm)\s*\{\s*(?P<n>-?\d+(?:\.\d+)?)\s+[A-Za-z][A-Za-z .\-]*\}\s*$")
_UNIT_WORDS = (
    r"(?:square\s+|sq\.?\s+|cubic\s+)?(?:units?|cm|mm|km|meters?|metres?|inch(?:es)?|feet|foot|ft|"
    r"miles?|yards?|yd|degrees?|dollars?|cents?|hours?|hrs?|minutes?|mins?|seconds?|secs?|days?|weeks?|"
    r"months?|years?|kg|grams?|pounds?|lbs?|ounces?|oz|mph|kph|liters?|litres?|ml|gallons?|cups?|"
    r"people|persons?|students?|apples?|marbles?|ways|times|points?)"
)
_BARE_UNIT = re.compile(rf"(?<=[\d}}])\s*{_UNIT_WORDS}\s*(?:\^\s*\{{?\s*[23]\s*\}}?)?\s*$")
_PERCENT_WORD = re.compile(r"(?<=[\d}])\s*(?:\\(?:text|mbox)\s*\{\s*)?(?:percent(?:age)?|pct)\s*\}?\s*$")
_SUBSCRIPT_BRACES = re.compile(r"_\{\s*([A-Za-z0-9])\s*\}")
_PRIME_ON_NUMBER = re.compile(r"(\d)\s*\^\s*\{\s*\\prime\s*(?:\\prime\s*)?\}")
_PERCENT = re.compile(r"\\?%")
_BARE_PERCENT = re.compile(r"(?<!\\)%")
_DOLLAR = re.compile(r"\\\$|\$")
_E_NOTATION = re.compile(r"(?<![\w.\\])(\d+(?:\.\d*)?|\.\d+)[eE]([+-]?\d+)(?![\w.])")
_TRAILING_DOT_NUMBER = re.compile(r"(\d)\.(?!\d)")
_PY_PREFIX = re.compile(r"\b(?:np|numpy|math|sympy|sp)\.")
_PY_FUNCS = re.compile(
    r"(?<![\\a-zA-Z])(arcsin|arccos|arctan|sinh|cosh|tanh|sin|cos|tan|cot|sec|csc|ln|log|exp)(?=\s*\()"
)
_PY_SQRT = re.compile(r"(?<![\\a-zA-Z])sqrt(?=\s*\()")
_DISPLAYSTYLE = re.compile(r"\\(?:displaystyle|textstyle|scriptstyle)(?![a-zA-Z])")
_TEXT_COMMANDS = (
    "text",
    "textbf",
    "textit",
    "textrm",
    "mathrm",
    "mathbf",
    "mbox",
    "textnormal",
    "operatorname",
)
_CHOICE = re.compile(r"\(?\s*([A-Ea-e])\s*\)?")
_ASSIGNMENT = re.compile(r"[A-Za-z](?:_\{?[A-Za-z0-9]+\}?)?\s*=\s*(?P<rhs>[^=]+)")
_WORD = re.compile(r"[A-Za-z][A-Za-z \-']*[A-Za-z]")
_WS = re.compile(r"\s+")
_REPEATING = re.compile(r"(?<![\d.])(-?)(\d*)\.(\d*)\\overline\s*\{(\d{1,12})\}")
_EMPTY_SET = re.compile(r"\\(?:varnothing|O)(?![a-zA-Z])|\\\{\s*\\\}")
_NUMBER_WORDS = {
    w: str(i)
    for i, w in enumerate(
        "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen "
        "sixteen seventeen eighteen nineteen twenty".split()
    )
}
_INTEGER = re.compile(r"-?\d+")


def _repeating_to_fraction(m: re.Match) -> str:
    sign, whole, fixed, period = m.groups()
    # whole.fixed(period)(period)... = (digits with one period - digits without it)
    #                                 / (10^len(fixed) * (10^len(period) - 1))
    a = int((whole or "0") + fixed + period)
    b = int((whole or "0") + fixed)
    den = (10 ** len(fixed)) * (10 ** len(period) - 1)
    num = a - b
    g = math.gcd(num, den)
    return f"{sign}\\frac{{{num // g}}}{{{den // g}}}"


def _strip_units(s: str) -> str:
    m = _TEXT_NUMBER_UNIT.fullmatch(s.strip())
    if m:
        return m.group("n")
    s = _PERCENT_WORD.sub(r"\\%", s)
    for _ in range(2):
        t = _TEXT_UNIT.sub("", s).strip()
        t = _BARE_UNIT.sub("", t).strip()
        if not t or t == s:
            break
        s = t
    return s


def _common(s: str) -> str:
    """The clean-up both normal forms share."""
    # Whitespace runs first: several patterns below scan ``\\s*`` from every position, which is quadratic
    # in the length of a run (a 128k-space answer took 14 s); after this every run is one character.
    s = _WS.sub(" ", s)
    s = _strip_outer_wrappers(s)
    s = _REPEATING.sub(_repeating_to_fraction, s)
    s = _EMPTY_SET.sub(r"\\emptyset", s)
    s = _THOUSANDS_LATEX.sub(r"\1", s)
    s = _DISPLAYSTYLE.sub("", s)
    s = _LEFT_RIGHT.sub("", s)
    s = _SPACING.sub(" ", s)
    s = _FRAC_VARIANTS.sub(r"\\frac", s)
    s = _PRIME_ON_NUMBER.sub(r"\1", s)
    s = _DEGREES.sub("", s)
    s = _DOLLAR.sub("", s)
    s = _strip_units(s)
    s = _SUBSCRIPT_BRACES.sub(r"_\1", s)
    s = _PY_PREFIX.sub("", s)
    s = _PY_SQRT.sub(r"\\sqrt", s)
    s = _PY_FUNCS.sub(r"\\\1", s)
    s = _WS.sub(" ", s).strip()
    s = s.rstrip(".").rstrip()
    s = _TRAILING_DOT_NUMBER.sub(r"\1", s)
    if _PLAIN_THOUSANDS.fullmatch(s):
        s = s.replace(",", "")
    return s


_CACHE_MAX_LEN = 512


def canonical_answer(answer: str) -> str:
    """An aggressive string form of an answer: equal forms mean equal answers (no sympy needed)."""
    if not isinstance(answer, str):
        return ""
    if len(answer) <= _CACHE_MAX_LEN:
        return _canonical_cached(answer)
    return _canonical(answer)


@lru_cache(maxsize=16384)
def _canonical_cached(answer: str) -> str:
    return _canonical(answer)


def _canonical(answer: str) -> str:
    s = _common(answer)
    s = _PERCENT.sub("", s)
    s = _unwrap_command(s, _TEXT_COMMANDS)
    s = _strip_outer_wrappers(s)
    s = s.replace(" ", "").rstrip(".")
    m = _CHOICE.fullmatch(s)
    if m:
        return m.group(1).upper()
    word = _NUMBER_WORDS.get(s.casefold())
    if word is not None:
        return word
    if s.count("=") == 1:
        m = _ASSIGNMENT.fullmatch(s)
        if m:
            s = m.group("rhs")
    if s.startswith("+") and len(s) > 1 and s[1].isdigit():
        s = s[1:]
    if re.fullmatch(r"-?\d+", s):
        neg = s.startswith("-")
        digits = s.lstrip("-").lstrip("0") or "0"
        s = ("-" if neg and digits != "0" else "") + digits
    return s


def latex_answer(answer: str) -> str:
    """A light clean-up of an answer string for math-verify's LaTeX parser."""
    if not isinstance(answer, str):
        return ""
    s = _common(answer)
    s = _BARE_PERCENT.sub(r"\\%", s)
    s = _E_NOTATION.sub(lambda m: f"{m.group(1)}\\times 10^{{{m.group(2)}}}", s)
    return s


def is_word_answer(canonical: str, raw: str = "") -> bool:
    """A textual answer ('Evelyn', 'odd', 'no solution') that sympy would misread as a product of symbols."""
    if not _WORD.fullmatch(canonical):
        return False
    letters = sum(c.isalpha() for c in canonical)
    return letters >= 3 or "\\text" in raw or "\\mathrm" in raw or "\\mbox" in raw


def quick_verdict(pred: str, gold: str) -> bool | None:
    """Decides from the string forms alone when possible: True, False, or None (sympy must decide)."""
    cp, cg = canonical_answer(pred), canonical_answer(gold)
    if not cp or not cg:
        return False
    if cp == cg:
        return True
    if _INTEGER.fullmatch(cp) and _INTEGER.fullmatch(cg):
        return False  # canonical integers (no sign noise, no leading zeros) differ
    if is_word_answer(cg, gold) or is_word_answer(cp, pred):
        return cp.casefold() == cg.casefold()
    return None


# --------------------------------------------------------------------------------------------------
# math-verify (imported lazily: only in the worker processes)
# --------------------------------------------------------------------------------------------------

_MV = None


def _math_verify():
    global _MV
    if _MV is None:
        import logging

        import math_verify

        # We disable math-verify's own signal-based timeouts (the caller enforces them), so silence its
        # one-time warning about that and its per-failure debug chatter.
        logging.getLogger("math_verify").setLevel(logging.ERROR)
        norm = math_verify.LatexNormalizationConfig(
            basic_latex=True, units=False, malformed_operators=True, nits=True, boxed="all", equations=False
        )
        _MV = (
            math_verify,
            [
                math_verify.LatexExtractionConfig(normalization_config=norm),
                math_verify.ExprExtractionConfig(),
            ],
        )
    return _MV


def _parse(latex: str) -> tuple:
    if len(latex) <= _CACHE_MAX_LEN:
        return _parse_cached(latex)
    return _parse_uncached(latex)


@lru_cache(maxsize=4096)
def _parse_cached(latex: str) -> tuple:
    return _parse_uncached(latex)


def _parse_uncached(latex: str) -> tuple:
    mv, targets = _math_verify()
    return tuple(mv.parse("\\boxed{" + latex + "}", targets, parsing_timeout=None))


def check_equivalent(pred: str, gold: str, *, fast_path: bool = True) -> bool:
    """True when ``pred`` equals ``gold`` as an answer. No timeout here: run it under one (see the pool).

    ``fast_path=False`` skips the string shortcuts and always asks math-verify (for benchmarking).
    """
    if fast_path:
        verdict = quick_verdict(pred, gold)
        if verdict is not None:
            return verdict
    mv, _ = _math_verify()
    g = _parse(latex_answer(gold))
    p = _parse(latex_answer(pred))
    if not g or not p:
        return False
    return bool(mv.verify(list(g), list(p), timeout_seconds=None, allow_set_relation_comp=True))


def check_any(pred: str, golds: list[str] | tuple[str, ...], *, fast_path: bool = True) -> bool:
    return any(check_equivalent(pred, g, fast_path=fast_path) for g in golds)
