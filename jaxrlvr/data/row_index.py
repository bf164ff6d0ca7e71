"""Training files indexed rather than read whole: memory proportional to the rows in use.

:func:`index_rows` makes one validating pass over a JSON Lines or Parquet file (the checks and error lines of
:func:`jaxrlvr.data.loading.load_rows`) and keeps, per usable row, only where it is in the file and, with
``encode``, the length of its prompt in tokens (what the over-long filter needs). The result,
:class:`IndexedRows`, is a sequence: ``rows[i]`` reads row ``i`` from the file again and tokenizes its prompt
when it is asked for (the prompt stream asks for the rows of the next batch only), so a file of N rows costs
about 32 bytes per row plus the rows in flight, not N rows of text and token ids.

JSON Lines: the index holds each line's byte offset and length (``os.pread``; safe from several threads).
Parquet: the columns the fields name are read once into Arrow's columnar memory (about their uncompressed
size; the other columns, e.g. a verl file's ``extra_info``, are never read) and a row becomes Python objects
only when it is asked for.

Duplicate ids are found without holding the ids: one 64-bit hash per row, and the rows whose hashes collide
are read again to compare their ids exactly.
"""

from __future__ import annotations

import array
import dataclasses
import json
import operator
import os
import pathlib
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from jaxrlvr.data.loading import DataError, _file_format, _RowChecker, jsonl_records, parquet_columns


class _JsonlSource:
    """Reads one record back by byte offset and length."""

    def __init__(self, path: pathlib.Path):
        self.path = path
        self._fd: int | None = None
        self._pid = -1

    def read(self, pos: int, size: int) -> Any:
        if self._fd is None or self._pid != os.getpid():  # a forked child opens its own descriptor
            self._fd, self._pid = os.open(self.path, os.O_RDONLY), os.getpid()
        return json.loads(os.pread(self._fd, size, pos).decode("utf-8"))

    def __del__(self, _close=os.close, _getpid=os.getpid):  # bound now: os may be gone at interpreter exit
        if self._fd is not None and self._pid == _getpid():
            try:
                _close(self._fd)
            except OSError:
                pass

    def __getstate__(self):
        return {"path": self.path, "_fd": None, "_pid": -1}


class _ParquetSource:
    """The needed columns as an Arrow table; a record becomes Python objects when read."""

    def __init__(self, table):
        self.table = table

    def read(self, pos: int, size: int) -> Any:
        return self.table.slice(pos, 1).to_pylist()[0]


@dataclasses.dataclass(frozen=True, eq=False)
class IndexedRows(Sequence):
    """The usable rows of a data file, read when asked for (see the module docstring).

    ``rows[i]`` is a fresh dict ``{"id", "problem", "answer", "answer_alternatives", ...extra_fields}`` plus
    ``prompt_ids`` when the index was made with ``encode``; ``rows[a:b]`` and :meth:`subset` are index views
    (nothing is read). ``lines[i]`` is row ``i``'s line (JSON Lines) or 1-based row number (Parquet);
    ``prompt_lengths[i]`` its prompt's token count (with ``encode``); ``skipped`` the bad rows of the file.
    """

    path: pathlib.Path
    _source: Any
    _check: _RowChecker
    _pos: np.ndarray  # [N] int64: byte offset (JSON Lines) or row position (Parquet)
    _size: np.ndarray  # [N] int32: byte length (JSON Lines)
    _record: np.ndarray  # [N] int64: record number (bad rows counted): the default id's index
    lines: np.ndarray  # [N] int64
    prompt_lengths: np.ndarray | None  # [N] int32
    encode: Callable[[str], list[int]] | None
    skipped: tuple[tuple[int, str], ...]

    def __len__(self) -> int:
        return int(self._pos.shape[0])

    def __getitem__(self, i):
        if isinstance(i, slice):
            return self.subset(np.arange(len(self))[i])
        i = operator.index(i)
        n = len(self)
        if not -n <= i < n:
            raise IndexError(f"row {i} out of range for {n} rows")
        i %= n
        rec = self._source.read(int(self._pos[i]), int(self._size[i]))
        row = self._check.row(int(self._record[i]), rec)
        if isinstance(row, str):
            raise DataError(f"{self.path}:{int(self.lines[i])}: {row} (the file changed after it was indexed)")
        if self.encode is not None:
            row["prompt_ids"] = self.encode(row["problem"])
        return row

    def __iter__(self):
        return (self[i] for i in range(len(self)))

    def subset(self, indices) -> IndexedRows:
        """The rows ``indices`` (in that order) as a new index over the same file."""
        idx = np.asarray(indices, dtype=np.int64)
        lengths = None if self.prompt_lengths is None else self.prompt_lengths[idx]
        return dataclasses.replace(
            self, _pos=self._pos[idx], _size=self._size[idx], _record=self._record[idx], lines=self.lines[idx],
            prompt_lengths=lengths,
        )  # fmt: skip

    @property
    def nbytes(self) -> int:
        """Memory the index holds (its arrays), in bytes."""
        arrays = (self._pos, self._size, self._record, self.lines, self.prompt_lengths)
        return sum(a.nbytes for a in arrays if a is not None)


