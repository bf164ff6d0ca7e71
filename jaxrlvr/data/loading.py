"""Reading problem/answer rows from JSON Lines and Parquet files, with validation, and named data sets.

Every row becomes a dict with ``id`` (str), ``problem`` (str), ``answer`` (str), ``answer_alternatives``
(list[str], possibly empty) and any ``extra_fields`` asked for. Field names are configurable and may be
dotted paths into nested records (``reward_model.ground_truth``, ``prompt.0.content``: the verl Parquet
layout).

A bad row (invalid JSON, missing field, non-string or empty problem, empty answer, duplicate id) is an
error naming the file and line, or, with ``skip_bad_rows=True``, is skipped and reported in
``LoadedRows.skipped``.

Named data sets: ``math500``, ``aime24``, ``aime25``, ``amc23``, ``minerva`` and ``gsm8k`` are shipped as
package data (see ``jaxrlvr/data/benchmarks/SOURCES.md``); ``math_train`` and ``dapo_math_17k`` are not
shipped and resolve only inside a ``data_dir``.
"""

from __future__ import annotations

import dataclasses
import importlib.resources
import json
import math
import os
import pathlib
from collections.abc import Iterator, Sequence
from typing import Any

BENCHMARK_FILES: dict[str, str] = {
    "math500": "math500.jsonl",
    "aime24": "aime24.jsonl",
    "aime25": "aime25.jsonl",
    "amc23": "amc23.jsonl",
    "minerva": "minerva_math.jsonl",
    "gsm8k": "gsm8k_test.jsonl",
}
TRAIN_FILES: dict[str, str] = {
    "math_train": "math_train.jsonl",
    "dapo_math_17k": "dapo_math_17k.jsonl",
}
_MISSING = object()


class DataError(ValueError):
    """A data file or row is unusable; the message names the file, the line and the field."""


@dataclasses.dataclass
class LoadedRows:
    """Rows read from one file (``lines[i]`` is the line of ``rows[i]``) and the skipped rows."""

    path: pathlib.Path
    rows: list[dict]
    skipped: list[tuple[int, str]]
    lines: list[int] = dataclasses.field(default_factory=list)

    @property
    def num_skipped(self) -> int:
        return len(self.skipped)


def package_benchmark_path(name: str) -> pathlib.Path:
    """Path of a shipped benchmark file (``math500`` -> ``.../jaxrlvr/data/benchmarks/math500.jsonl``)."""
    if name not in BENCHMARK_FILES:
        raise ValueError(f"unknown benchmark {name!r}; shipped: {sorted(BENCHMARK_FILES)}")
    ref = importlib.resources.files("jaxrlvr.data").joinpath("benchmarks", BENCHMARK_FILES[name])
    path = pathlib.Path(str(ref))
    if not path.is_file():
        raise FileNotFoundError(f"package data file missing for benchmark {name!r}: {path}")
    return path


def resolve_data_path(name_or_path: str | os.PathLike, data_dir: str | os.PathLike | None = None) -> pathlib.Path:
    """A named data set (in ``data_dir`` when given, else the shipped copy) or an existing file path."""
    name = str(name_or_path)
    if name in BENCHMARK_FILES or name in TRAIN_FILES:
        fname = BENCHMARK_FILES.get(name) or TRAIN_FILES[name]
        if data_dir is not None:
            path = pathlib.Path(data_dir).expanduser() / fname
            if not path.is_file():
                raise FileNotFoundError(f"data set {name!r}: {path} not found (data_dir={str(data_dir)!r})")
            return path
        if name in TRAIN_FILES:
            raise FileNotFoundError(
                f"data set {name!r} is not shipped with jaxrlvr: pass data_dir= (a folder holding {fname}) "
                "or a file path"
            )
        return package_benchmark_path(name)
    path = pathlib.Path(name).expanduser()
    if not path.is_file():
        raise FileNotFoundError(
            f"data file not found: {path} (named data sets: {sorted(BENCHMARK_FILES) + sorted(TRAIN_FILES)})"
        )
    return path


def _file_format(path: pathlib.Path, fmt: str) -> str:
    if fmt != "auto":
        if fmt not in ("jsonl", "parquet"):
            raise DataError(f"data format must be 'auto', 'jsonl' or 'parquet', got {fmt!r}")
        return fmt
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".json", ".ndjson"):
        return "jsonl"
    if suffix in (".parquet", ".pq"):
        return "parquet"
    raise DataError(f"{path}: cannot tell the format from the suffix {suffix!r}; set format='jsonl' or 'parquet'")


