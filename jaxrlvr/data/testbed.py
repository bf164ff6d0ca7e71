"""The study's testbed task (issue 27): free-length additions with several solution styles.

The demo task (:mod:`jaxrlvr.data.synthetic`) fixes the response length by the operands and leaves almost
nothing to choose, so RL cannot move entropy or length the way the papers describe. Here a policy fine-tuned
on the *testbed teacher* has real choices to make, of different lengths and reliabilities:

- ``guess``: the answer alone, ``\\boxed{85}`` (about 10 characters), right only ``guess_correct`` of the
  time (a near miss otherwise): short and unreliable;
- ``steps``: column addition, least significant column first, e.g. ``8+7 = 15 c1; 4+3+1=8, so \\boxed{85}``
  (25-60 characters), each column mis-added with probability ``step_error`` times its ``=`` form's
  multiplier (the error propagates, so the text stays self-consistent) and the boxed value a near miss with
  probability ``answer_error`` times the conclusion word's multiplier: long and fairly reliable;
- ``check``: ``steps`` then a re-check line ``, check 85-38=47`` (40-81 characters), with a lower
  ``check_step_error`` and no wrong final value: the longest and most reliable.

Surface forms are drawn afresh at every use: correctness-neutral ones (each column's term order, the
separator, the carry notation, which operand the check subtracts) and wording that goes with reliability
(the ``=`` form and the conclusion word scale the teacher's error rates), so that a policy fine-tuned on the
teacher has entropy both at forks RL has no reason to close and at forks it can resolve.

Problems mix two difficulties: ``a+b`` (80%) and ``a+b+c`` (20%) with 2-digit operands (``a+b`` with 3-digit
operands, ``add3d``, is available but off: in the first pilot the tiny model could not learn it in the SFT
warm start, and held-out accuracy before RL was 0.01). The prompt is the bare expression (``47+38``).
Every number is drawn from a seed; nothing is downloaded. Rows carry ``task = "testbed"`` so that
:func:`jaxrlvr.data.synthetic.noisy_solution` writes this teacher's solutions for the SFT warm start.
"""

from __future__ import annotations

import dataclasses
import random

TASK = "testbed"


@dataclasses.dataclass(frozen=True)
class TestbedConfig:
    """The teacher's and the problems' parameters (docs/study.md, "The testbed task", says why each value)."""

    styles: tuple[tuple[str, float], ...] = (("guess", 0.45), ("steps", 0.35), ("check", 0.2))
    kinds: tuple[tuple[str, float], ...] = (("add2", 0.8), ("add3", 0.2), ("add3d", 0.0))
    guess_correct: float = 0.3
    step_error: float = 0.12
    answer_error: float = 0.1
    check_step_error: float = 0.02
    # surface forms, each drawn afresh at every use (docs/study.md, "The testbed task"). Separators and carry
    # notation are correctness-neutral; the "=" form scales the column's error probability and the conclusion
    # word the final near miss's (form, multiplier): wording that goes with reliability, which RL can learn
    separators: tuple[str, ...] = (", ", "; ")
    carries: tuple[str, ...] = (" c{}",)
    equals: tuple[tuple[str, float], ...] = (("=", 2.5), (" = ", 1 / 3))
    conclusions: tuple[tuple[str, float], ...] = (("so ", 0.2), ("thus ", 0.2), ("hence ", 2.5), ("answer ", 2.5),
                                                  ("", 2.5))  # fmt: skip

    def __post_init__(self):
        for name, table, known in (
            ("styles", self.styles, ("guess", "steps", "check")),
            ("kinds", self.kinds, ("add2", "add3d", "add3")),
        ):
            bad = [k for k, _ in table if k not in known]
            if bad or not table or any(w < 0 for _, w in table) or sum(w for _, w in table) <= 0:
                raise ValueError(f"TestbedConfig.{name} must weigh a non-empty subset of {known}, got {table}")
        for f in ("separators", "equals", "carries", "conclusions"):
            if not getattr(self, f):
                raise ValueError(f"TestbedConfig.{f} must offer at least one form, got {getattr(self, f)}")
        for f in ("equals", "conclusions"):
            if any(m < 0 for _, m in getattr(self, f)):
                raise ValueError(f"TestbedConfig.{f}: error multipliers must be >= 0, got {getattr(self, f)}")
        for f in ("guess_correct", "step_error", "answer_error", "check_step_error"):
            if not 0.0 <= getattr(self, f) <= 1.0:
                raise ValueError(f"TestbedConfig.{f} must be in [0, 1], got {getattr(self, f)}")


