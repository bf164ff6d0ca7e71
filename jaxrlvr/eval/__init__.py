"""Generation-based evaluation: Acc@N, Maj@N, unbiased Pass@k, per-benchmark records and tables.

- metrics (pure): :func:`acc_at_n`, :func:`maj_at_n`, :func:`pass_at_k`, :func:`majority_vote`;
- scoring layer: :func:`score_responses` (texts -> records + summary) with pluggable scorers
  (:class:`MathScorer`, :class:`FunctionScorer`);
- benchmark registry: :class:`Benchmark`, :func:`register_benchmark`, :func:`get_benchmark`;
- runner: :class:`EvalConfig`, :func:`evaluate` (samples with ``jaxrlvr.sampling``), :func:`write_results`,
  :func:`load_model`.

The out-of-domain modules (``jaxrlvr.eval.code``, ``.choice``, ``.instructions``) can be used on their own;
:mod:`jaxrlvr.eval.ood_benchmarks` registers them as the benchmarks ``humaneval``, ``gpqa`` (``gpqa_diamond``)
and ``ifeval`` when this package is imported.
"""

from jaxrlvr.eval import ood_benchmarks  # noqa: F401  (registers humaneval, gpqa, ifeval)
from jaxrlvr.eval.benchmarks import (
    BENCHMARKS,
    Benchmark,
    ScoringOptions,
    get_benchmark,
    list_benchmarks,
    math_benchmark,
    register_benchmark,
)
from jaxrlvr.eval.metrics import (
    acc_at_n,
    maj_at_n,
    majority_vote,
    mean_over_problems,
    pass_at_k,
    pass_at_k_curve,
)
from jaxrlvr.eval.runner import (
    EvalConfig,
    PreparedBenchmark,
    evaluate,
    generate_responses,
    load_eval_tokenizer,
    load_model,
    prepare_benchmarks,
    run_from_config,
    write_results,
)
from jaxrlvr.eval.scoring import (
    BenchmarkResult,
    FunctionScorer,
    MathScorer,
    SampleScore,
    Scorer,
    format_summary_table,
    gold_answers,
    score_responses,
)
from jaxrlvr.eval.select import best_step, checkpoint_steps, select_checkpoint

__all__ = [
    "best_step",
    "checkpoint_steps",
    "select_checkpoint",
    "BENCHMARKS",
    "Benchmark",
    "BenchmarkResult",
    "EvalConfig",
    "FunctionScorer",
    "MathScorer",
    "PreparedBenchmark",
    "SampleScore",
    "Scorer",
    "ScoringOptions",
    "acc_at_n",
    "evaluate",
    "format_summary_table",
    "generate_responses",
    "get_benchmark",
    "gold_answers",
    "list_benchmarks",
    "load_eval_tokenizer",
    "load_model",
    "maj_at_n",
    "majority_vote",
    "math_benchmark",
    "mean_over_problems",
    "pass_at_k",
    "pass_at_k_curve",
    "prepare_benchmarks",
    "register_benchmark",
    "run_from_config",
    "score_responses",
    "write_results",
]
