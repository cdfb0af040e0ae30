"""Read trace files from disk: JSON (one trace, a list, a REST response, OTLP) or JSONL."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import orjson
from django.conf import settings

from .mlflow_json import parse_document
from .records import TraceFormatError, TraceRecord

TRACE_FILE_SUFFIXES = {".json", ".jsonl", ".ndjson"}


def expand_paths(paths: Iterable[str | Path]) -> list[Path]:
    """Files as given, and every ``.json``/``.jsonl`` file below each directory, in a stable order."""
    found: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            found.extend(sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in TRACE_FILE_SUFFIXES))
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


def read_trace_file(path: Path) -> list[TraceRecord]:
    """Every trace in one file, or :class:`TraceFormatError` saying why the file cannot be read."""
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise TraceFormatError(f"cannot read the file ({exc.strerror or exc})") from None
    if not path.is_file():
        raise TraceFormatError("not a file")
    if size > settings.MAX_IMPORT_FILE_BYTES:
        raise TraceFormatError(f"the file is {size} bytes, over the {settings.MAX_IMPORT_FILE_BYTES} byte limit")
    try:
        content = path.read_bytes()
    except OSError as exc:
        raise TraceFormatError(f"cannot read the file ({exc.strerror or exc})") from None
    return parse_bytes(content)