def iter_records(
    path: pathlib.Path, fmt: str = "auto", fields: Sequence[str] | None = None
) -> Iterator[tuple[int, Any]]:
    """``(line, record)`` for every record, streamed (one line, or one Parquet batch of rows, in memory at a
    time); ``record`` is an Exception for an unreadable JSON line.

    Lines are 1-based line numbers for JSON Lines (blank lines skipped) and 1-based row numbers for Parquet.
    ``fields`` (dotted paths): for Parquet only the top-level columns they name are read (the others, e.g.
    a verl file's long ``extra_info``, are never decoded).
    """
    fmt = _file_format(path, fmt)
    if fmt == "jsonl":
        for lineno, _, _, rec in jsonl_records(path):
            yield lineno, rec
        return
    import pyarrow.parquet as pq

    pf = pq.ParquetFile(path)
    lineno = 0
    for batch in pf.iter_batches(batch_size=4096, columns=parquet_columns(pf.schema_arrow.names, fields)):
        for rec in batch.to_pylist():
            lineno += 1
            yield lineno, rec


def jsonl_records(path: pathlib.Path) -> Iterator[tuple[int, int, int, Any]]:
    """``(line, byte offset, byte length, record)`` of every non-blank line of a JSON Lines file, streamed;
    ``record`` is an Exception for a line that is not UTF-8 or not JSON."""
    with open(path, "rb") as f:
        offset = 0
        for lineno, raw in enumerate(f, start=1):
            start, offset = offset, offset + len(raw)
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                bad = raw[e.start : e.start + 1].hex()
                yield lineno, start, len(raw), ValueError(f"not valid UTF-8 (byte 0x{bad} at column {e.start + 1})")
                continue
            if not line.strip():
                continue
            try:
                yield lineno, start, len(raw), json.loads(line)
            except json.JSONDecodeError as e:
                yield lineno, start, len(raw), e


def parquet_columns(names: Sequence[str], fields: Sequence[str] | None) -> list[str] | None:
    """The top-level Parquet columns that ``fields`` (dotted paths) need; None: all of them."""
    if fields is None:
        return None
    have = set(names)
    wanted = dict.fromkeys(c for f in fields for c in (f, f.split(".")[0]))  # "a.b" may be a column's name
    return [c for c in wanted if c in have] or None


def get_field(record: Any, field: str) -> Any:
    """``record[field]`` where ``field`` may be a dotted path (``a.b.0.c``); ``_MISSING`` when absent."""
    if isinstance(record, dict) and field in record:
        return record[field]
    cur = record
    for part in field.split("."):
        if isinstance(cur, dict):
            if part not in cur:
                return _MISSING
            cur = cur[part]
        elif isinstance(cur, (list, tuple)) and part.lstrip("-").isdigit():
            idx = int(part)
            if not -len(cur) <= idx < len(cur):
                return _MISSING
            cur = cur[idx]
        else:
            return _MISSING
    return cur


def _answer_to_str(value: Any) -> str | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            return None
        return str(int(value)) if value.is_integer() else repr(value)
    if isinstance(value, str):
        return value
    return None


