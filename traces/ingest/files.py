"""Read trace files from disk (JSON: one trace, a list, a REST response, OTLP; or JSON Lines) and import them."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, BinaryIO

import orjson
from django.conf import settings
from django.db import DatabaseError, transaction

from traces.models import Experiment

from .delta_table import is_delta_table
from .mlflow_json import parse_document
from .records import TraceFormatError, TraceRecord
from .store import StoreResult, store_traces

TRACE_FILE_SUFFIXES = {".json", ".jsonl", ".ndjson"}
BATCH_TRACES = 500  # traces parsed and stored at a time (JSON Lines hold this many in memory)


def expand_paths(paths: Iterable[str | Path]) -> list[Path]:
    """Files as given, and every ``.json``/``.jsonl`` file below each directory, in a stable order.

    A Delta table (a directory with a ``_delta_log``, as ``archive_traces`` writes) is one source,
    given or found below a directory: its log's JSON files are not traces.
    """
    found: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if is_delta_table(path):
            found.append(path)
        elif path.is_dir():
            tables = sorted(log.parent for log in path.rglob("_delta_log") if log.is_dir())
            files = (
                p
                for p in path.rglob("*")
                if p.is_file()
                and p.suffix.lower() in TRACE_FILE_SUFFIXES
                and not any(p.is_relative_to(table) for table in tables)
            )
            found.extend(sorted([*files, *tables]))
        else:
            found.append(path)
    return found


def parse_bytes(content: bytes) -> list[TraceRecord]:
    """Parse a whole JSON document, or JSON Lines when the content is not one document."""
    if not content.strip():
        raise TraceFormatError("the file is empty")
    try:
        document = orjson.loads(content)
    except orjson.JSONDecodeError as whole_error:
        lines = [line for line in content.splitlines() if line.strip()]
        if len(lines) < 2:
            raise TraceFormatError(f"not valid JSON ({whole_error})") from None
        records: list[TraceRecord] = []
        for number, line in enumerate(content.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                document = orjson.loads(line)
            except orjson.JSONDecodeError as exc:
                raise TraceFormatError(f"line {number}: not valid JSON ({exc})") from None
            try:
                records.extend(parse_document(document))
            except TraceFormatError as exc:
                raise TraceFormatError(f"line {number}: {exc}") from None
        return records
    return parse_document(document)


def _check_file(path: Path) -> None:
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise TraceFormatError(f"cannot read the file ({exc.strerror or exc})") from None
    if not path.is_file():
        raise TraceFormatError("not a file")
    if size > settings.MAX_IMPORT_FILE_BYTES:
        raise TraceFormatError(f"the file is {size} bytes, over the {settings.MAX_IMPORT_FILE_BYTES} byte limit")


def _line_records(number: int, document: Any) -> list[TraceRecord]:
    try:
        return parse_document(document)
    except TraceFormatError as exc:
        raise TraceFormatError(f"line {number}: {exc}") from None


def _non_blank_lines(handle: BinaryIO) -> Iterator[tuple[int, bytes]]:
    for number, line in enumerate(handle, start=1):
        if line.strip():
            yield number, line


def _records(handle: BinaryIO) -> Iterator[TraceRecord]:
    """The traces of an open file: JSON Lines one line at a time, anything else as one document.

    A file whose first non-blank line is a JSON value by itself is JSON Lines (or, if it is the
    only line, one document); otherwise the file is one document over several lines.
    """
    lines = _non_blank_lines(handle)
    first = next(lines, None)
    if first is None:
        raise TraceFormatError("the file is empty")
    try:
        document = orjson.loads(first[1])
    except orjson.JSONDecodeError:
        handle.seek(0)
        yield from parse_bytes(handle.read())
        return
    following = next(lines, None)
    if following is None:
        yield from parse_document(document)
        return
    yield from _line_records(first[0], document)
    del document, first
    for number, line in itertools.chain([following], lines):
        try:
            document = orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            raise TraceFormatError(f"line {number}: not valid JSON ({exc})") from None
        yield from _line_records(number, document)


def iter_trace_batches(path: Path, batch_size: int | None = None) -> Iterator[list[TraceRecord]]:
    """The traces of one file, ``batch_size`` at a time, or :class:`TraceFormatError` saying why not.

    JSON Lines are read and parsed line by line, so memory stays flat however long the file;
    a JSON document (one trace, a list, a REST response, OTLP) is read whole.
    """
    _check_file(path)
    batch_size = batch_size or BATCH_TRACES
    try:
        with path.open("rb") as handle:
            batch: list[TraceRecord] = []
            for record in _records(handle):
                batch.append(record)
                if len(batch) >= batch_size:
                    yield batch
                    batch = []
            if batch:
                yield batch
    except OSError as exc:
        raise TraceFormatError(f"cannot read the file ({exc.strerror or exc})") from None


def read_trace_file(path: Path) -> list[TraceRecord]:
    """Every trace in one file, or :class:`TraceFormatError` saying why the file cannot be read."""
    return [record for batch in iter_trace_batches(path) for record in batch]


def import_trace_file(
    path: Path,
    *,
    experiment: Experiment | None = None,
    batch_size: int | None = None,
    on_batch: Callable[[StoreResult], None] | None = None,
) -> StoreResult:
    """Store every trace of one file, or nothing: :class:`TraceFormatError` says why the file was refused.

    Batches are parsed and stored one after the other inside a single transaction, so memory
    stays flat for a long JSON Lines file and a bad line near its end still leaves nothing of
    the file behind (parsing the whole file first to validate it would mean parsing it twice).
    """
    try:
        with transaction.atomic():
            result = StoreResult()
            for batch in iter_trace_batches(path, batch_size or BATCH_TRACES):
                result.add(store_traces(batch, experiment=experiment))
                if on_batch is not None:
                    on_batch(result)  # progress: what this file has stored so far
    except DatabaseError as exc:
        raise TraceFormatError(f"the database refused this file ({_first_line(exc)})") from None
    return result


def _first_line(exc: Exception) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
