"""Evaluation records as Parquet: each column typed on its own, so pandas gives dicts back.

``pandas.read_parquet`` turns a struct column into dicts, which is what ``mlflow.genai.evaluate``
needs for ``inputs`` and ``expectations``. Each column's type is worked out over every record
(struct fields are merged by name, ints widen to floats); only a column whose values cannot share
one type (a chat-completion object in one record's outputs, a plain string in another's) is
written as text instead, and the caller is told which.

Everything runs on the calling thread: records become Arrow arrays with pyarrow's builders, are
spooled in Arrow's IPC format and cast to the final types. Issue 9 item 1: the old pyarrow JSON
reader read the spool (a Python file object) ahead on Arrow's thread pool, so a pool thread
could drop the last reference to a block wrapping Python bytes (``arrow::py::PyBuffer``) while
the interpreter was exiting; taking the GIL then ends the thread with ``pthread_exit``, whose
unwinding through Arrow's C++ frames calls ``std::terminate`` ("terminate called without an
active exception", exit 134). Here no pyarrow reader runs and no Arrow buffer wraps Python memory.
"""

from __future__ import annotations

import tempfile
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import IO, Any

import orjson
import pyarrow as pa
import pyarrow.ipc
import pyarrow.parquet as pq

from .exporters import COLUMNS, jsonl_line

BATCH = 2000
TYPE_ERRORS = (pa.ArrowException, OverflowError, TypeError, ValueError)
KEYED_COLUMNS = ("inputs", "expectations")  # dicts whose keys vary by record


@dataclass
class ParquetLayout:
    """How the records were written: the schema, and what a reader should know about it."""

    schema: pa.Schema
    text_columns: list[str] = field(default_factory=list)  # values do not share one type: written as text
    dropped_empty: list[str] = field(default_factory=list)  # paths of {} values Parquet cannot store
    sparse_keys: dict[str, list[str]] = field(default_factory=dict)  # keys some records lack (read back None)

    def warnings(self) -> list[str]:
        return [
            f"Parquet column “{name}” mixes types across records (for example an object in one record "
            "and text in another), so it is written as text: strings as they are, other values as JSON"
            for name in self.text_columns
        ]

    def notes(self) -> list[str]:
        notes = []
        if self.dropped_empty:
            notes.append(f"Parquet cannot store empty objects; left out: {', '.join(self.dropped_empty)}")
        for column, keys in self.sparse_keys.items():
            consequence = (
                "mlflow.genai.evaluate refuses a None expectation, so drop None values after reading (or use JSONL)"
                if column == "expectations"
                else "a predict_fn would get them as None arguments"
            )
            notes.append(
                f"some records lack {column} {', '.join(keys)}: pandas.read_parquet gives None for them; {consequence}"
            )
        return notes


class _ColumnTypes:
    """Folds each batch into one Arrow type per column; a column whose values clash becomes text."""

    def __init__(self, columns: Sequence[str] = COLUMNS, keyed_columns: Sequence[str] = KEYED_COLUMNS) -> None:
        self.columns = list(columns)
        self.types: dict[str, pa.DataType] = {c: pa.null() for c in self.columns}
        self.clashing: set[str] = set()
        self.records = 0
        self.keys: dict[str, Counter[str]] = {c: Counter() for c in keyed_columns}

    def add(self, batch: list[dict[str, Any]]) -> pa.Table:
        """The batch as Arrow columns of their own inferred types (nulls for a column that clashes)."""
        self.records += len(batch)
        for column in self.keys:
            for record in batch:
                if isinstance(record[column], dict):
                    self.keys[column].update(record[column].keys())
        arrays = {}
        for column in self.columns:
            array = None if column in self.clashing else self._fold(column, [record[column] for record in batch])
            arrays[column] = pa.nulls(len(batch)) if array is None else array
        return pa.table(arrays)

    def _fold(self, column: str, values: list[Any]) -> pa.Array | None:
        try:
            array = pa.array(values)
            merged = pa.unify_schemas(
                [pa.schema([(column, self.types[column])]), pa.schema([(column, array.type)])],
                promote_options="permissive",
            )
        except TYPE_ERRORS:
            self.clashing.add(column)
            return None
        self.types[column] = merged.field(column).type
        return array

    def layout(self) -> ParquetLayout:
        fields: list[pa.Field] = []
        dropped: list[str] = []
        for column in self.columns:
            if column in self.clashing:
                fields.append(pa.field(column, pa.string()))
            else:
                storable = _storable(self.types[column], column, dropped)
                if storable is None and dropped and dropped[-1] == column:
                    dropped.pop()  # every value was {} or None: a column of nulls, nothing to note
                fields.append(pa.field(column, storable or pa.null()))
        sparse = {
            column: sorted(key for key, seen in counts.items() if seen < self.records)
            for column, counts in self.keys.items()
            if column not in self.clashing and any(seen < self.records for seen in counts.values())
        }
        return ParquetLayout(pa.schema(fields), sorted(self.clashing, key=self.columns.index), dropped, sparse)


