"""Build evaluation records from labeling sessions, streaming; write them as JSONL or CSV (Parquet: parquet.py).

A record is ``{"inputs", "outputs", "expectations", "tags", "source"}`` with inputs and outputs
picked by the same rule as the trace page's conversation (``traces.conversation``: the root span's,
as MLflow does, or the outermost span that recorded them when the root is a bare wrapper), so the
file goes as-is to ``mlflow.genai.evaluate``.
"""

from __future__ import annotations

import csv
import io
import os
import stat
import tempfile
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, NamedTuple

import orjson
from django.db.models import Count, Q, QuerySet, TextField
from django.db.models.functions import Cast

from labeling.copies import on_session_copies
from labeling.models import ADJUDICATION_KEY, COPIED_KEY, LabelingSession, ReviewItem
from traces.conversation import conversation_io
from traces.models import Assessment, AssessmentKind, AssessmentSource

ITEM_CHUNK = 2000
COLUMNS = ["inputs", "outputs", "expectations", "tags", "source"]


class ExportError(Exception):
    """Something the user asked for cannot be exported; the message says what."""


@dataclass
class ExportStats:
    records: int = 0
    expectations: int = 0
    feedback_only: int = 0  # records with feedback tags and no expectation
    ties: list[str] = field(default_factory=list)

    def reset(self) -> None:
        """Records are made again for each destination (a stored dataset, then a file)."""
        self.records = self.expectations = self.feedback_only = 0
        self.ties = []


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

# Which items become records; the export command's help and the save-as-dataset form show it as is.
INCLUSION_RULE = (
    "One record per item with at least one expectation answer (expected response, facts, guidelines…). "
    "With feedback added as tags, items that have only feedback answers are included too. "
    "Items nobody answered, and answers left out as ties, add nothing."
)


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


def _records_for(
    items: list[tuple[int, str, str]],
    choose: Policy,
    include_feedback: bool,
    stats: ExportStats,
    on_item: Callable[[], None] | None,
) -> Iterator[dict[str, Any]]:
    trace_ids = [trace_id for trace_id, _, _ in items]
    io_by_trace = conversation_io(trace_ids)
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
            continue  # INCLUSION_RULE: no expectation, and no feedback tag (or feedback not asked for)
        io = io_by_trace.get(trace_id)
        inputs, outputs = (io.inputs, io.outputs) if io is not None else (None, None)
        stats.records += 1
        stats.expectations += len(expectations)
        stats.feedback_only += not expectations
        yield {
            "inputs": mlflow_inputs(inputs),
            "outputs": outputs,
            "expectations": expectations,
            "tags": tags,
            "source": {"source_type": "TRACE", "source_data": {"trace_id": source_trace_id}},
        }


def count_items(sessions: list[LabelingSession]) -> int:
    return ReviewItem.objects.filter(session__in=sessions).count()


def _human_answers(sessions: list[LabelingSession]) -> QuerySet[Assessment]:
    return Assessment.objects.filter(
        on_session_copies(sessions), source_type=AssessmentSource.HUMAN, valid=True
    ).exclude(metadata__has_key=COPIED_KEY)


def nothing_to_export(sessions: list[LabelingSession], *, include_feedback: bool) -> str:
    """Why INCLUSION_RULE takes no item ("" when it takes some), to follow "has"; at most two EXISTS queries."""
    answers = _human_answers(sessions)
    if include_feedback:
        return "" if answers.exists() else "no answers yet"
    if answers.filter(kind=AssessmentKind.EXPECTATION).exists():
        return ""
    return "no expectation labels, only feedback answers" if answers.exists() else "no expectation labels yet"


@dataclass(frozen=True)
class LabeledCounts:
    """Items with at least one expectation answer, and with any answer, before a policy drops ties."""

    with_expectations: int
    with_answers: int


def labeled_counts(sessions: list[LabelingSession]) -> LabeledCounts:
    """One query: how many items INCLUSION_RULE takes without and with feedback (under the latest answer)."""
    counts = _human_answers(sessions).aggregate(
        with_expectations=Count("trace_id", distinct=True, filter=Q(kind=AssessmentKind.EXPECTATION)),
        with_answers=Count("trace_id", distinct=True),
    )
    return LabeledCounts(counts["with_expectations"], counts["with_answers"])


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


NOT_REGULAR = {
    stat.S_IFDIR: "a directory",
    stat.S_IFIFO: "a FIFO",
    stat.S_IFCHR: "a character device",
    stat.S_IFBLK: "a block device",
    stat.S_IFSOCK: "a socket",
}


def output_target(path: Path) -> Path:
    """Where writing ``path`` lands (through a symlink, as ``open`` would); refuse what is not a regular file."""
    target = Path(os.path.realpath(path))
    try:
        mode = target.stat().st_mode
    except FileNotFoundError:
        return target
    except OSError as exc:
        raise ExportError(f"cannot write {path}: {exc.strerror or exc}") from None
    if not stat.S_ISREG(mode):
        kind = NOT_REGULAR.get(stat.S_IFMT(mode), "not a regular file")
        raise ExportError(f"{path} is {kind}, not a regular file: give a file path (nothing was written)")
    return target


def _new_file_mode(target: Path) -> int:
    """An existing file keeps its permissions; a new one gets 0666 minus the umask, like ``open``."""
    try:
        return stat.S_IMODE(target.stat().st_mode)
    except FileNotFoundError:
        umask = os.umask(0)
        os.umask(umask)
        return 0o666 & ~umask


def write_atomically(path: Path, write: Callable[[IO[bytes]], Any]) -> Any:
    """Write to a temp file beside ``path`` and rename it: a failure never leaves a partial file.

    ``path`` must be a regular file or not exist yet: a directory, FIFO or device (or a symlink to
    one) is refused before anything is written.
    """
    target = output_target(path)
    try:
        handle, temp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".partial")
    except OSError as exc:
        raise ExportError(f"cannot write {path}: {exc.strerror or exc}") from None
    try:
        os.fchmod(handle, _new_file_mode(target))
        with os.fdopen(handle, "wb") as out:
            result = write(out)
        output_target(path)  # still not replaced by a directory or FIFO while we wrote
        os.replace(temp, target)
    except OSError as exc:
        Path(temp).unlink(missing_ok=True)
        raise ExportError(f"cannot write {path}: {exc.strerror or exc}") from None
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
    return result
