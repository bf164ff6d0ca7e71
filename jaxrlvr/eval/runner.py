"""The evaluation runner: benchmarks -> prompts -> N samples per problem (jaxrlvr.sampling) -> scores ->
per-sample JSONL and summary tables.

``evaluate(model_config, params, tokenizer, EvalConfig(...))`` works with any (config, params) pair, so a
Hugging Face folder (``jaxrlvr.models.load_hf_checkpoint``) and an orbax checkpoint of our own runs
(``jaxrlvr.runs.load_params``) evaluate the same way; :func:`load_model` picks the loader.

Outputs (``write_results``) in ``out_dir`` (by default, for a checkpoint of a training run,
``<run>/eval/step_NNNNNN_<benchmarks>_n<N>/``; any other checkpoint needs an explicit ``out_dir``):
  ``<benchmark>.samples.jsonl``  one record per sample (see :func:`jaxrlvr.eval.scoring.score_responses`)
  ``summary.json``               the summaries (all Pass@k), the evaluation config (benchmark settings) and
                                 ``provenance``: the checkpoint path and step evaluated, its run, the
                                 tokenizer, the command, host and time
  ``summary.md``                 the Markdown tables
An output folder is held by a lock (:mod:`jaxrlvr.runs_lock`) while an evaluation writes it: a second
evaluation into the same folder is refused.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import pathlib
import time
import zlib
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from jaxrlvr.data.templates import get_template
from jaxrlvr.data.tokenizer import Tokenizer
from jaxrlvr.eval.benchmarks import Benchmark, get_benchmark
from jaxrlvr.eval.config import EvalConfig, _parse_overrides  # noqa: E402,F401 (re-exported)
from jaxrlvr.eval.scoring import BenchmarkResult, answer_line_violation, format_summary_table, score_responses
from jaxrlvr.rewards import format_violation


# --------------------------------------------------------------------------------------------- loading
def load_model(ckpt: str | os.PathLike, *, dtype: str | None = None):
    """``(ModelConfig, params)`` from a Hugging Face folder or an orbax checkpoint of a jaxrlvr run."""
    path = pathlib.Path(ckpt).expanduser()
    if not path.exists():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    is_hf = (path / "config.json").is_file() and (
        any(path.glob("*.safetensors")) or (path / "model.safetensors.index.json").is_file()
    )
    if is_hf:
        from jaxrlvr.models import load_hf_checkpoint

        return load_hf_checkpoint(path, dtype=dtype)
    from jaxrlvr.runs import load_params

    return load_params(path)


def load_eval_tokenizer(tokenizer: str, ckpt: str | os.PathLike | None) -> Tokenizer:
    """``tokenizer`` ("char", a folder, or "" for the checkpoint's: a run's recorded tokenizer, else the
    checkpoint folder itself)."""
    from jaxrlvr.data.tokenizer import load_tokenizer
    from jaxrlvr.runs import run_tokenizer

    if tokenizer:
        return load_tokenizer(tokenizer)
    if ckpt is None:
        raise ValueError("no tokenizer given and no checkpoint folder to take it from")
    recorded = run_tokenizer(ckpt)  # a trainer workdir / step folder: its config.json names the tokenizer
    if recorded:
        return load_tokenizer(recorded)
    path = pathlib.Path(ckpt).expanduser()
    if not ((path / "tokenizer.json").is_file() or (path / "vocab.json").is_file()):
        raise FileNotFoundError(
            f"no tokenizer files in {path}; set --config.tokenizer=<folder with tokenizer.json> (or 'char')"
        )
    return load_tokenizer(path)


# ------------------------------------------------------------------------------------------ generation
def _derived_seed(seed: int, name: str, start: int) -> int:
    return (seed * 1_000_003 + zlib.crc32(name.encode()) + 7919 * start) % (2**31 - 1)


def _sample_units(chunk: Sequence[Sequence[Sequence[int]]]) -> tuple[list[list[int]], int, list[tuple[int, list[int]]]]:
    """Groups the per-sample prompts of a batch of problems for one sampler call.

    ``chunk[p][s]`` is the prompt of sample ``s`` of problem ``p``. Identical prompts of one problem form a
    group; every group is cut into units of ``g`` samples, ``g`` the gcd of the group sizes, and each unit
    is one sampler prompt with ``g`` rows (so a prompt shared by all N samples is prefilled once, with the
    same layout as one prompt per problem). Returns (unit prompts, g, [(problem, sample indices)] per unit).
    """
    groups: list[tuple[int, list[int], list[int]]] = []
    for p, prompts in enumerate(chunk):
        by_prompt: dict[tuple[int, ...], list[int]] = {}
        for s, ids in enumerate(prompts):
            by_prompt.setdefault(tuple(int(t) for t in ids), []).append(s)
        groups += [(p, list(ids), samples) for ids, samples in by_prompt.items()]
    g = math.gcd(*(len(samples) for _, _, samples in groups))
    units, owners = [], []
    for p, ids, samples in groups:
        for i in range(0, len(samples), g):
            units.append(ids)
            owners.append((p, samples[i : i + g]))
    return units, g, owners


def generate_responses(
    model_config,
    params,
    tokenizer: Tokenizer,
    prompts: Sequence[Sequence[int]] | Sequence[Sequence[Sequence[int]]],
    config: EvalConfig,
    *,
    name: str = "",
    sampler: Callable | None = None,
    log: Callable[[str], None] | None = None,
    per_sample: bool = False,
) -> tuple[list[list[str]], list[list[int]], list[list[bool]]]:
    """N responses per problem: ``(texts, token lengths, truncated)``, each ``[problem][sample]``.

    ``prompts[p]`` is the prompt of problem ``p`` (token ids), or with ``per_sample=True`` the list of its N
    per-sample prompts. ``sampler`` defaults to ``jaxrlvr.sampling.generate`` (same signature). Each call
    covers ``prompt_batch_size`` problems; identical prompts of a problem share their prefill (see
    :func:`_sample_units`), so one prompt per problem gives the sampler rows ``p*N .. p*N+N-1``.
    """
    import numpy as np

    if sampler is None:
        from jaxrlvr.sampling import generate as sampler
        from jaxrlvr.sampling import prepare_params

        params = prepare_params(model_config, params)  # the sampler's layout, built once for all batches
    n = config.num_samples
    if per_sample:
        for p, ps in enumerate(prompts):
            if len(ps) != n:
                raise ValueError(f"[{name}] problem {p} has {len(ps)} per-sample prompts, expected {n}")
        sample_prompts = prompts
    else:
        sample_prompts = [[p] * n for p in prompts]
    texts: list[list[str]] = []
    lengths: list[list[int]] = []
    truncated: list[list[bool]] = []
    t0 = time.time()
    for start in range(0, len(sample_prompts), config.prompt_batch_size):
        chunk = sample_prompts[start : start + config.prompt_batch_size]
        units, g, owners = _sample_units(chunk)
        out = sampler(
            model_config,
            params,
            units,
            max_new_tokens=config.max_new_tokens,
            temperature=config.temperature,
            top_p=config.top_p,
            top_k=config.top_k,
            greedy=config.greedy,
            num_samples=g,
            eos_ids=tuple(tokenizer.eos_ids),
            pad_id=tokenizer.pad_id,
            seed=_derived_seed(config.seed, name, start),
        )
        tokens = np.asarray(out.tokens)
        lens = np.asarray(out.lengths).astype(np.int64)
        trunc = np.asarray(out.truncated).astype(bool)
        if tokens.shape[0] != len(chunk) * n:
            raise ValueError(f"sampler returned {tokens.shape[0]} rows for {len(chunk)} prompts x {n} samples")
        c_texts = [[""] * n for _ in chunk]
        c_lens = [[0] * n for _ in chunk]
        c_trunc = [[False] * n for _ in chunk]
        for u, (p, samples) in enumerate(owners):
            for j, s in enumerate(samples):
                r = u * g + j
                c_texts[p][s] = tokenizer.decode(tokens[r, : lens[r]].tolist())
                c_lens[p][s] = int(lens[r])
                c_trunc[p][s] = bool(trunc[r])
        texts += c_texts
        lengths += c_lens
        truncated += c_trunc
        if log is not None:
            done = min(start + config.prompt_batch_size, len(sample_prompts))
            log(f"[{name}] sampled {done}/{len(sample_prompts)} problems x {n} ({time.time() - t0:.0f}s)")
    return texts, lengths, truncated


# ------------------------------------------------------------------------------------------- evaluate
@dataclasses.dataclass
class PreparedBenchmark:
    """A benchmark ready to sample: its rows and prompts (``prompts[p]`` token ids, or with
    ``per_sample`` N token-id lists), the response length limit and the ids of skipped problems."""

    benchmark: Benchmark
    rows: list[dict]
    prompts: list
    per_sample: bool
    max_new_tokens: int
    skipped: list = dataclasses.field(default_factory=list)

    @property
    def name(self) -> str:
        return self.benchmark.name


def prepare_benchmarks(config: EvalConfig, tokenizer: Tokenizer) -> list[PreparedBenchmark]:
    """Loads every benchmark of ``config`` and builds its prompts, before any model work: a missing data
    file (GPQA) or scoring dependency (IFEval) is reported before a checkpoint is loaded or sampled."""
    prepared = []
    for name in config.benchmarks:
        bench = get_benchmark(name)
        if bench.configure is not None:
            bench = bench.configure(config)
        rows = bench.load(config.data_dir)
        if config.max_problems is not None:
            rows = rows[: config.max_problems]
        if bench.build_sample_prompts is not None:
            n = config.num_samples
            prompts = [bench.build_sample_prompts(row, n, config.seed, tokenizer, config.template) for row in rows]
            for row, ps in zip(rows, prompts, strict=True):
                if len(ps) != n:
                    raise ValueError(f"{name}: build_sample_prompts gave {len(ps)} prompts for {row['id']!r}, not {n}")
        else:
            prompts = [bench.build_prompt(row, tokenizer, config.template) for row in rows]
        prepared.append(
            PreparedBenchmark(
                bench, rows, prompts, bench.build_sample_prompts is not None, config.max_new_tokens_for(name)
            )
        )
    return prepared


def _fit_context(prepared: Sequence[PreparedBenchmark], context: int, skip: bool, log) -> list[PreparedBenchmark]:
    """Checks that every prompt plus its benchmark's ``max_new_tokens`` fits ``context`` positions. Returns
    the benchmarks without the problems that do not fit (``skip``; new objects, the inputs are unchanged),
    or raises naming the first of them."""
    out = []
    for pb in prepared:
        longest = (lambda pr: max(len(q) for q in pr)) if pb.per_sample else len
        too_long = [i for i, pr in enumerate(pb.prompts) if longest(pr) + pb.max_new_tokens > context]
        if not too_long:
            out.append(pb)
            continue
        i = too_long[0]
        if not skip:
            raise ValueError(
                f"{pb.name}: {len(too_long)} of {len(pb.rows)} prompts do not fit the model's context of "
                f"{context} positions with max_new_tokens={pb.max_new_tokens} (e.g. problem "
                f"{pb.rows[i]['id']!r}: {longest(pb.prompts[i])} prompt tokens). Lower max_new_tokens (or "
                "max_new_tokens_by_benchmark), or set skip_long_prompts=True to leave such problems out."
            )
        if len(too_long) == len(pb.rows):
            raise ValueError(
                f"{pb.name}: no prompt fits the model's context of {context} positions with "
                f"max_new_tokens={pb.max_new_tokens}"
            )
        drop = set(too_long)
        out.append(
            dataclasses.replace(
                pb,
                rows=[r for j, r in enumerate(pb.rows) if j not in drop],
                prompts=[q for j, q in enumerate(pb.prompts) if j not in drop],
                skipped=list(pb.skipped) + [pb.rows[j]["id"] for j in too_long],
            )
        )
        if log is not None:
            log(
                f"[{pb.name}] skipped {len(drop)} problems whose prompt + {pb.max_new_tokens} new tokens "
                f"exceed the context of {context}"
            )
    return out


def evaluate(
    model_config,
    params,
    tokenizer: Tokenizer,
    config: EvalConfig,
    *,
    sampler: Callable | None = None,
    log: Callable[[str], None] | None = print,
    prepared: Sequence[PreparedBenchmark] | None = None,
    provenance: Mapping[str, Any] | None = None,
) -> dict[str, BenchmarkResult]:
    """Samples, scores and (if ``config.out_dir``) writes every benchmark of ``config``.

    ``prepared``: the result of :func:`prepare_benchmarks` (built here when None). Every prompt is checked
    against the model's context before the first sample is drawn.
    """
    if prepared is None:
        prepared = prepare_benchmarks(config, tokenizer)
    context = getattr(model_config, "max_position_embeddings", None)
    if context:
        prepared = _fit_context(prepared, int(context), config.skip_long_prompts, log)
    results: dict[str, BenchmarkResult] = {}
    for pb in prepared:
        bench = pb.benchmark
        run_config = config
        if pb.max_new_tokens != config.max_new_tokens:
            run_config = dataclasses.replace(config, max_new_tokens=pb.max_new_tokens)
        texts, lengths, truncated = generate_responses(
            model_config,
            params,
            tokenizer,
            pb.prompts,
            run_config,
            name=bench.name,
            sampler=sampler,
            log=log,
            per_sample=pb.per_sample,
        )
        fmt = bench.format_check
        if fmt is format_violation and config.template is not None:
            if get_template(config.template).answer_format == "answer_line":
                fmt = answer_line_violation  # DAPO-style prompts ask for "Answer:", not a box
        t0 = time.time()
        result = score_responses(
            bench.name,
            pb.rows,
            texts,
            bench.make_scorer(config.scoring_options()),
            lengths=lengths,
            truncated=truncated,
            format_check=fmt,
            gold_of=bench.gold_of,
        )
        if pb.skipped:
            result.summary["skipped_problems"] = len(pb.skipped)
            result.summary["skipped_ids"] = list(pb.skipped)
        if pb.max_new_tokens != config.max_new_tokens:
            result.summary["max_new_tokens"] = pb.max_new_tokens
        if log is not None:
            s = result.summary
            n = s["num_samples"]
            maj = "n/a" if s["maj_at_n"] is None else f"{100 * s['maj_at_n']:.1f}%"
            log(f"[{bench.name}] scored in {time.time() - t0:.0f}s: Acc@{n} {100 * s['acc_at_n']:.1f}%  Maj@{n} {maj}")
        results[bench.name] = result
    if config.out_dir is not None:
        write_results(results, config.out_dir, config, provenance=provenance)
    return results


def _jsonable(x):
    if isinstance(x, float) and math.isnan(x):
        return None
    if isinstance(x, dict):
        return {k: _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    return x


def write_results(
    results: Mapping[str, BenchmarkResult],
    out_dir: str | os.PathLike,
    config: EvalConfig | None = None,
    *,
    provenance: Mapping[str, Any] | None = None,
) -> pathlib.Path:
    """Writes ``<benchmark>.samples.jsonl``, ``summary.json`` and ``summary.md`` into ``out_dir``."""
    out = pathlib.Path(out_dir).expanduser()
    out.mkdir(parents=True, exist_ok=True)
    for name, res in results.items():
        safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in name)
        with open(out / f"{safe}.samples.jsonl", "w", encoding="utf-8") as f:
            for rec in res.records:
                f.write(json.dumps(_jsonable(rec), ensure_ascii=False) + "\n")
    summaries = [r.summary for r in results.values()]
    payload = {"summaries": _jsonable(summaries)}
    if config is not None:
        payload["config"] = _jsonable(dataclasses.asdict(config))
    if provenance is not None:
        payload["provenance"] = _jsonable(dict(provenance))
    (out / "summary.json").write_text(json.dumps(payload, indent=2) + "\n")
    (out / "summary.md").write_text(format_summary_table(summaries))
    return out


def run_from_config(c, *, log: Callable[[str], None] | None = print) -> dict[str, BenchmarkResult]:
    """What scripts/evaluate.py runs: load the benchmarks, the tokenizer and the checkpoint named in ``c``,
    evaluate, write. Data problems (a missing GPQA file, ...) surface before the checkpoint is loaded."""
    if not c.ckpt:
        raise ValueError("set --config.ckpt=<Hugging Face folder or orbax run checkpoint>")
    if not pathlib.Path(c.ckpt).expanduser().exists():
        raise FileNotFoundError(f"checkpoint not found: {c.ckpt}")
    if c.get("select", "none") not in ("", "none"):  # pick a run's checkpoint by validation first
        from jaxrlvr.eval.select import select_and_evaluate

        return select_and_evaluate(c, log=log)["results"]
    config = EvalConfig.from_mapping(c)
    tokenizer = load_eval_tokenizer(c.tokenizer, c.ckpt)
    prepared = prepare_benchmarks(config, tokenizer)
    provenance = checkpoint_provenance(c.ckpt)
    provenance.update(tokenizer=c.tokenizer or "(the checkpoint's)", dtype=c.get("dtype") or "(as stored)")
    if config.out_dir is None:
        config = dataclasses.replace(config, out_dir=str(default_out_dir(provenance, config)))
    from jaxrlvr.runs_lock import WorkdirLock

    with WorkdirLock(config.out_dir, what="evaluation", log=log or (lambda *_: None)):  # one evaluation per folder
        if log is not None:
            log(f"evaluating {provenance['checkpoint']} (step {provenance['step']}); results in {config.out_dir}")
        model_config, params = load_model(c.ckpt, dtype=c.get("dtype") or None)
        results = evaluate(model_config, params, tokenizer, config, log=log, prepared=prepared, provenance=provenance)
    if log is not None:
        log(format_summary_table([r.summary for r in results.values()]))
    return results


def checkpoint_provenance(ckpt: str | os.PathLike) -> dict[str, Any]:
    """What a summary records about the evaluated checkpoint: ``checkpoint`` (the absolute path of the
    folder whose weights are loaded: a run's latest step folder when given the run), ``step`` (of a run
    checkpoint, else None), ``run`` (its workdir, else None), and the command, host and time."""
    import socket
    import sys

    from jaxrlvr.runs import _latest_step_dir, run_config

    path = pathlib.Path(ckpt).expanduser().absolute()
    step, run = None, None
    if run_config(path) is not None:
        folder = path / "checkpoints" if (path / "checkpoints").is_dir() else path
        if not (folder / "state").is_dir():
            try:
                folder = _latest_step_dir(folder)
            except FileNotFoundError:
                pass
        path = folder
        step = int(folder.name) if folder.name.isdigit() else None
        run = str(folder.parent.parent) if folder.parent.name == "checkpoints" else None
    return {
        "checkpoint": str(path),
        "step": step,
        "run": run,
        "command": " ".join(sys.argv)[:2000],
        "host": socket.gethostname(),
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def default_out_dir(provenance: Mapping[str, Any], config: EvalConfig) -> pathlib.Path:
    """``<run>/eval/step_NNNNNN_<benchmarks>_n<N>`` for a run checkpoint; other checkpoints need ``out_dir``."""
    if provenance.get("run") is None or provenance.get("step") is None:
        raise ValueError(
            f"--config.ckpt={provenance['checkpoint']} is not a checkpoint of a training run: give "
            "--config.out_dir=FOLDER for the results"
        )
    names = "+".join(
        "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in pathlib.Path(b).stem) for b in config.benchmarks
    )[:80]
    return pathlib.Path(provenance["run"]) / "eval" / f"step_{provenance['step']:06d}_{names}_n{config.num_samples}"
