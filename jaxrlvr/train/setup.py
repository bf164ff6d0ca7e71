"""Setting a run up: tokenizer, model, data rows and the prompt stream, the verifier, and the
:class:`RunContext` that carries the run's fixed pieces (configs, optimizer, placement) through the stages."""

from __future__ import annotations

import dataclasses
import pathlib
from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from jaxrlvr import algos, sharding
from jaxrlvr.data import synthetic, testbed
from jaxrlvr.data.tokenizer import CharTokenizer, load_tokenizer
from jaxrlvr.models import ModelConfig, init_params, load_hf_checkpoint
from jaxrlvr.runs import load_params
from jaxrlvr.train import config as config_lib
from jaxrlvr.train.rollout import RolloutConfig


@dataclasses.dataclass(frozen=True, eq=False)
class RunContext:
    """What every stage of a step reads and nothing changes during a run."""

    c: object  # the locked ml_collections config
    workdir: pathlib.Path
    rc: RolloutConfig
    algo_cfg: algos.AlgoConfig
    tx: object  # optax.GradientTransformation
    lr_fn: Callable | None
    model_cfg: ModelConfig
    tokenizer: object
    pl: sharding.Placement
    score_fn: Callable  # (texts, golds) -> [bool]
    main: bool  # process 0 (writes the run's files)
    log: Callable


def build_tokenizer(c):
    spec = c.tokenizer or c.model.hf_path
    if not spec:
        raise ValueError("no tokenizer: set config.tokenizer ('char' or a folder) or model.hf_path")
    return CharTokenizer() if spec == "char" else load_tokenizer(spec)


def build_model(c, tokenizer, rng, log=lambda *a, **k: None) -> tuple[ModelConfig, dict]:
    m = c.model
    if m.hf_path:
        log(f"loading weights from {m.hf_path}")
        cfg, params = load_hf_checkpoint(m.hf_path, dtype=jnp.dtype(m.param_dtype))
        cfg = dataclasses.replace(cfg, dtype=m.dtype, remat=m.remat, attention_impl=m.attention_impl)
        return config_lib.apply_context_overrides(c, cfg), params
    if m.init_ckpt:
        log(f"loading weights from {m.init_ckpt}")
        cfg, params = load_params(m.init_ckpt)
        cfg = dataclasses.replace(cfg, dtype=m.dtype, remat=m.remat, attention_impl=m.attention_impl)
        return config_lib.apply_context_overrides(c, cfg), params
    cfg = config_lib.model_config(c, tokenizer.vocab_size)
    return cfg, init_params(cfg, rng)


def demo_prompt(problem: str) -> str:
    """The synthetic source's prompt: the problem then a newline (the char model needs no chat frame)."""
    return problem + "\n"


