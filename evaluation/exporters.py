"""Build evaluation records from labeling sessions, streaming; write them as JSONL, CSV or Parquet.

A record is ``{"inputs", "outputs", "expectations", "tags", "source"}`` with inputs and outputs
from the trace's root span, as MLflow does, so the file goes as-is to ``mlflow.genai.evaluate``.
"""

from __future__ import annotations

import csv
import io
import os
import tempfile
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import orjson
import pyarrow as pa
import pyarrow.parquet as pq

from labeling.models import LabelingSession, ReviewItem
from labeling.workflow import ADJUDICATION_KEY, COPIED_KEY
from traces.models import Assessment, AssessmentKind, AssessmentSource, Span

ITEM_CHUNK = 500
PARQUET_BATCH = 5000
COLUMNS = ["inputs", "outputs", "expectations", "tags", "source"]


class ExportError(Exception):
    """Something the user asked for cannot be exported; the message says what."""


@dataclass
class ExportStats:
    records: int = 0
    expectations: int = 0
    ties: list[str] = field(default_factory=list)


# ---------------------------------------------------------------- policies


def _key(value: Any) -> bytes:
    if isinstance(value, list):
        value = sorted(map(str, value))
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)


def latest(answers: list[Assessment], final: Assessment | None) -> tuple[Any, bool]:
    """The newest current answer among reviewers."""
    return max(answers, key=lambda a: (a.create_time, a.pk)).value, False


def majority(answers: list[Assessment], final: Assessment | None) -> tuple[Any, bool]:
    """The majority value among reviewers' current answers; a tie has none (second item True)."""
    counts = Counter(_key(a.value) for a in answers)
    ranked = counts.most_common()
    if len(ranked) > 1 and ranked[0][1] == ranked[1][1]:
        return None, True
    winner = ranked[0][0]
    return next(a.value for a in answers if _key(a.value) == winner), False


def adjudicated(answers: list[Assessment], final: Assessment | None) -> tuple[Any, bool]:
    """The lead's final answer where there is one, else the majority."""
    if final is not None:
        return final.value, False
    return majority(answers, final)


POLICIES: dict[str, Callable[[list[Assessment], Assessment | None], tuple[Any, bool]]] = {
    "latest": latest,
    "consensus": majority,
    "adjudicated": adjudicated,
}


# ---------------------------------------------------------------- records from sessions


def root_io(spans: Iterable[dict[str, Any]]) -> dict[int, tuple[Any, Any]]:
    """Inputs and outputs of each trace's root span (the earliest span without a parent)."""
    roots: dict[int, dict[str, Any]] = {}
    for span in spans:
        current = roots.get(span["trace_id"])
        if current is None or span["start_time_ns"] < current["start_time_ns"]:
            roots[span["trace_id"]] = span
    return {trace: (span["inputs"], span["outputs"]) for trace, span in roots.items()}


def mlflow_inputs(inputs: Any) -> dict[str, Any]:
    """``mlflow.genai.evaluate`` needs a dict of inputs; wrap anything else like MLflow does."""
    return inputs if isinstance(inputs, dict) else {"inputs": inputs}


def tag_value(value: Any) -> str:
    return value if isinstance(value, str) else orjson.dumps(value).decode()


def _labels(items: list[ReviewItem]) -> dict[int, tuple[dict[str, list[Assessment]], dict[str, Assessment]]]:
    """Per item trace: reviewers' current answers by question, and the lead's final answers."""
    answers: dict[int, dict[str, list[Assessment]]] = defaultdict(lambda: defaultdict(list))
    finals: dict[int, dict[str, Assessment]] = defaultdict(dict)
    rows = (
        Assessment.objects.filter(
            trace_id__in=[i.trace_id for i in items], source_type=AssessmentSource.HUMAN, valid=True
        )
        .exclude(metadata__has_key=COPIED_KEY)
        .only("trace_id", "name", "kind", "value", "create_time", "metadata", "source_id")
    )
    for assessment in rows:
        if assessment.metadata.get(ADJUDICATION_KEY):
            finals[assessment.trace_id][assessment.name] = assessment
        else:
            answers[assessment.trace_id][assessment.name].append(assessment)
    return {i.trace_id: (answers.get(i.trace_id, {}), finals.get(i.trace_id, {})) for i in items}


def session_records(
    sessions: list[LabelingSession],
    *,
    policy: str,
    include_feedback: bool,
    stats: ExportStats,
    on_item: Callable[[], None] | None = None,
) -> Iterator[dict[str, Any]]:
    """One record per labeled item, streamed in chunks so memory stays flat."""
    choose = POLICIES[policy]
    items = ReviewItem.objects.filter(session__in=sessions).select_related("session").order_by("session_id", "position")
    chunk: list[ReviewItem] = []
    for item in items.iterator(chunk_size=ITEM_CHUNK):
        chunk.append(item)
        if len(chunk) >= ITEM_CHUNK:
            yield from _records_for(chunk, choose, include_feedback, stats, on_item)
            chunk = []
    if chunk:
        yield from _records_for(chunk, choose, include_feedback, stats, on_item)


