"""Synthetic arithmetic word problems with ``\\boxed{}`` answers: the data of the embedded CPU demo.

Problems are drawn from a seed (no files, no downloads). Each row has ``id``, ``problem``, ``answer`` (the
true value as a string) and, for SFT, a worked ``solution`` from a teacher:

- :func:`worked_solution` writes the digit-by-digit column addition, e.g. for 47+38::

      7+8=15 c1, 4+3+1=8, so \\boxed{85}

- :func:`noisy_solution` is the *noisy teacher* of the demo: each column step is mis-added with
  probability ``step_error`` (the error propagates to the boxed value, so the text stays self-consistent),
  and the boxed value is replaced by a plausible wrong value with probability ``answer_error``. A policy
  fine-tuned on it has a spread of answers it sometimes gets right, which is what RL can sharpen
  (a policy that is always right or never right gives GRPO nothing to learn from).

Problem kinds: ``add`` (a+b with ``digits``-digit operands) and ``add3`` (a+b+c).
"""

from __future__ import annotations

import dataclasses
import random

NAMES = ("Ann", "Bo", "Cy", "Dee", "Eve", "Fay", "Gus", "Hal", "Ivy", "Jo")
ITEMS = ("apples", "pens", "coins", "books", "cards", "shells", "stamps", "beads")


@dataclasses.dataclass(frozen=True)
class ArithmeticConfig:
    """How problems are drawn. ``digits`` operand digits; ``kinds`` problem kinds; ``word_problems`` wraps the
    sum in a one-sentence story."""

    digits: int = 2
    kinds: tuple[str, ...] = ("add",)
    word_problems: bool = True

    def __post_init__(self):
        if not 1 <= self.digits <= 6:
            raise ValueError(f"ArithmeticConfig.digits must be in [1, 6], got {self.digits}")
        bad = [k for k in self.kinds if k not in ("add", "add3")]
        if bad or not self.kinds:
            raise ValueError(f"ArithmeticConfig.kinds must be a non-empty subset of ('add', 'add3'), got {self.kinds}")


def _operands(rng: random.Random, cfg: ArithmeticConfig, kind: str) -> list[int]:
    lo, hi = 10 ** (cfg.digits - 1), 10**cfg.digits - 1
    n = 2 if kind == "add" else 3
    return [rng.randint(lo, hi) for _ in range(n)]


def make_problem(rng: random.Random, cfg: ArithmeticConfig, index: int, split: str) -> dict:
    kind = cfg.kinds[rng.randrange(len(cfg.kinds))]
    ops = _operands(rng, cfg, kind)
    expr = "+".join(str(x) for x in ops)
    if cfg.word_problems:
        name, item = rng.choice(NAMES), rng.choice(ITEMS)
        parts = " and ".join(str(x) for x in ops)
        problem = f"{name} has {parts} {item}. How many {item} in all? ({expr})"
    else:
        problem = f"What is {expr}?"
    return {"id": f"{split}-{index}", "problem": problem, "answer": str(sum(ops)), "operands": ops}


def make_dataset(n: int, seed: int, cfg: ArithmeticConfig = ArithmeticConfig(), split: str = "train") -> list[dict]:
    """``n`` problems drawn from ``seed``; different splits use disjoint seeds and never share a problem."""
    rng = random.Random(f"{split}:{seed}")
    rows, seen = [], set()
    while len(rows) < n:
        row = make_problem(rng, cfg, len(rows), split)
        key = tuple(row["operands"])
        if key in seen:
            continue
        seen.add(key)
        rows.append(row)
    return rows


def disjoint_splits(n_train: int, n_test: int, seed: int, cfg: ArithmeticConfig = ArithmeticConfig()):
    """Train and held-out problems with no operand tuple in common."""
    test = make_dataset(n_test, seed, cfg, "heldout")
    taken = {tuple(r["operands"]) for r in test}
    train = [r for r in make_dataset(n_train + n_test, seed, cfg, "train") if tuple(r["operands"]) not in taken]
    return train[:n_train], test


def worked_solution(operands: list[int], rng: random.Random | None = None, step_error: float = 0.0) -> tuple[str, int]:
    """Column addition, least significant digit first; returns (text, value the text arrives at)."""
    width = max(len(str(x)) for x in operands)
    digits = [[(x // 10**i) % 10 for x in operands] for i in range(width)]
    carry, out_digits, steps = 0, [], []
    for i, col in enumerate(digits):
        s = sum(col) + carry
        if rng is not None and rng.random() < step_error:
            s = max(0, s + rng.choice((-1, 1)))
        terms = "+".join(str(d) for d in col) + (f"+{carry}" if carry else "")
        new_carry, digit = divmod(s, 10)
        last = i == width - 1
        steps.append(f"{terms}={s}" + (f" c{new_carry}" if new_carry and not last else ""))
        out_digits.append(digit if not last else s)
        carry = new_carry
    value = out_digits[-1]
    for d in reversed(out_digits[:-1]):
        value = value * 10 + d
    return ", ".join(steps) + f", so \\boxed{{{value}}}", value


def plausible_wrong(value: int, rng: random.Random) -> int:
    """A near miss: off by one or ten, or two digits swapped."""
    choices = [value + 1, value - 1, value + 10, value - 10]
    s = str(value)
    if len(s) >= 2:
        choices.append(int(s[:-2] + s[-1] + s[-2]))
    wrong = [c for c in choices if c != value and c >= 0]
    return rng.choice(wrong)


def noisy_solution(row: dict, rng: random.Random, *, step_error: float = 0.1, answer_error: float = 0.5) -> str:
    """The demo's noisy teacher (module docstring): a fresh draw every call."""
    if row.get("task") == "testbed":  # the study's testbed has its own teacher (jaxrlvr/data/testbed.py)
        from jaxrlvr.data import testbed

        return testbed.teacher_solution(row, rng)
    text, value = worked_solution(row["operands"], rng, step_error)
    if rng.random() < answer_error:
        text = text[: text.rindex("\\boxed{")] + f"\\boxed{{{plausible_wrong(value, rng)}}}"
    return text
