"""The benchmark registry: what the evaluation runner needs to know about a benchmark.

A :class:`Benchmark` bundles a loader (rows, each with an ``id``), a prompt builder (row -> token ids), a
scorer factory (:class:`ScoringOptions` -> :class:`~jaxrlvr.eval.scoring.Scorer`) and the format check
used for the quality table. The six math benchmarks are registered here; other modules register more
(HumanEval, GPQA, IFEval, ...) with :func:`register_benchmark`, and they then run in the same runner and
appear in the same tables::

    register_benchmark(Benchmark(
        name="gpqa_diamond",
        load=lambda data_dir: my_rows(data_dir),
        build_prompt=lambda row, tokenizer, template: tokenizer.encode(...),
        make_scorer=lambda opts: FunctionScorer(my_check),
        format_check=None,
    ))

Two optional hooks serve benchmarks that need more than one prompt per problem or run settings:

- ``build_sample_prompts(row, n, seed, tokenizer, template) -> n prompts``: a prompt per sample (GPQA
  shuffles the options of every sample). The runner groups identical prompts of a problem, so the
  sampler still prefills a shared prompt once.
- ``configure(eval_config) -> Benchmark``: the benchmark set up for one run (file paths, prompt styles,
  execution limits, the seed of the option shuffles), called by the runner before loading.

The out-of-domain benchmarks (``humaneval``, ``gpqa`` / ``gpqa_diamond``, ``ifeval``) are registered by
:mod:`jaxrlvr.eval.ood_benchmarks`, which ``import jaxrlvr.eval`` loads.

``get_benchmark`` also accepts a path to a JSON Lines / Parquet file of problems and answers: it is
evaluated as a math benchmark named after the file.
"""

from __future__ import annotations

import dataclasses
import pathlib
from collections.abc import Callable
from typing import Any

from jaxrlvr.data.loading import BENCHMARK_FILES, load_benchmark_rows
from jaxrlvr.data.templates import get_template
from jaxrlvr.data.tokenizer import Tokenizer
from jaxrlvr.eval.scoring import MathScorer, Scorer
from jaxrlvr.rewards import format_violation


@dataclasses.dataclass(frozen=True)
class ScoringOptions:
    """Knobs a scorer factory may use (each factory takes what applies to it)."""

    workers: int = 2
    timeout_s: float = 5.0
    strict_format: bool = False
    seed: int = 0  # the run's seed (GPQA rebuilds each sample's option order from it)


@dataclasses.dataclass(frozen=True)
class Benchmark:
    """An evaluation benchmark.

    Attributes:
      name: registry name; also the name in records and tables.
      load: ``load(data_dir) -> rows``; every row has a unique ``id`` (and whatever the scorer needs).
      build_prompt: ``build_prompt(row, tokenizer, template) -> token ids``; ``template`` is the runner's
        template override (None: the benchmark's own choice).
      make_scorer: ``make_scorer(ScoringOptions) -> Scorer``.
      format_check: ``format_check(response) -> bool`` (a format violation), or None to skip it.
      default_template: the prompt template used when the runner does not override it (informative for
        benchmarks whose ``build_prompt`` ignores templates).
      description: one line for listings.
      build_sample_prompts: optional ``(row, n, seed, tokenizer, template) -> [n token-id lists]``: one
        prompt per sample; when set, the runner uses it instead of ``build_prompt``.
      configure: optional ``(EvalConfig) -> Benchmark``: the benchmark set up with a run's settings.
      gold_of: optional ``row -> gold`` recorded in the per-sample records (default ``row["answer"]``).
    """

    name: str
    load: Callable[[str | None], list[dict]]
    build_prompt: Callable[[dict, Tokenizer, str | None], list[int]]
    make_scorer: Callable[[ScoringOptions], Scorer]
    format_check: Callable[[str], bool] | None = format_violation
    default_template: str | None = "qwen_math_cot"
    description: str = ""
    build_sample_prompts: Callable[[dict, int, int, Tokenizer, str | None], list[list[int]]] | None = None
    configure: Callable[[Any], Benchmark] | None = None
    gold_of: Callable[[dict], Any] | None = None


BENCHMARKS: dict[str, Benchmark] = {}


def register_benchmark(benchmark: Benchmark, *, overwrite: bool = False) -> Benchmark:
    """Adds a benchmark to the registry (an existing name needs ``overwrite=True``)."""
    if benchmark.name in BENCHMARKS and not overwrite:
        raise ValueError(f"benchmark {benchmark.name!r} is already registered")
    BENCHMARKS[benchmark.name] = benchmark
    return benchmark


def list_benchmarks() -> list[str]:
    return sorted(BENCHMARKS)


def _math_prompt(default_template: str) -> Callable[[dict, Tokenizer, str | None], list[int]]:
    def build(row: dict, tokenizer: Tokenizer, template: str | None) -> list[int]:
        return get_template(template or default_template).encode(row["problem"], tokenizer)

    return build


def _math_scorer(options: ScoringOptions) -> Scorer:
    return MathScorer(workers=options.workers, timeout_s=options.timeout_s, strict_format=options.strict_format)


def math_benchmark(
    name: str,
    source: str,
    *,
    template: str = "qwen_math_cot",
    description: str = "",
    use_alternatives: bool = False,
) -> Benchmark:
    """A math benchmark over a named data set or file (rows: ``id``, ``problem``, ``answer``).

    ``use_alternatives``: also accept the rows' ``answer_alternatives`` as golds. Off by default: in the
    shipped Minerva file 55 of the 168 alternative strings are different values (they were matched to
    problems by text), so accepting them would count some wrong answers as right.
    """

    def load(data_dir: str | None) -> list[dict]:
        rows = load_benchmark_rows(source, data_dir)
        if not use_alternatives:
            for r in rows:
                r["answer_alternatives"] = []
        return rows

    return Benchmark(
        name=name,
        load=load,
        build_prompt=_math_prompt(template),
        make_scorer=_math_scorer,
        format_check=format_violation,
        default_template=template,
        description=description,
    )


def get_benchmark(name_or_path: str) -> Benchmark:
    """A registered benchmark, or a math benchmark over a file path (named after the file's stem)."""
    if name_or_path in BENCHMARKS:
        return BENCHMARKS[name_or_path]
    path = pathlib.Path(name_or_path).expanduser()
    if path.suffix.lower() in (".jsonl", ".json", ".ndjson", ".parquet", ".pq") or path.is_file():
        if not path.is_file():
            raise FileNotFoundError(f"benchmark file not found: {path}")
        return math_benchmark(path.stem, str(path), description=f"math problems from {path}")
    raise ValueError(f"unknown benchmark {name_or_path!r}; registered: {list_benchmarks()} (or give a file path)")


_DESCRIPTIONS = {
    "math500": "MATH500 (500 competition problems, LaTeX answers)",
    "aime24": "AIME 2024 (30 problems, integer answers)",
    "aime25": "AIME 2025 (30 problems, integer answers)",
    "amc23": "AMC 2023 (40 problems, integer answers)",
    "minerva": "Minerva Math / OCWCourses (272 problems, scored against the main answer)",
    "gsm8k": "GSM8K test (1319 grade-school word problems)",
}
for _name in BENCHMARK_FILES:
    register_benchmark(math_benchmark(_name, _name, description=_DESCRIPTIONS.get(_name, "")))