def _duplicates(hashes: np.ndarray, id_at: Callable[[int], str], line_at: Callable[[int], int]) -> dict[int, str]:
    """``{position: reason}`` of every row whose id an earlier row already has (file order)."""
    vals, counts = np.unique(hashes, return_counts=True)
    if not (counts > 1).any():
        return {}
    out, first = {}, {}
    for p in np.flatnonzero(np.isin(hashes, vals[counts > 1])):  # only colliding rows are read again
        rid = id_at(int(p))
        if rid in first:
            out[int(p)] = f"duplicate id {rid!r} (first on line {first[rid]})"
        else:
            first[rid] = line_at(int(p))
    return out


def index_rows(
    path: str | os.PathLike,
    *,
    problem_field: str = "problem",
    answer_field: str = "answer",
    id_field: str | None = "id",
    alt_answers_field: str | None = None,
    extra_fields: Sequence[str] = (),
    skip_bad_rows: bool = False,
    format: str = "auto",
    encode: Callable[[str], list[int]] | None = None,
) -> IndexedRows:
    """Validates every row of a file in one pass and indexes the usable ones (module docstring).

    Arguments as :func:`jaxrlvr.data.loading.load_rows` (same rows, same order, same errors and skipped
    rows); ``encode`` (problem -> prompt ids) gives every row its ``prompt_ids`` when read and the index its
    ``prompt_lengths``."""
    path = pathlib.Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"data file not found: {path}")
    check = _RowChecker(path, problem_field, answer_field, id_field, alt_answers_field, extra_fields)
    if _file_format(path, format) == "jsonl":
        source = _JsonlSource(path)
        records = jsonl_records(path)
    else:
        import pyarrow.parquet as pq

        names = pq.ParquetFile(path).schema_arrow.names
        table = pq.read_table(path, columns=parquet_columns(names, check.fields))
        source = _ParquetSource(table)

        def parquet_records():
            pos = 0
            for batch in table.to_batches(max_chunksize=4096):
                for rec in batch.to_pylist():
                    yield pos + 1, pos, 0, rec
                    pos += 1

        records = parquet_records()
    pos, size, record, lines, hashes = (array.array("q") for _ in range(5))
    lengths = array.array("i")
    skipped: list[tuple[int, str]] = []

    def dups(n: int | None = None) -> dict[int, str]:
        def id_at(p):
            return check.row(record[p], source.read(pos[p], size[p]))["id"]

        return _duplicates(np.frombuffer(hashes, np.int64)[:n], id_at, lambda p: lines[p])

    for index, (lineno, p, n, rec) in enumerate(records):
        row = check.row(index, rec)
        if isinstance(row, str):
            if not skip_bad_rows:
                earlier = dups()  # a duplicate id before this line is the first error, as in load_rows
                if earlier:
                    first = min(earlier)
                    raise DataError(f"{path}:{lines[first]}: {earlier[first]}")
                raise DataError(f"{path}:{lineno}: {row}")
            skipped.append((lineno, row))
            continue
        pos.append(p)
        size.append(n)
        record.append(index)
        lines.append(lineno)
        hashes.append(hash(row["id"]))
        if encode is not None:
            lengths.append(len(encode(row["problem"])))
    bad = dups()
    if bad:
        first = min(bad)
        if not skip_bad_rows:
            raise DataError(f"{path}:{lines[first]}: {bad[first]}")
        skipped = sorted(skipped + [(lines[p], reason) for p, reason in bad.items()])
    keep = np.setdiff1d(np.arange(len(pos)), np.fromiter(bad, np.int64, len(bad)), assume_unique=True)
    if not keep.size:
        raise DataError(f"{path}: no usable rows ({len(skipped)} skipped)")
    return IndexedRows(
        path=path,
        _source=source,
        _check=check,
        _pos=np.frombuffer(pos, np.int64)[keep],
        _size=np.frombuffer(size, np.int64)[keep].astype(np.int32),
        _record=np.frombuffer(record, np.int64)[keep],
        lines=np.frombuffer(lines, np.int64)[keep],
        prompt_lengths=np.frombuffer(lengths, np.int32)[keep] if encode is not None else None,
        encode=encode,
        skipped=tuple(skipped),
    )