DEFAULT = TestbedConfig()


def _pick(rng: random.Random, table) -> str:
    names, weights = zip(*table, strict=True)
    return rng.choices(names, weights)[0]


def make_problem(rng: random.Random, cfg: TestbedConfig, index: int, split: str) -> dict:
    kind = _pick(rng, cfg.kinds)
    if kind == "add2":
        ops = [rng.randint(10, 99) for _ in range(2)]
    elif kind == "add3d":
        ops = [rng.randint(100, 999) for _ in range(2)]
    else:
        ops = [rng.randint(10, 99) for _ in range(3)]
    expr = "+".join(str(x) for x in ops)
    return {"id": f"{split}-{index}", "problem": expr, "answer": str(sum(ops)), "operands": ops, "kind": kind,
            "task": TASK}  # fmt: skip


def disjoint_splits(n_train: int, n_test: int, seed: int, cfg: TestbedConfig = DEFAULT):
    """Train and held-out problems, drawn from ``seed``, with no operand tuple in common."""

    def draw(n, split, taken):
        rng, rows = random.Random(f"testbed:{split}:{seed}"), []
        while len(rows) < n:
            row = make_problem(rng, cfg, len(rows), split)
            key = tuple(row["operands"])
            if key not in taken:
                taken.add(key)
                rows.append(row)
        return rows

    taken: set = set()
    test = draw(n_test, "heldout", taken)
    return draw(n_train, "train", taken), test


def _near_miss(value: int, rng: random.Random) -> int:
    wrong = [v for v in (value + 1, value - 1, value + 10, value - 10, value + 100) if v >= 0 and v != value]
    return rng.choice(wrong)


def column_steps(
    operands: list[int], rng: random.Random, step_error: float, cfg: TestbedConfig = DEFAULT
) -> tuple[list[str], int]:
    """The column additions (terms in a random order per column, the ``=`` form, which scales
    ``step_error``, and the carry notation drawn per column) and the value they arrive at."""
    width = max(len(str(x)) for x in operands)
    carry, digits, steps = 0, [], []
    for i in range(width):
        col = [(x // 10**i) % 10 for x in operands]
        rng.shuffle(col)
        s = sum(col) + carry
        eq, scale = rng.choice(cfg.equals)
        if rng.random() < step_error * scale:
            s = max(0, s + rng.choice((-1, 1)))
        terms = "+".join(str(d) for d in col) + (f"+{carry}" if carry else "")
        carry, digit = divmod(s, 10)
        last = i == width - 1
        note = rng.choice(cfg.carries).format(carry) if carry and not last else ""
        steps.append(f"{terms}{eq}{s}{note}")
        digits.append(s if last else digit)
    value = digits[-1]
    for d in reversed(digits[:-1]):
        value = value * 10 + d
    return steps, value


def teacher_solution(row: dict, rng: random.Random, cfg: TestbedConfig = DEFAULT, style: str | None = None) -> str:
    """One draw of the testbed teacher (module docstring); ``style`` forces a style."""
    ops, true = row["operands"], sum(row["operands"])
    style = style or _pick(rng, cfg.styles)
    if style == "guess":
        value = true if rng.random() < cfg.guess_correct else _near_miss(true, rng)
        return f"\\boxed{{{value}}}"
    err = cfg.step_error if style == "steps" else cfg.check_step_error
    steps, value = column_steps(ops, rng, err, cfg)
    text = steps[0] + "".join(rng.choice(cfg.separators) + s for s in steps[1:])
    word, scale = rng.choice(cfg.conclusions)
    if style == "steps" and rng.random() < cfg.answer_error * scale:
        value = _near_miss(value, rng)
    if style == "check":  # subtract the last or the first operand: either re-checks the sum
        back = rng.choice((ops[-1], ops[0]))
        text += f"{rng.choice(cfg.separators)}check {value}-{back}{rng.choice(cfg.equals)[0]}{value - back}"
    return text + rng.choice(cfg.separators) + word + f"\\boxed{{{value}}}"