def _records_for(
    items: list[ReviewItem],
    choose: Callable[[list[Assessment], Assessment | None], tuple[Any, bool]],
    include_feedback: bool,
    stats: ExportStats,
    on_item: Callable[[], None] | None,
) -> Iterator[dict[str, Any]]:
    spans = Span.objects.filter(trace_id__in=[i.trace_id for i in items], parent_id="").values(
        "trace_id", "start_time_ns", "inputs", "outputs"
    )
    io_by_trace = root_io(spans)
    labels = _labels(items)
    for item in items:
        if on_item:
            on_item()
        by_name, finals = labels[item.trace_id]
        expectations: dict[str, Any] = {}
        tags: dict[str, str] = {"labeling_session": item.session.name}
        for name in sorted(set(by_name) | set(finals)):
            answers = by_name.get(name, [])
            kind = (answers or [finals.get(name)])[0].kind
            if kind != AssessmentKind.EXPECTATION and not include_feedback:
                continue
            value, tie = choose(answers, finals.get(name)) if answers or finals.get(name) else (None, True)
            if tie:
                stats.ties.append(f"{item.source_trace_id_text} / {name}")
                continue
            if kind == AssessmentKind.EXPECTATION:
                expectations[name] = value
            else:
                tags[f"feedback.{name}"] = tag_value(value)
        if not expectations and len(tags) == 1:
            continue  # nothing labeled on this item
        inputs, outputs = io_by_trace.get(item.trace_id, (None, None))
        stats.records += 1
        stats.expectations += len(expectations)
        yield {
            "inputs": mlflow_inputs(inputs),
            "outputs": outputs,
            "expectations": expectations,
            "tags": tags,
            "source": {"source_type": "TRACE", "source_data": {"trace_id": item.source_trace_id_text}},
        }


def count_items(sessions: list[LabelingSession]) -> int:
    return ReviewItem.objects.filter(session__in=sessions).count()


def has_expectations(sessions: list[LabelingSession]) -> bool:
    return (
        Assessment.objects.filter(
            trace__review_item__session__in=sessions,
            source_type=AssessmentSource.HUMAN,
            kind=AssessmentKind.EXPECTATION,
            valid=True,
        )
        .exclude(metadata__has_key=COPIED_KEY)
        .exists()
    )


# ---------------------------------------------------------------- writers


def jsonl_line(record: dict[str, Any]) -> bytes:
    return orjson.dumps(record, option=orjson.OPT_NON_STR_KEYS) + b"\n"


def csv_line(values: list[str]) -> bytes:
    text = io.StringIO()
    csv.writer(text).writerow(values)
    return text.getvalue().encode()


def csv_header() -> bytes:
    return csv_line(COLUMNS)


def csv_record(record: dict[str, Any]) -> bytes:
    """Dict columns JSON-encoded; read back with ``df[c].map(json.loads)``."""
    return csv_line([orjson.dumps(record[c], option=orjson.OPT_NON_STR_KEYS).decode() for c in COLUMNS])


def lines(fmt: str, records: Iterable[dict[str, Any]]) -> Iterator[bytes]:
    """JSONL or CSV, one encoded line at a time (for files and streaming responses alike)."""
    if fmt == "csv":
        yield csv_header()
        yield from (csv_record(r) for r in records)
    else:
        yield from (jsonl_line(r) for r in records)


def write_lines(fmt: str, records: Iterable[dict[str, Any]], out: IO[bytes]) -> None:
    for line in lines(fmt, records):
        out.write(line)


def _batches(records: Iterable[dict[str, Any]], size: int = PARQUET_BATCH) -> Iterator[list[dict[str, Any]]]:
    batch: list[dict[str, Any]] = []
    for record in records:
        batch.append(record)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def parquet_schema(make_records: Callable[[], Iterable[dict[str, Any]]]) -> pa.Schema | None:
    """A first streaming pass: the one schema every batch fits, or None if the types clash."""
    schema: pa.Schema | None = None
    try:
        for batch in _batches(make_records()):
            found = pa.Table.from_pylist(batch).schema
            schema = found if schema is None else pa.unify_schemas([schema, found], promote_options="permissive")
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
        return None
    if schema is not None and any(pa.types.is_struct(f.type) and f.type.num_fields == 0 for f in schema):
        return None  # Parquet cannot store an empty struct
    return schema


JSON_SCHEMA = pa.schema([(c, pa.string()) for c in COLUMNS])


def write_parquet(make_records: Callable[[], Iterable[dict[str, Any]]], out: IO[bytes]) -> str:
    """Nested columns as Parquet structs (``pd.read_parquet`` gives dicts back); JSON text if types clash.

    ``make_records`` is called twice: once to find the schema, once to write.
    """
    schema = parquet_schema(make_records)
    layout = "struct" if schema is not None else "json"
    writer = pq.ParquetWriter(out, schema if schema is not None else JSON_SCHEMA)
    try:
        for batch in _batches(make_records()):
            if schema is not None:
                table = pa.Table.from_pylist(batch, schema=schema)
            else:
                rows = [{c: orjson.dumps(r[c]).decode() for c in COLUMNS} for r in batch]
                table = pa.Table.from_pylist(rows, schema=JSON_SCHEMA)
            writer.write_table(table)
    finally:
        writer.close()
    return layout


def write_atomically(path: Path, write: Callable[[IO[bytes]], Any]) -> Any:
    """Write to a temp file beside ``path`` and rename it: a failure never leaves a partial file."""
    directory = path.parent if str(path.parent) else Path(".")
    try:
        handle, temp = tempfile.mkstemp(dir=directory, prefix=f".{path.name}.", suffix=".partial")
    except OSError as exc:
        raise ExportError(f"cannot write {path}: {exc.strerror or exc}") from None
    try:
        with os.fdopen(handle, "wb") as out:
            result = write(out)
        os.replace(temp, path)
    except OSError as exc:
        Path(temp).unlink(missing_ok=True)
        raise ExportError(f"cannot write {path}: {exc.strerror or exc}") from None
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
    return result
