"""GPQA (Diamond) multiple choice: loading from a user path, seeded option shuffles, prompts, letter
extraction and scoring.

The GPQA authors ask that the questions never appear in plain text in public places (they do not want
them in training data), so jaxrlvr ships no GPQA data: the file is read from a path the user gives
(``path=``), from ``$JAXRLVR_GPQA_PATH``, or from ``~/.cache/jaxrlvr/gpqa/gpqa_diamond.{jsonl,csv}``.
Accepted formats:

- the original ``gpqa_diamond.csv`` of the GPQA release (columns ``Question``, ``Correct Answer``,
  ``Incorrect Answer 1..3``, ``Record ID``, ``Canary String``, ...), or JSON Lines with those keys;
- JSON Lines with ``id``, ``question``, ``choices`` (four strings) and ``answer_index`` (0-3), optionally
  ``answer``, ``answer_letter``, ``domain``, ``subdomain`` and ``canary``.

Loaded rows keep the canary string (``canary``) as given; it is never put in a prompt. Every sample of a
question sees the four options in its own order: a permutation seeded by (seed, question id, sample
index), so Acc@N / Pass@k over N samples are not tied to one letter position.
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import json
import os
import pathlib
import random
import re
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

LETTERS = ("A", "B", "C", "D")
ENV_VAR = "JAXRLVR_GPQA_PATH"
DEFAULT_DIR = pathlib.Path("~/.cache/jaxrlvr/gpqa")
DEFAULT_NAMES = ("gpqa_diamond.jsonl", "gpqa_diamond.csv")

DEFAULT_TEMPLATE = (
    "Answer the following multiple-choice question. Reason step by step, then give the letter of the "
    "correct option within \\boxed{{}}, for example \\boxed{{A}}.\n\n"
    "{question}\n\n(A) {A}\n(B) {B}\n(C) {C}\n(D) {D}"
)

_CSV_FIELDS = ("Question", "Correct Answer", "Incorrect Answer 1", "Incorrect Answer 2", "Incorrect Answer 3")


class ChatTemplater(Protocol):
    def apply_chat_template(self, messages: Sequence[dict], add_generation_prompt: bool = True) -> str: ...


class GPQADataNotFoundError(FileNotFoundError):
    """The GPQA file is not where jaxrlvr looked; the message says where to put it."""


def default_paths() -> list[pathlib.Path]:
    """Where :func:`load_gpqa` looks when no path is given, in order."""
    paths = []
    if os.environ.get(ENV_VAR):
        paths.append(pathlib.Path(os.environ[ENV_VAR]).expanduser())
    paths += [DEFAULT_DIR.expanduser() / name for name in DEFAULT_NAMES]
    return paths


def _not_found(looked: Sequence[pathlib.Path]) -> GPQADataNotFoundError:
    where = ", ".join(str(p) for p in looked)
    return GPQADataNotFoundError(
        f"GPQA data not found (looked at: {where}). jaxrlvr does not ship GPQA: its authors distribute it "
        "gated (accept the terms of the Idavidrein/gpqa dataset on the Hugging Face Hub, or use the "
        "password-protected zip of the idavidrein/gpqa GitHub repository) and ask that its questions not "
        "be posted in plain text online. Download gpqa_diamond.csv and put it at "
        f"{DEFAULT_DIR / 'gpqa_diamond.csv'}, or set ${ENV_VAR}, or pass its path (a .csv with the "
        "original columns, or a .jsonl). Never commit the file to a public repository."
    )


def _from_original_columns(row: Mapping[str, Any], where: str) -> dict:
    missing = [f for f in _CSV_FIELDS if f not in row]
    if missing:
        raise ValueError(f"{where}: GPQA row lacks the columns {missing}")
    choices = [str(row[f]).strip() for f in _CSV_FIELDS[1:]]
    out = {
        "id": str(row.get("Record ID") or where),
        "question": str(row["Question"]).strip(),
        "choices": choices,
        "answer_index": 0,
        "answer": choices[0],
        "domain": row.get("High-level domain", ""),
        "subdomain": row.get("Subdomain", ""),
    }
    if "Canary String" in row:
        out["canary"] = row["Canary String"]
    return out


def _validate(row: dict, where: str) -> dict:
    for field in ("id", "question", "choices", "answer_index"):
        if field not in row:
            raise ValueError(f"{where}: GPQA row has no field {field!r} (keys: {sorted(row)})")
    choices = row["choices"]
    if not (isinstance(choices, list) and len(choices) == 4 and all(isinstance(c, str) for c in choices)):
        raise ValueError(f"{where}: 'choices' must be a list of 4 strings, got {choices!r:.200}")
    idx = row["answer_index"]
    if not (isinstance(idx, int) and 0 <= idx < 4):
        raise ValueError(f"{where}: 'answer_index' must be an int in 0..3, got {idx!r}")
    if "answer" in row and row["answer"] != choices[idx]:
        raise ValueError(f"{where}: 'answer' is not choices[answer_index]")
    row["id"] = str(row["id"])
    return row


def load_gpqa(path: str | os.PathLike | None = None) -> list[dict]:
    """Reads GPQA rows (see the module docstring for the formats and the default locations).

    Each row has ``id``, ``question``, ``choices`` (4 strings), ``answer_index`` and whatever else the file
    had (the ``canary`` string included). Raises :class:`GPQADataNotFoundError` when there is no file.
    """
    if path is not None:
        candidates = [pathlib.Path(path).expanduser()]
    else:
        candidates = default_paths()
    found = next((p for p in candidates if p.is_file()), None)
    if found is None:
        raise _not_found(candidates)
    rows: list[dict] = []
    if found.suffix.lower() == ".csv":
        with found.open(encoding="utf-8", newline="") as f:
            for i, raw in enumerate(csv.DictReader(f), 2):
                rows.append(_validate(_from_original_columns(raw, f"{found}:{i}"), f"{found}:{i}"))
    else:
        with found.open(encoding="utf-8") as f:
            for lineno, line in enumerate(f, 1):
                if not line.strip():
                    continue
                where = f"{found}:{lineno}"
                try:
                    raw = json.loads(line)
                except json.JSONDecodeError as e:
                    raise ValueError(f"{where}: not valid JSON ({e})") from e
                row = dict(raw) if "choices" in raw else _from_original_columns(raw, where)
                rows.append(_validate(row, where))
    if not rows:
        raise ValueError(f"{found}: no GPQA rows")
    return rows


def choice_order(question_id: str, sample: int, seed: int = 0) -> tuple[int, ...]:
    """The seeded permutation of the four options for one (question, sample): ``order[k]`` is the index in
    ``row['choices']`` of the option shown as letter ``LETTERS[k]``. Stable across processes and Python
    versions (sha256, not ``hash``)."""
    digest = hashlib.sha256(f"jaxrlvr-gpqa|{seed}|{question_id}|{sample}".encode()).digest()
    return tuple(random.Random(int.from_bytes(digest[:8], "big")).sample(range(4), 4))


@dataclasses.dataclass(frozen=True)
class ChoicePrompt:
    """One sample of one question: the user text (options in this sample's order), the correct letter and
    the order (``order[k]`` = index into ``row['choices']`` of letter k)."""

    question_id: str
    sample: int
    text: str
    answer_letter: str
    order: tuple[int, ...]


def format_question(
    row: Mapping[str, Any],
    *,
    sample: int = 0,
    seed: int = 0,
    shuffle: bool = True,
    template: str = DEFAULT_TEMPLATE,
) -> ChoicePrompt:
    """The question with its options (shuffled for this sample unless ``shuffle=False``) in ``template``
    (fields ``{question}``, ``{A}``..``{D}``). The canary string is not part of it."""
    order = choice_order(row["id"], sample, seed) if shuffle else (0, 1, 2, 3)
    options = {LETTERS[k]: row["choices"][i] for k, i in enumerate(order)}
    text = template.format(question=row["question"], **options)
    return ChoicePrompt(row["id"], sample, text, LETTERS[order.index(row["answer_index"])], order)


def build_prompt(
    row: Mapping[str, Any],
    *,
    sample: int = 0,
    seed: int = 0,
    shuffle: bool = True,
    template: str = DEFAULT_TEMPLATE,
    tokenizer: ChatTemplater | None = None,
) -> ChoicePrompt:
    """:func:`format_question`, wrapped as a user message of the chat template when a tokenizer is given."""
    p = format_question(row, sample=sample, seed=seed, shuffle=shuffle, template=template)
    if tokenizer is None:
        return p
    text = tokenizer.apply_chat_template([{"role": "user", "content": p.text}], add_generation_prompt=True)
    return dataclasses.replace(p, text=text)


def build_prompts(
    rows: Sequence[Mapping[str, Any]],
    n_samples: int,
    *,
    seed: int = 0,
    shuffle: bool = True,
    template: str = DEFAULT_TEMPLATE,
    tokenizer: ChatTemplater | None = None,
) -> list[list[ChoicePrompt]]:
    """``n_samples`` prompts per question (``out[q][s]``), each with its own option order."""
    return [
        [
            build_prompt(r, sample=s, seed=seed, shuffle=shuffle, template=template, tokenizer=tokenizer)
            for s in range(n_samples)
        ]
        for r in rows
    ]


# Letter extraction. Each pattern's group 1 is the letter; over all patterns the match whose letter comes
# last in the response wins. A letter must not run on into a word ("Dimethyl", "D-glucose").
_L = r"([A-D])(?![A-Za-z0-9'-])"
_SKIP = r"(?:[\s*_$(\[{]|\\text(?:bf)?\s*\{|\\mathrm\s*\{|\\mathbf\s*\{)*"
_PATTERNS = (
    # \boxed{C}, \boxed{(C)}, \boxed{\text{C}}, \boxed{\textbf{(C)}}, \boxed{C) text}
    re.compile(r"\\boxed\s*\{" + _SKIP + _L),
    # "the answer is (C)", "Answer: C", "**Final Answer:** **C**", "answer is option C", "ANSWER: C"
    re.compile(
        r"(?i:answer)\s*(?:(?i:is)\s*)?(?::\s*)?(?:\*\*\s*)?(?::\s*)?"
        + _SKIP
        + r"(?:(?i:option|choice)\s*)?"
        + _SKIP
        + _L
    ),
    # "the correct option is B", "correct choice: (B)"
    re.compile(r"(?i:correct\s+(?:option|choice))\s*(?:(?i:is)\s*)?(?::\s*)?" + _SKIP + _L),
    # a line that is only the letter: "C", "(C)", "C.", "**C**"
    re.compile(r"^[ \t*]*\(?([A-D])\)?\.?[ \t*]*$", re.MULTILINE),
)


def extract_choice(response: str) -> str | None:
    """The letter (A-D) the response gives as its answer, or None. Recognises ``\\boxed{C}`` (also with
    ``\\text{}``/parentheses), "the answer is (C)", "Answer: C", "correct option is C" and a line holding
    only the letter; the occurrence that comes last in the response wins."""
    best: tuple[int, str] | None = None
    for pattern in _PATTERNS:
        for m in pattern.finditer(response):
            if best is None or m.start(1) > best[0]:
                best = (m.start(1), m.group(1))
    return None if best is None else best[1]


def option_index(response: str, prompt: ChoicePrompt) -> int | None:
    """The index in ``row['choices']`` of the option the response picked (its letter mapped back through
    this sample's order), or None. Samples of one question see different orders, so Maj@N must vote on
    this, not on the letter."""
    letter = extract_choice(response)
    return None if letter is None else prompt.order[LETTERS.index(letter)]


def score_choice(response: str, answer_letter: str) -> bool:
    """True when the extracted letter equals ``answer_letter``."""
    if answer_letter not in LETTERS:
        raise ValueError(f"answer_letter must be one of {LETTERS}, got {answer_letter!r}")
    return extract_choice(response) == answer_letter


def score_choice_batch(responses: Sequence[str], answer_letters: Sequence[str]) -> list[bool]:
    if len(responses) != len(answer_letters):
        raise ValueError(f"{len(responses)} responses but {len(answer_letters)} answer letters")
    return [score_choice(r, a) for r, a in zip(responses, answer_letters, strict=True)]
