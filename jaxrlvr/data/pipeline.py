"""grain pipelines of prompts: file -> validated rows -> prompt ids -> (shuffle, epochs, shard) -> batches.

``PromptDataset(config, tokenizer)`` validates and indexes the file (see :mod:`jaxrlvr.data.row_index`:
one pass keeps each row's place in the file and its prompt's token count, not the row), and builds a
``grain.MapDataset`` whose rows are read and turned into prompt token ids (the named template) when a batch
asks for them:

    rows --shuffle(seed), reshuffled every epoch--> --repeat(num_epochs)--> --[shard_index::shard_count]-->
    --batch(batch_size)--> batches (lists of row dicts)

Each row is ``{"id", "problem", "answer", "answer_alternatives", "prompt_ids", ...extra_fields}``.

Sharding takes every ``shard_count``-th element of the *global* shuffled stream, so process ``i`` of ``n``
reads elements ``i, i+n, i+2n, ...``: the union of the processes' batch ``k`` is the same set of prompts
for any ``n`` with the same global batch. The row count is first cut down to a multiple of
``shard_count`` (the last ``len % shard_count`` rows of the file are dropped) so every process sees the
same number of batches.

The iterator from :meth:`PromptDataset.iterator` is a ``grain.DatasetIterator``: ``it.get_state()`` is a
small JSON-able dict the trainer saves (with orbax, e.g. ``grain.checkpoint.CheckpointSave(it)``) and
``it.set_state(state)`` / ``PromptDataset.iterator(state)`` resumes exactly.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Mapping
from typing import Any

import grain
import numpy as np

from jaxrlvr.data.loading import DataError, resolve_data_path
from jaxrlvr.data.row_index import index_rows
from jaxrlvr.data.templates import get_template
from jaxrlvr.data.tokenizer import Tokenizer


@dataclasses.dataclass(frozen=True)
class DataConfig:
    """A prompt pipeline.

    Attributes:
      path: a JSON Lines / Parquet file, or a named data set (``math500``, ..., ``math_train``,
        ``dapo_math_17k``; see :func:`jaxrlvr.data.resolve_data_path`).
      data_dir: folder for named data sets (None: the shipped benchmark copies).
      format: ``"auto"`` (by suffix), ``"jsonl"`` or ``"parquet"``.
      problem_field / answer_field / id_field: where the problem, gold answer and id are (dotted paths
        into nested records are fine; ``id_field=None`` numbers the rows).
      alt_answers_field: optional list of further acceptable gold strings.
      extra_fields: other fields to copy into each row.
      template: prompt template name (``qwen_math_cot``, ``plain_boxed``, ``dapo_answer``, or registered).
      batch_size: prompts per batch (per process); None yields single rows.
      drop_remainder: drop a last, smaller batch.
      shuffle / seed: seeded global shuffle, different in every epoch.
      num_epochs: passes over the data; None repeats forever.
      shard_index / shard_count: this process's shard; None means ``jax.process_index()`` /
        ``jax.process_count()``.
      skip_bad_rows: skip (and count) bad rows instead of raising an error naming file and line.
      max_prompt_tokens: prompts longer than this are bad rows (error, or skipped and counted).
    """

    path: str
    data_dir: str | None = None
    format: str = "auto"
    problem_field: str = "problem"
    answer_field: str = "answer"
    id_field: str | None = "id"
    alt_answers_field: str | None = None
    extra_fields: tuple[str, ...] = ()
    template: str = "qwen_math_cot"
    batch_size: int | None = 1
    drop_remainder: bool = True
    shuffle: bool = True
    seed: int = 0
    num_epochs: int | None = 1
    shard_index: int | None = 0
    shard_count: int | None = 1
    skip_bad_rows: bool = False
    max_prompt_tokens: int | None = None

    def __post_init__(self):
        if not isinstance(self.path, str) or not self.path:
            raise ValueError(f"DataConfig.path must be a non-empty string, got {self.path!r}")
        if self.batch_size is not None and self.batch_size < 1:
            raise ValueError(f"DataConfig.batch_size must be >= 1 or None, got {self.batch_size}")
        if self.num_epochs is not None and self.num_epochs < 1:
            raise ValueError(f"DataConfig.num_epochs must be >= 1 or None, got {self.num_epochs}")
        if not 0 <= self.seed < 2**32:
            raise ValueError(f"DataConfig.seed must be in [0, 2**32), got {self.seed}")
        if self.shard_count is not None and self.shard_count < 1:
            raise ValueError(f"DataConfig.shard_count must be >= 1, got {self.shard_count}")
        if self.shard_index is not None and self.shard_count is not None:
            if not 0 <= self.shard_index < self.shard_count:
                raise ValueError(
                    f"DataConfig.shard_index={self.shard_index} must be in [0, shard_count={self.shard_count})"
                )
        if self.max_prompt_tokens is not None and self.max_prompt_tokens < 1:
            raise ValueError(f"DataConfig.max_prompt_tokens must be >= 1, got {self.max_prompt_tokens}")
        get_template(self.template)  # unknown names fail here
        object.__setattr__(self, "extra_fields", tuple(self.extra_fields))

    @classmethod
    def from_mapping(cls, cfg: Mapping[str, Any]) -> DataConfig:
        """From a dict / ``ml_collections.ConfigDict``; unknown keys are an error naming them."""
        items = dict(cfg.items()) if hasattr(cfg, "items") else dict(cfg)
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(items) - names)
        if unknown:
            raise ValueError(f"unknown data config keys {unknown}; known: {sorted(names)}")
        if "extra_fields" in items and items["extra_fields"] is not None:
            items["extra_fields"] = tuple(items["extra_fields"])
        return cls(**items)


def _resolve_shard(config: DataConfig) -> tuple[int, int]:
    index, count = config.shard_index, config.shard_count
    if index is None or count is None:
        import jax  # only when asked to follow the process layout

        index = jax.process_index() if index is None else index
        count = jax.process_count() if count is None else count
    if not 0 <= index < count:
        raise ValueError(f"shard index {index} is not in [0, {count})")
    return int(index), int(count)


class PromptDataset:
    """Validated, tokenised rows and the grain pipeline over them (see the module docstring).

    Attributes:
      config: the :class:`DataConfig`.
      rows: every usable row of the file (all shards), each with ``prompt_ids``: an
        :class:`~jaxrlvr.data.row_index.IndexedRows`, which reads and tokenizes a row when it is asked for.
      skipped: ``(line, reason)`` of every skipped row (bad rows and over-long prompts).
      shard_index / shard_count: the resolved shard.
      dataset: the ``grain.MapDataset`` of batches (or rows when ``batch_size`` is None).
    """

    def __init__(self, config: DataConfig, tokenizer: Tokenizer):
        self.config = config
        self.template = get_template(config.template)
        path = resolve_data_path(config.path, config.data_dir)
        index = index_rows(
            path,
            problem_field=config.problem_field,
            answer_field=config.answer_field,
            id_field=config.id_field,
            alt_answers_field=config.alt_answers_field,
            extra_fields=config.extra_fields,
            skip_bad_rows=config.skip_bad_rows,
            format=config.format,
            encode=functools.partial(self.template.encode, tokenizer=tokenizer),
        )
        self.path = path
        self.skipped = list(index.skipped)
        rows = index
        limit = config.max_prompt_tokens
        if limit is not None and (index.prompt_lengths > limit).any():
            for i in np.flatnonzero(index.prompt_lengths > limit):
                line = int(index.lines[i])
                reason = (
                    f"prompt of id {index[i]['id']!r} has {index.prompt_lengths[i]} tokens > max_prompt_tokens={limit}"
                )
                if not config.skip_bad_rows:
                    raise DataError(f"{path}:{line}: {reason}")
                self.skipped.append((line, reason))
            rows = index.subset(np.flatnonzero(index.prompt_lengths <= limit))
        if not len(rows):
            raise DataError(f"{path}: no rows left after filtering ({len(self.skipped)} skipped)")
        self.rows = rows
        self.shard_index, self.shard_count = _resolve_shard(config)
        usable = len(rows) - len(rows) % self.shard_count
        if usable == 0:
            raise DataError(f"{path}: {len(rows)} rows cannot be split into {self.shard_count} shards")
        ds = grain.MapDataset.source(rows[:usable])
        if config.shuffle:
            ds = ds.shuffle(seed=config.seed)
        ds = ds.repeat(config.num_epochs)
        if self.shard_count > 1:
            ds = ds[self.shard_index :: self.shard_count]
        ds = ds.map(dict)  # callers get their own shallow copies
        if config.batch_size is not None:
            ds = ds.batch(config.batch_size, drop_remainder=config.drop_remainder, batch_fn=list)
        self.dataset = ds
        self.rows_per_shard_per_epoch = usable // self.shard_count

    @property
    def num_skipped(self) -> int:
        return len(self.skipped)

    def __len__(self) -> int:
        """Batches (or rows) this shard yields in total; raises for an infinite pipeline."""
        if self.config.num_epochs is None:
            raise TypeError("an infinitely repeating PromptDataset has no length")
        return len(self.dataset)

    def iterator(self, state: Mapping[str, Any] | None = None) -> grain.DatasetIterator:
        """A checkpointable iterator; ``state`` (from ``it.get_state()``) resumes where it was taken."""
        it = iter(self.dataset.to_iter_dataset(grain.ReadOptions(num_threads=1, prefetch_buffer_size=2)))
        if state is not None:
            it.set_state(dict(state))
        return it

    def __iter__(self):
        return self.iterator()


_KEY_ALIASES = {"problem_key": "problem_field", "answer_key": "answer_field", "id_key": "id_field"}


def load_prompt_rows(config: Any, tokenizer: Tokenizer) -> list[dict]:
    """Every usable row of a data file with ``prompt_ids`` (file order, no shuffle, no sharding).

    ``config`` is a :class:`DataConfig`, a mapping of its fields, or a trainer config with a ``data``
    section; in a mapping, ``problem_key`` / ``answer_key`` / ``id_key`` are accepted for the ``*_field``
    names, and keys that are not data-file settings (``source``, ``synthetic_*``, ...) are ignored.
    """
    return prompt_dataset_from_config(config, tokenizer).rows


def prompt_dataset_from_config(config: Any, tokenizer: Tokenizer) -> PromptDataset:
    """:func:`load_prompt_rows`'s dataset (its ``rows`` and the ``skipped`` bad rows with their reasons)."""
    if not isinstance(config, DataConfig):
        section = config["data"] if hasattr(config, "keys") and "data" in config.keys() else config
        items = {_KEY_ALIASES.get(k, k): v for k, v in dict(section.items()).items()}
        names = {f.name for f in dataclasses.fields(DataConfig)}
        items = {k: v for k, v in items.items() if k in names}
        config = DataConfig.from_mapping(items)
    config = dataclasses.replace(config, shuffle=False, shard_index=0, shard_count=1, batch_size=None)
    return PromptDataset(config, tokenizer)


def make_prompt_dataset(config: DataConfig | Mapping[str, Any], tokenizer: Tokenizer) -> PromptDataset:
    """``PromptDataset`` from a :class:`DataConfig` or a mapping of its fields."""
    if not isinstance(config, DataConfig):
        config = DataConfig.from_mapping(config)
    return PromptDataset(config, tokenizer)
