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
from typing import IO, Any, NamedTuple

import orjson
import pyarrow as pa
import pyarrow.json as pa_json
import pyarrow.parquet as pq
from django.db.models import Q, TextField
from django.db.models.functions import Cast

from labeling.models import ADJUDICATION_KEY, COPIED_KEY, LabelingSession, ReviewItem
from traces.models import Assessment, AssessmentKind, AssessmentSource, Span

ITEM_CHUNK = 2000
PARQUET_BATCH = 2000
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


class Answer(NamedTuple):
    kind: str
    value: Any


def latest(answers: list[Answer], final: Answer | None) -> tuple[Any, bool]:
    """The newest current answer among reviewers (answers come oldest first)."""
    return answers[-1].value, False


def majority(answers: list[Answer], final: Answer | None) -> tuple[Any, bool]:
    """The majority value among reviewers' current answers; a tie has none (second item True)."""
    counts = Counter(_key(a.value) for a in answers)
    ranked = counts.most_common()
    if len(ranked) > 1 and ranked[0][1] == ranked[1][1]:
        return None, True
    winner = ranked[0][0]
    return next(a.value for a in answers if _key(a.value) == winner), False


def adjudicated(answers: list[Answer], final: Answer | None) -> tuple[Any, bool]:
    """The lead's final answer where there is one, else the majority."""
    if final is not None:
        return final.value, False
    return majority(answers, final)


Policy = Callable[[list[Answer], Answer | None], tuple[Any, bool]]
POLICIES: dict[str, Policy] = {"latest": latest, "consensus": majority, "adjudicated": adjudicated}


# ---------------------------------------------------------------- records from sessions


def mlflow_inputs(inputs: Any) -> dict[str, Any]:
    """``mlflow.genai.evaluate`` needs a dict of inputs; wrap anything else like MLflow does."""
    return inputs if isinstance(inputs, dict) else {"inputs": inputs}


def tag_value(value: Any) -> str:
    return value if isinstance(value, str) else orjson.dumps(value).decode()


def _json_text(field: str) -> Cast:
    """Fetch a JSON column as text and decode it with orjson (several times faster than the ORM's json)."""
    return Cast(field, TextField())


def _loads(text: str | None) -> Any:
    return None if text is None else orjson.loads(text)


def _labels(trace_ids: list[int]) -> dict[int, tuple[dict[str, list[Answer]], dict[str, Answer]]]:
    """Per item trace: reviewers' current answers by question (oldest first), and the lead's final answers."""
    answers: dict[int, dict[str, list[Answer]]] = defaultdict(lambda: defaultdict(list))
    finals: dict[int, dict[str, Answer]] = defaultdict(dict)
    rows = (
        Assessment.objects.filter(trace_id__in=trace_ids, source_type=AssessmentSource.HUMAN, valid=True)
        .exclude(metadata__has_key=COPIED_KEY)
        .annotate(final=Q(metadata__has_key=ADJUDICATION_KEY), value_text=_json_text("value"))
        .order_by("create_time", "id")
        .values_list("trace_id", "name", "kind", "value_text", "final")
    )
    for trace_id, name, kind, value, final in rows.iterator(chunk_size=5000):
        answer = Answer(kind, _loads(value))
        if final:
            finals[trace_id][name] = answer
        else:
            answers[trace_id][name].append(answer)
    return {t: (answers.get(t, {}), finals.get(t, {})) for t in trace_ids}


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
    items = (
        ReviewItem.objects.filter(session__in=sessions)
        .order_by("session_id", "position")
        .values_list("trace_id", "source_trace_id_text", "session__name")
    )
    chunk: list[tuple[int, str, str]] = []
    for item in items.iterator(chunk_size=ITEM_CHUNK):
        chunk.append(item)
        if len(chunk) >= ITEM_CHUNK:
            yield from _records_for(chunk, choose, include_feedback, stats, on_item)
            chunk = []
    if chunk:
        yield from _records_for(chunk, choose, include_feedback, stats, on_item)