def _storable(kind: pa.DataType, path: str, dropped: list[str]) -> pa.DataType | None:
    """``kind`` without the empty structs Parquet cannot store (None when nothing is left).

    Casting a batch to the pruned type leaves those ``{}`` values out (a struct cast drops the
    fields the target does not name).
    """
    if pa.types.is_struct(kind):
        children = []
        for child in kind:
            storable = _storable(child.type, f"{path}.{child.name}", dropped)
            if storable is not None:
                children.append(pa.field(child.name, storable))
        if not children:
            dropped.append(path)
            return None
        return pa.struct(children)
    if pa.types.is_list(kind) or pa.types.is_large_list(kind):
        item = _storable(kind.value_type, f"{path}[]", dropped)
        return None if item is None else pa.list_(item)
    return kind


def _text(value: Any) -> str | None:
    if value is None or isinstance(value, str):
        return value
    return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()


def _conform(table: pa.Table, rows: list[dict[str, Any]], layout: ParquetLayout) -> pa.Table:
    """A spooled batch in the final schema: typed columns cast (fields added, widened, pruned), text from rows."""
    columns = []
    for column in layout.schema:
        if column.name in layout.text_columns:
            columns.append(pa.array([_text(row[column.name]) for row in rows], type=pa.string()))
        elif pa.types.is_null(column.type):
            columns.append(pa.nulls(table.num_rows))  # every value was {} or None
        else:
            columns.append(table[column.name].cast(column.type))
    return pa.Table.from_arrays(columns, schema=layout.schema)


def _batches(records: Iterable[dict[str, Any]], size: int) -> Iterator[list[dict[str, Any]]]:
    batch: list[dict[str, Any]] = []
    for record in records:
        batch.append(record)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def _spool_table(spool: IO[bytes], table: pa.Table) -> None:
    """One Arrow IPC stream per batch (each has its own types), length-prefixed."""
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    data = sink.getvalue()
    spool.write(data.size.to_bytes(8, "little"))
    spool.write(memoryview(data))


def _spooled_tables(spool: IO[bytes]) -> Iterator[pa.Table]:
    while header := spool.read(8):
        # Read into Arrow-owned memory, not a Python bytes object: no Arrow buffer ever needs the
        # GIL to be freed (an Arrow thread freeing one during interpreter exit aborts the process).
        data = pa.allocate_buffer(int.from_bytes(header, "little"))
        spool.readinto(memoryview(data))
        yield pa.ipc.open_stream(data).read_all()


def write_parquet(
    make_records: Callable[[], Iterable[dict[str, Any]]],
    out: IO[bytes],
    *,
    columns: Sequence[str] = COLUMNS,
    keyed_columns: Sequence[str] = KEYED_COLUMNS,
) -> ParquetLayout:
    """Write the records to ``out``; memory stays flat however many there are.

    ``columns`` are the records' keys in file order (an evaluation dataset's by default);
    ``keyed_columns`` those whose dict keys vary by record, reported in ``ParquetLayout.sparse_keys``.

    The records are read once. Each batch is spooled as Arrow columns while every column's type
    is worked out, then cast to those types and written. The records are spooled as JSON lines
    too, for a column that ends up as text.
    """
    types = _ColumnTypes(columns, keyed_columns)
    with tempfile.TemporaryFile() as arrow_spool, tempfile.TemporaryFile() as json_spool:
        for batch in _batches(make_records(), BATCH):
            json_spool.write(b"".join(jsonl_line(r) for r in batch))
            _spool_table(arrow_spool, types.add(batch))
        layout = types.layout()
        arrow_spool.seek(0)
        json_spool.seek(0)
        with pq.ParquetWriter(out, layout.schema) as writer:
            for table in _spooled_tables(arrow_spool):
                lines = (json_spool.readline() for _ in range(table.num_rows if layout.text_columns else 0))
                writer.write_table(_conform(table, [orjson.loads(line) for line in lines], layout))
    return layout