class PromptStream:
    """A seeded, checkpointable stream of prompt batches (grain MapDataset: shuffle, repeat, batch).

    With ``shard_count`` > 1 (one shard per process) shard ``i`` yields rows ``[i*k, (i+1)*k)`` of every
    global batch of ``batch`` rows (``k = batch / shard_count``): the shards' batches concatenated in shard
    order are the unsharded stream's batches, and the iterator state (batches consumed) is the same on
    every shard, so a run may resume on a different number of processes. ``rows`` may be a list or a
    data file's lazy :class:`~jaxrlvr.data.row_index.IndexedRows` (only a batch's rows are read): the
    order and the state depend only on the number of rows and the seed.
    """

    def __init__(self, rows: Sequence[dict], batch: int, seed: int, *, shard_index: int = 0, shard_count: int = 1):
        import grain

        if shard_count < 1 or not 0 <= shard_index < shard_count:
            raise ValueError(f"PromptStream: shard_index={shard_index} is not in [0, shard_count={shard_count})")
        if batch % shard_count:
            raise ValueError(
                f"rollout.prompts_per_step={batch} is not divisible by the number of processes ({shard_count})"
            )
        if not rows:
            raise ValueError("PromptStream: no training rows")
        ds = grain.MapDataset.source(rows).shuffle(seed=seed).repeat(None)
        self._ds = ds.batch(batch // shard_count, batch_fn=list)[shard_index::shard_count]
        self._it = iter(self._ds)

    def __next__(self) -> list[dict]:
        return next(self._it)

    def get_state(self) -> dict:
        return self._it.get_state()

    def set_state(self, state: dict) -> None:
        self._it.set_state(state)


def build_data(c, tokenizer) -> tuple[Sequence[dict], list[dict], int]:
    """(train rows, held-out rows, bad rows skipped), each row with ``prompt_ids`` and ``answer`` (before the
    length filter). A data file's training rows are an :class:`~jaxrlvr.data.row_index.IndexedRows`: a
    sequence that reads and tokenizes a row when it is indexed (memory per row: its place in the file and
    its prompt length; ``docs/data.md``); the synthetic source's are lists. Bad rows of a data file are an
    error naming file and line, or with ``data.skip_bad_rows`` skipped: their count is returned (the trainer
    logs it and records it in summary.json)."""
    if c.data.source == "synthetic":
        if c.data.synthetic_task == "testbed":
            train, heldout = testbed.disjoint_splits(c.data.synthetic_train, c.data.heldout, c.seed)
        else:
            arith = synthetic.ArithmeticConfig(digits=c.data.synthetic_digits, word_problems=False)
            train, heldout = synthetic.disjoint_splits(c.data.synthetic_train, c.data.heldout, c.seed, arith)
        for r in train + heldout:
            r["prompt_ids"] = tokenizer.encode(demo_prompt(r["problem"]))
        return train, heldout, 0
    from jaxrlvr.data.pipeline import prompt_dataset_from_config

    ds = prompt_dataset_from_config(c, tokenizer)
    return ds.rows, [], ds.num_skipped


def filter_long_prompts(c, rows, what: str):
    """(rows whose prompt fits ``rollout.max_prompt_len``, number dropped). Every row is checked; with
    ``data.filter_overlong_prompts`` off the first over-long row is an error naming it and the fix.

    ``rows``: a list of dicts with ``prompt_ids``, or a file's :class:`~jaxrlvr.data.row_index.IndexedRows`,
    which is filtered from the prompt lengths of its indexing pass (no row is read again) and stays an index.
    """
    limit = c.rollout.max_prompt_len
    lengths = getattr(rows, "prompt_lengths", None)
    if lengths is None:
        lengths = np.asarray([len(r["prompt_ids"]) for r in rows], dtype=np.int64)
    keep = np.flatnonzero(lengths <= limit)
    n = len(lengths)
    if keep.size < n and not c.data.filter_overlong_prompts:
        first = int(np.flatnonzero(lengths > limit)[0])
        raise ValueError(
            f"{n - keep.size} of {n} {what} prompts are longer than rollout.max_prompt_len={limit} "
            f"(e.g. row {rows[first].get('id')!r}: {int(lengths[first])} tokens; longest {int(lengths.max())}); "
            "raise rollout.max_prompt_len or set data.filter_overlong_prompts=True to drop them"
        )
    if n and not keep.size:
        raise ValueError(
            f"every {what} prompt is longer than rollout.max_prompt_len={limit} tokens "
            f"(shortest {int(lengths.min())}); raise rollout.max_prompt_len"
        )
    if keep.size == n:
        return rows, 0
    kept = rows.subset(keep) if hasattr(rows, "subset") else [rows[int(i)] for i in keep]
    return kept, n - int(keep.size)


def make_score_fn(c):
    """Verifier: math-verify in worker processes with per-item timeouts (``jaxrlvr.rewards``). In a
    multi-process run each process verifies its contiguous share of the responses and the verdicts are
    gathered, so every process returns all of them."""
    from jaxrlvr.rewards import score_batch

    def score_local(texts, golds):
        if not texts:
            return []
        results = score_batch(
            texts,
            golds,
            workers=c.reward.workers,
            timeout_s=c.reward.timeout_s,
            # A response is at most rollout.max_new_tokens tokens; no tokenizer's token decodes to more than
            # ~16 characters of text (our choice, generous): longer input can only be hostile.
            max_response_chars=16 * c.rollout.max_new_tokens,
        )
        return [bool(getattr(r, "correct", r)) for r in results]

    def score(texts, golds):
        if jax.process_count() == 1:
            return score_local(texts, golds)
        share = sharding.process_slice(len(texts))
        local = np.asarray(score_local(list(texts[share]), list(golds[share])), np.int32)
        return [bool(x) for x in sharding.process_allgather_rows(local, len(texts))]

    return score


def gather_prompt_rows(local_rows: list[dict]) -> list[dict]:
    """The global prompt batch from every process's own rows (process order); the sampler and the
    update run on the global batch. Only what the rollout needs travels: ids, answer, id."""
    if jax.process_count() == 1:
        return local_rows
    slim = [
        {"prompt_ids": [int(t) for t in r["prompt_ids"]], "answer": str(r["answer"]), "id": str(r.get("id", ""))}
        for r in local_rows
    ]
    return [r for part in sharding.process_allgather_json(slim) for r in part]


class NoWriter:
    """The metrics writer of processes other than 0 (only process 0 writes files)."""

    def truncate_after(self, step):
        pass

    def write(self, step, metrics):
        pass

    def close(self):
        pass