def _root_io(trace_ids: list[int]) -> dict[int, tuple[Any, Any]]:
    spans = (
        Span.objects.filter(trace_id__in=trace_ids, parent_id="")
        .annotate(inputs_text=_json_text("inputs"), outputs_text=_json_text("outputs"))
        .values_list("trace_id", "start_time_ns", "inputs_text", "outputs_text")
    )
    roots: dict[int, tuple[int, str | None, str | None]] = {}
    for trace_id, start, inputs, outputs in spans:
        if trace_id not in roots or start < roots[trace_id][0]:
            roots[trace_id] = (start, inputs, outputs)
    return {trace_id: (_loads(i), _loads(o)) for trace_id, (_, i, o) in roots.items()}


def _records_for(
    items: list[tuple[int, str, str]],
    choose: Policy,
    include_feedback: bool,
    stats: ExportStats,
    on_item: Callable[[], None] | None,
) -> Iterator[dict[str, Any]]:
    trace_ids = [trace_id for trace_id, _, _ in items]
    io_by_trace = _root_io(trace_ids)
    labels = _labels(trace_ids)
    for trace_id, source_trace_id, session_name in items:
        if on_item:
            on_item()
        by_name, finals = labels[trace_id]
        expectations: dict[str, Any] = {}
        tags: dict[str, str] = {"labeling_session": session_name}
        for name in sorted(set(by_name) | set(finals)):
            answers = by_name.get(name, [])
            final = finals.get(name)
            kind = (answers[0] if answers else final).kind  # type: ignore[union-attr]
            if kind != AssessmentKind.EXPECTATION and not include_feedback:
                continue
            value, tie = choose(answers, final) if answers else (final.value, False)  # type: ignore[union-attr]
            if tie:
                stats.ties.append(f"{source_trace_id} / {name}")
                continue
            if kind == AssessmentKind.EXPECTATION:
                expectations[name] = value
            else:
                tags[f"feedback.{name}"] = tag_value(value)
        if not expectations and len(tags) == 1:
            continue  # nothing labeled on this item
        inputs, outputs = io_by_trace.get(trace_id, (None, None))
        stats.records += 1
        stats.expectations += len(expectations)
        yield {
            "inputs": mlflow_inputs(inputs),
            "outputs": outputs,
            "expectations": expectations,
            "tags": tags,
            "source": {"source_type": "TRACE", "source_data": {"trace_id": source_trace_id}},
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


def _batch_schema(batch: list[dict[str, Any]], schema: pa.Schema | None) -> pa.Schema | None:
    found = pa.Table.from_pylist(batch).schema
    return found if schema is None else pa.unify_schemas([schema, found], promote_options="permissive")


JSON_SCHEMA = pa.schema([(c, pa.string()) for c in COLUMNS])


def write_parquet(make_records: Callable[[], Iterable[dict[str, Any]]], out: IO[bytes]) -> str:
    """Nested columns as Parquet structs (``pd.read_parquet`` gives dicts back); JSON text if types clash.

    The records are read once: spooled to a temporary JSONL file while the schema that fits every
    batch is worked out, then written from the spool in batches, so memory stays flat.
    """
    schema: pa.Schema | None = None
    clash = False
    with tempfile.TemporaryFile() as spool:
        for batch in _batches(make_records()):
            spool.write(b"".join(jsonl_line(r) for r in batch))
            if not clash:
                try:
                    schema = _batch_schema(batch, schema)
                except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
                    clash = True
        if schema is not None and any(pa.types.is_struct(f.type) and f.type.num_fields == 0 for f in schema):
            clash = True  # Parquet cannot store an empty struct
        layout = "json" if clash or schema is None else "struct"
        spool.flush()
        spool.seek(0)
        writer = pq.ParquetWriter(out, JSON_SCHEMA if layout == "json" else schema)
        try:
            if layout == "struct":
                # Arrow's own JSON reader parses the spool in blocks against the schema (fast, bounded memory).
                options = pa_json.ParseOptions(explicit_schema=schema, unexpected_field_behavior="ignore")
                reader = pa_json.open_json(
                    spool, read_options=pa_json.ReadOptions(block_size=2 << 20), parse_options=options
                )
                for record_batch in reader:
                    writer.write_batch(record_batch)
            else:
                for batch in _batches(orjson.loads(line) for line in spool):
                    rows = [{c: orjson.dumps(r[c]).decode() for c in COLUMNS} for r in batch]
                    writer.write_table(pa.Table.from_pylist(rows, schema=JSON_SCHEMA))
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
