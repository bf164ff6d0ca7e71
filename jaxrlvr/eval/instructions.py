"""IFEval: instruction-following evaluation with the checkers of lm-evaluation-harness.

The 25 instruction checkers of IFEval (Zhou et al., 2023) are not reimplemented here: scoring calls
``lm_eval.tasks.ifeval`` (EleutherAI's lm-evaluation-harness, which packages Google's IFEval code), so
strict and loose results match lm-eval's. Install it with ``pip install 'lm-eval[ifeval]>=0.4.9,<0.5'``.

Metrics (the four IFEval reports):
- prompt-level strict / loose accuracy: the fraction of prompts whose instructions are *all* followed;
- instruction-level strict / loose accuracy: the fraction of single instructions followed.
"Loose" also accepts the response with its first and/or last line removed and/or with ``*`` removed.

Sentence tokenizer. Two checkers use NLTK's Punkt model (``punkt_tab``), which NLTK downloads at run time
from a host jaxrlvr cannot assume is reachable:
- ``length_constraints:number_sentences`` (counts sentences with Punkt), and
- ``change_case:capital_word_frequency`` (``nltk.word_tokenize``, which splits sentences with Punkt first).
If an NLTK ``punkt_tab`` English model is installed (``nltk.download('punkt_tab')`` or ``$NLTK_DATA``), it
is used. Otherwise jaxrlvr appends its own fallback to ``nltk.data.path``: Punkt with no trained
parameters except a short hand-written list of English abbreviations (``Mr.``, ``Dr.``, ``e.g.``,
``U.S.`` ...). It splits at ``.``, ``?`` and ``!`` followed by whitespace and another word, as trained
Punkt mostly does; it differs on abbreviations missing from the list, initials and ordinal numbers, where
the sentence count can be off by one. :func:`sentence_tokenizer` says which one is in use; reports record
it. ``langdetect`` (``language:response_language``, ``change_case:english_capital`` and
``change_case:english_lowercase``) is seeded (``DetectorFactory.seed = 0``) so results are reproducible.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import pathlib
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

DATA_DIR = pathlib.Path(__file__).resolve().parent / "data"
IFEVAL_PATH = DATA_DIR / "ifeval.jsonl"
FALLBACK_NLTK_DATA = DATA_DIR / "nltk_data"
INSTALL_HINT = "pip install 'lm-eval[ifeval]>=0.4.9,<0.5'"

_REQUIRED_FIELDS = ("key", "prompt", "instruction_id_list", "kwargs")


class ChatTemplater(Protocol):
    def apply_chat_template(self, messages: Sequence[dict], add_generation_prompt: bool = True) -> str: ...


def load_ifeval(path: str | os.PathLike | None = None) -> list[dict]:
    """Reads IFEval rows (default: the 541 prompts shipped with jaxrlvr): ``key``, ``prompt``,
    ``instruction_id_list`` and ``kwargs`` (one dict per instruction)."""
    path = pathlib.Path(path) if path is not None else IFEVAL_PATH
    if not path.is_file():
        raise FileNotFoundError(f"IFEval file not found: {path}")
    rows = []
    with path.open(encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            where = f"{path}:{lineno}"
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise ValueError(f"{where}: not valid JSON ({e})") from e
            _validate(row, where)
            rows.append(row)
    if not rows:
        raise ValueError(f"{path}: no IFEval rows")
    return rows


def _validate(row: Mapping[str, Any], where: str) -> None:
    for field in _REQUIRED_FIELDS:
        if field not in row:
            raise ValueError(f"{where}: IFEval row has no field {field!r} (keys: {sorted(row)})")
    ids, kwargs = row["instruction_id_list"], row["kwargs"]
    if not isinstance(ids, list) or not isinstance(kwargs, list) or len(ids) != len(kwargs):
        raise ValueError(f"{where}: 'instruction_id_list' and 'kwargs' must be lists of the same length")


def build_prompt(row: Mapping[str, Any], *, tokenizer: ChatTemplater | None = None) -> str:
    """The IFEval prompt as is, or as a user message of the chat template when a tokenizer is given."""
    if tokenizer is None:
        return row["prompt"]
    return tokenizer.apply_chat_template([{"role": "user", "content": row["prompt"]}], add_generation_prompt=True)


@functools.cache
def sentence_tokenizer() -> str:
    """Makes sure NLTK finds an English ``punkt_tab`` model and says which: ``"nltk punkt_tab (<path>)"``
    for an installed NLTK model, ``"jaxrlvr fallback punkt (<path>)"`` for the fallback (see the module
    docstring)."""
    import nltk

    try:
        found = nltk.data.find("tokenizers/punkt_tab/english/")
        return f"nltk punkt_tab ({found})"
    except LookupError:
        pass
    if str(FALLBACK_NLTK_DATA) not in nltk.data.path:
        nltk.data.path.append(str(FALLBACK_NLTK_DATA))
    found = nltk.data.find("tokenizers/punkt_tab/english/")
    return f"jaxrlvr fallback punkt ({found})"


@functools.cache
def _ifeval_lib():
    """lm-eval's IFEval module, imported after the sentence tokenizer is in place (lm-eval tries to download
    ``punkt_tab`` at import time when NLTK cannot find it)."""
    sentence_tokenizer()
    try:
        import langdetect
        from lm_eval.tasks.ifeval import instructions_registry, utils
    except ImportError as e:
        raise ImportError(f"IFEval scoring needs lm-eval's IFEval checkers: {INSTALL_HINT} ({e})") from e
    langdetect.DetectorFactory.seed = 0
    return utils, instructions_registry


def instruction_ids() -> list[str]:
    """The instruction ids the installed checkers know (25 for IFEval)."""
    return sorted(_ifeval_lib()[1].INSTRUCTION_DICT)


@dataclasses.dataclass(frozen=True)
class IFEvalResult:
    """Per-instruction results of one response, strict and loose, in ``instruction_id_list`` order."""

    instruction_ids: tuple[str, ...]
    strict: tuple[bool, ...]
    loose: tuple[bool, ...]

    @property
    def prompt_strict(self) -> bool:
        return all(self.strict)

    @property
    def prompt_loose(self) -> bool:
        return all(self.loose)


def check_response(row: Mapping[str, Any], response: str) -> IFEvalResult:
    """Runs the checkers of every instruction of ``row`` on ``response`` (strict and loose)."""
    _validate(row, f"IFEval row {row.get('key')!r}")
    utils, registry = _ifeval_lib()
    unknown = [i for i in row["instruction_id_list"] if i not in registry.INSTRUCTION_DICT]
    if unknown:
        raise ValueError(f"IFEval row {row['key']!r}: unknown instruction ids {unknown}")
    doc = {k: row[k] for k in _REQUIRED_FIELDS}
    out = utils.process_results(doc, [response])
    return IFEvalResult(
        tuple(row["instruction_id_list"]),
        tuple(bool(x) for x in out["inst_level_strict_acc"]),
        tuple(bool(x) for x in out["inst_level_loose_acc"]),
    )


def score_instructions(row: Mapping[str, Any], response: str, *, loose: bool = False) -> bool:
    """Per-sample score: whether every instruction is followed (prompt level, strict unless ``loose``)."""
    r = check_response(row, response)
    return r.prompt_loose if loose else r.prompt_strict


def score_instructions_batch(
    rows: Sequence[Mapping[str, Any]], responses: Sequence[str], *, loose: bool = False
) -> list[bool]:
    if len(rows) != len(responses):
        raise ValueError(f"{len(rows)} rows but {len(responses)} responses")
    return [score_instructions(r, s, loose=loose) for r, s in zip(rows, responses, strict=True)]


def summarize(results: Sequence[IFEvalResult]) -> dict[str, float]:
    """The four IFEval accuracies over a list of results (one per response), plus counts."""
    if not results:
        raise ValueError("no IFEval results to summarize")
    strict = [x for r in results for x in r.strict]
    loose = [x for r in results for x in r.loose]
    n = len(results)
    return {
        "prompt_level_strict_acc": sum(r.prompt_strict for r in results) / n,
        "inst_level_strict_acc": sum(strict) / len(strict),
        "prompt_level_loose_acc": sum(r.prompt_loose for r in results) / n,
        "inst_level_loose_acc": sum(loose) / len(loose),
        "num_prompts": n,
        "num_instructions": len(strict),
    }
