"""``EvalConfig``: what an evaluation runs (benchmarks, samples, sampling settings, output), validated."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from jaxrlvr.eval.benchmarks import ScoringOptions


@dataclasses.dataclass(frozen=True)
class EvalConfig:
    """What to evaluate and how to sample.

    Defaults follow Deng et al.'s evaluation (arXiv 2508.02260, "Implementation Details"): N=8 samples at
    temperature 0.6, top-p 0.95. Revisiting's (arXiv 2511.05993, App. B) is N=64, T=1.0, top-p 1.0: the
    ``revisiting`` preset of configs/eval.py.

    Attributes:
      benchmarks: registered names (``math500``, ``aime24``, ...) or file paths.
      num_samples: N samples per problem.
      temperature / top_p / top_k / greedy: sampling (top_k=0: off).
      max_new_tokens: response length limit in tokens.
      template: prompt template for every benchmark (None: each benchmark's default).
      prompt_batch_size: problems per sampler call (the sampler sees prompt_batch_size * N rows).
      seed: sampling seed; each (benchmark, batch) gets a seed derived from it.
      data_dir: where named benchmarks are read (None: the copies shipped with jaxrlvr).
      max_problems: evaluate only the first K problems of each benchmark (None: all).
      verifier_workers / verifier_timeout_s / strict_format: scoring.
      out_dir: where results are written (None: not written).
      max_new_tokens_by_benchmark: per-benchmark ``max_new_tokens`` overrides, ``((name, tokens), ...)``
        (from the config string ``"humaneval=1024,ifeval=1280"``); every name must be in ``benchmarks``.
      skip_long_prompts: drop (and count) problems whose prompt plus ``max_new_tokens`` does not fit the
        model's context; False: such a problem is an error before anything is sampled.
      humaneval_style: ``"chat"`` (chat template, the reply holds the function) or ``"completion"`` (the
        raw HumanEval prompt, the response continues it).
      code_timeout_s / code_workers / code_memory_mb: HumanEval execution (wall-clock limit per program,
        parallel programs, address-space limit; 0: no memory limit).
      gpqa_path: the GPQA Diamond file (None: ``$JAXRLVR_GPQA_PATH``, then ``~/.cache/jaxrlvr/gpqa/``).
      gpqa_shuffle: shuffle the options of every GPQA sample (seeded by ``seed``, question and sample).
      livecodebench_path: the LiveCodeBench release file (None: ``$JAXRLVR_LIVECODEBENCH_PATH``).
    """

    benchmarks: tuple[str, ...] = ("math500",)
    num_samples: int = 8
    temperature: float = 0.6
    top_p: float = 0.95
    top_k: int = 0
    greedy: bool = False
    max_new_tokens: int = 4096
    template: str | None = None
    prompt_batch_size: int = 16
    seed: int = 0
    data_dir: str | None = None
    max_problems: int | None = None
    verifier_workers: int = 2
    verifier_timeout_s: float = 5.0
    strict_format: bool = False
    out_dir: str | None = None
    max_new_tokens_by_benchmark: tuple[tuple[str, int], ...] = ()
    skip_long_prompts: bool = False
    humaneval_style: str = "chat"
    code_timeout_s: float = 3.0
    code_workers: int = 2
    code_memory_mb: int = 1024
    gpqa_path: str | None = None
    gpqa_shuffle: bool = True
    livecodebench_path: str | None = None

    def __post_init__(self):
        if isinstance(self.benchmarks, str):
            object.__setattr__(self, "benchmarks", tuple(b.strip() for b in self.benchmarks.split(",") if b.strip()))
        object.__setattr__(self, "benchmarks", tuple(self.benchmarks))
        if not self.benchmarks:
            raise ValueError("EvalConfig.benchmarks is empty")
        object.__setattr__(self, "max_new_tokens_by_benchmark", _parse_overrides(self.max_new_tokens_by_benchmark))
        unknown = [b for b, _ in self.max_new_tokens_by_benchmark if b not in self.benchmarks]
        if unknown:
            raise ValueError(
                f"EvalConfig.max_new_tokens_by_benchmark names {unknown}, which are not among the benchmarks "
                f"{list(self.benchmarks)}"
            )
        for f in ("num_samples", "max_new_tokens", "prompt_batch_size", "verifier_workers", "code_workers"):
            v = getattr(self, f)
            if not isinstance(v, int) or v < 1:
                raise ValueError(f"EvalConfig.{f} must be a positive int, got {v!r}")
        if not self.temperature > 0:
            raise ValueError(
                f"EvalConfig.temperature must be > 0 (use greedy=True for arg-max), got {self.temperature}"
            )
        if not 0 < self.top_p <= 1:
            raise ValueError(f"EvalConfig.top_p must be in (0, 1], got {self.top_p}")
        if self.max_problems is not None and self.max_problems < 1:
            raise ValueError(f"EvalConfig.max_problems must be >= 1 or None, got {self.max_problems}")
        if self.verifier_timeout_s <= 0:
            raise ValueError(f"EvalConfig.verifier_timeout_s must be > 0, got {self.verifier_timeout_s}")
        if self.humaneval_style not in ("chat", "completion"):
            raise ValueError(f"EvalConfig.humaneval_style must be 'chat' or 'completion', got {self.humaneval_style!r}")
        if not self.code_timeout_s > 0:
            raise ValueError(f"EvalConfig.code_timeout_s must be > 0, got {self.code_timeout_s}")
        if not isinstance(self.code_memory_mb, int) or self.code_memory_mb < 0:
            raise ValueError(f"EvalConfig.code_memory_mb must be an int >= 0, got {self.code_memory_mb!r}")

    def max_new_tokens_for(self, benchmark: str) -> int:
        """``max_new_tokens``, or the benchmark's override."""
        return dict(self.max_new_tokens_by_benchmark).get(benchmark, self.max_new_tokens)

    @classmethod
    def from_mapping(cls, cfg: Mapping[str, Any]) -> EvalConfig:
        """From configs/eval.py's ConfigDict (or a dict): empty strings and 0 for optional fields mean None;
        keys that are not evaluation settings (``ckpt``, ``tokenizer``, ``dtype``) are ignored."""
        items = dict(cfg.items())
        names = {f.name for f in dataclasses.fields(cls)}
        kwargs = {k: v for k, v in items.items() if k in names}
        for k in ("template", "data_dir", "out_dir", "gpqa_path", "livecodebench_path"):
            if kwargs.get(k) == "":
                kwargs[k] = None
        if kwargs.get("max_problems") == 0:
            kwargs["max_problems"] = None
        return cls(**kwargs)

    def scoring_options(self) -> ScoringOptions:
        return ScoringOptions(
            workers=self.verifier_workers,
            timeout_s=self.verifier_timeout_s,
            strict_format=self.strict_format,
            seed=self.seed,
        )


def _parse_overrides(value) -> tuple[tuple[str, int], ...]:
    """``"humaneval=1024, ifeval=1280"`` (or a mapping, or pairs) -> ``(("humaneval", 1024), ...)``."""
    if isinstance(value, str):
        pairs = []
        for item in (x.strip() for x in value.split(",")):
            if not item:
                continue
            name, sep, tokens = item.partition("=")
            if not sep or not name.strip():
                raise ValueError(
                    f"EvalConfig.max_new_tokens_by_benchmark: {item!r} is not 'benchmark=tokens' "
                    "(e.g. 'humaneval=1024,ifeval=1280')"
                )
            pairs.append((name.strip(), tokens.strip()))
    elif isinstance(value, Mapping):
        pairs = list(value.items())
    else:
        pairs = [tuple(x) for x in value]
    out = []
    for name, tokens in pairs:
        try:
            n = int(tokens)
        except (TypeError, ValueError):
            n = 0
        if n < 1 or isinstance(tokens, bool):
            raise ValueError(f"EvalConfig.max_new_tokens_by_benchmark[{name!r}] must be a positive int, got {tokens!r}")
        out.append((str(name), n))
    if len({name for name, _ in out}) != len(out):
        raise ValueError(f"EvalConfig.max_new_tokens_by_benchmark names a benchmark twice: {out}")
    return tuple(out)