class _RowChecker:
    """Validates records into rows (the checks of :func:`load_rows`, except duplicate ids)."""

    def __init__(self, path, problem_field, answer_field, id_field, alt_answers_field, extra_fields):
        self.path, self.problem_field, self.answer_field = path, problem_field, answer_field
        self.id_field, self.alt_answers_field, self.extra_fields = id_field, alt_answers_field, tuple(extra_fields)

    @property
    def fields(self) -> list[str]:
        opt = (f for f in (self.id_field, self.alt_answers_field) if f)
        return [self.problem_field, self.answer_field, *opt, *self.extra_fields]

    def row(self, index: int, rec: Any) -> dict | str:
        """The row of record number ``index`` (0-based, bad records counted), or the reason it is bad."""
        if isinstance(rec, json.JSONDecodeError):
            return f"invalid JSON ({rec})"
        if isinstance(rec, Exception):
            return str(rec)
        if not isinstance(rec, dict):
            return f"a row must be an object, got {type(rec).__name__}"
        pf, af = self.problem_field, self.answer_field
        problem = get_field(rec, pf)
        if problem is _MISSING:
            return f"missing field {pf!r} (keys: {sorted(rec)[:12]})"
        if not isinstance(problem, str):
            return f"field {pf!r} must be a string, got {type(problem).__name__}"
        if not problem.strip():
            return f"field {pf!r} is empty"
        raw_answer = get_field(rec, af)
        if raw_answer is _MISSING or raw_answer is None:
            return f"missing field {af!r} (keys: {sorted(rec)[:12]})"
        answer = _answer_to_str(raw_answer)
        if answer is None:
            return f"field {af!r} must be a string or a number, got {type(raw_answer).__name__}"
        if not answer.strip():
            return f"field {af!r} is empty"
        alts: list[str] = []
        if self.alt_answers_field is not None:
            raw_alts = get_field(rec, self.alt_answers_field)
            if raw_alts is not _MISSING and raw_alts is not None:
                if not isinstance(raw_alts, (list, tuple)):
                    return f"field {self.alt_answers_field!r} must be a list of answers"
                alts = [a for a in (_answer_to_str(x) for x in raw_alts) if a and a.strip()]
        rid = get_field(rec, self.id_field) if self.id_field is not None else _MISSING
        if rid is _MISSING or rid is None:
            rid = f"{self.path.stem}-{index}"
        row = {"id": str(rid), "problem": problem, "answer": answer.strip(), "answer_alternatives": alts}
        for f in self.extra_fields:
            v = get_field(rec, f)
            row[f] = None if v is _MISSING else v
        return row


def load_rows(
    path: str | os.PathLike,
    *,
    problem_field: str = "problem",
    answer_field: str = "answer",
    id_field: str | None = "id",
    alt_answers_field: str | None = None,
    extra_fields: Sequence[str] = (),
    skip_bad_rows: bool = False,
    format: str = "auto",
) -> LoadedRows:
    """Reads and validates every row of a JSON Lines or Parquet file, all held in memory (benchmarks; a
    training file goes through :func:`index_rows`, which holds a few numbers per row).

    Args:
      path: the file.
      problem_field / answer_field: where the problem text and the gold answer are (dotted paths ok).
        Integer and float answers are turned into strings (``27.0`` -> ``"27"``).
      id_field: where the row id is; None (or a row without it) gives ``<file stem>-<row index>``.
      alt_answers_field: an optional list of further acceptable answer strings.
      extra_fields: other fields copied into the row as they are (absent -> None).
      skip_bad_rows: skip and report bad rows instead of raising :class:`DataError`.
      format: ``"auto"`` (by suffix), ``"jsonl"`` or ``"parquet"``.
    """
    path = pathlib.Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"data file not found: {path}")
    check = _RowChecker(path, problem_field, answer_field, id_field, alt_answers_field, extra_fields)
    rows: list[dict] = []
    lines: list[int] = []
    skipped: list[tuple[int, str]] = []
    seen_ids: dict[str, int] = {}
    for index, (lineno, rec) in enumerate(iter_records(path, format, check.fields)):
        row = check.row(index, rec)
        if not isinstance(row, str) and row["id"] in seen_ids:
            row = f"duplicate id {row['id']!r} (first on line {seen_ids[row['id']]})"
        if isinstance(row, str):
            if not skip_bad_rows:
                raise DataError(f"{path}:{lineno}: {row}")
            skipped.append((lineno, row))
            continue
        seen_ids[row["id"]] = lineno
        rows.append(row)
        lines.append(lineno)
    if not rows:
        raise DataError(f"{path}: no usable rows ({len(skipped)} skipped)")
    return LoadedRows(path=path, rows=rows, skipped=skipped, lines=lines)


def load_benchmark_rows(
    name_or_path: str | os.PathLike, data_dir: str | os.PathLike | None = None, **kwargs
) -> list[dict]:
    """Rows of a named benchmark (shipped copy or ``data_dir``) or of a file; Minerva's alternatives kept."""
    name = str(name_or_path)
    if name == "minerva":
        kwargs.setdefault("alt_answers_field", "answer_alternatives")
    return load_rows(resolve_data_path(name_or_path, data_dir), **kwargs).rows
