"""Which span holds a trace's conversation: one rule for the trace page, the review screen, export and scorers.

MLflow reads a trace's request and response from its root span. Applications often wrap
themselves in a span that records nothing (``with mlflow.start_span("handle_request"):``), and
then the chat and the answer live in a child. The rule:

* the **request** is the inputs of the outermost span that recorded inputs, the **response** the
  outputs of the outermost span that recorded outputs. "Outermost" counts parents: the root
  first, then its children, and so on; among spans equally deep the request takes the first to
  start and the response the last to end (a pipeline's first step gets the question, its last
  step gives the answer);
* the root counts whatever its type (a root that recorded both is the source, as in MLflow).
  Below it, steps that are not the conversation (retrievers, tools, embeddings, rerankers,
  parsers) are passed over while any other span recorded a value, so a wrapper around a
  retriever and a chat model gives the chat model's messages;
* "recorded" means anything but null, ``""``, ``{}`` and ``[]``;
* spans whose parent is missing hang below the root (they are roots only in a trace without one).

The rule works on light rows (:class:`SpanRow`: ids, times, type and whether inputs/outputs are
present), so callers fetch those for many traces in one query and load values only for the
spans it picks; :func:`conversation_io` does that for a batch of traces in at most three queries.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from django.db.models import BooleanField, Case, Expression, F, Func, Q, TextField, Value, When
from django.db.models.functions import Cast

STEP_TYPES = frozenset({"RETRIEVER", "TOOL", "EMBEDDING", "RERANKER", "PARSER"})
EMPTY_JSON = ("{}", "[]", '""', "null")


def has_value(value: Any) -> bool:
    """Whether a span recorded something: anything but None, "", {} and []."""
    return value is not None and value != "" and value != {} and value != []


@dataclass(frozen=True, slots=True)
class SpanRow:
    """What the rule needs to know about one span; ``pk`` is the database id when there is one."""

    span_id: str
    parent_id: str
    start_time_ns: int
    end_time_ns: int | None
    span_type: str
    has_inputs: bool
    has_outputs: bool
    name: str = ""
    pk: int | None = None

    @classmethod
    def of(cls, span: Any) -> SpanRow:
        """From a ``Span`` (annotated by :func:`with_presence`, or with its values loaded)."""
        has_inputs = getattr(span, "has_inputs", None)
        has_outputs = getattr(span, "has_outputs", None)
        return cls(
            span_id=span.span_id,
            parent_id=span.parent_id or "",
            start_time_ns=span.start_time_ns,
            end_time_ns=span.end_time_ns,
            span_type=span.span_type,
            has_inputs=has_value(span.inputs) if has_inputs is None else bool(has_inputs),
            has_outputs=has_value(span.outputs) if has_outputs is None else bool(has_outputs),
            name=span.name,
            pk=span.pk,
        )


@dataclass(frozen=True, slots=True)
class ConversationSpans:
    """The spans that supply a trace's request and response (None: nothing recorded one)."""

    root: SpanRow | None
    request: SpanRow | None
    response: SpanRow | None

    @property
    def from_root(self) -> bool:
        """True when the root supplies both sides (or nothing does): MLflow's own reading."""
        picked = {s.span_id for s in (self.request, self.response) if s is not None}
        return not picked or (self.root is not None and picked == {self.root.span_id})

    @property
    def same_span(self) -> bool:
        """One span supplies both sides (or one side is missing)."""
        return self.request is None or self.response is None or self.request.span_id == self.response.span_id


def _depths(rows: Sequence[SpanRow]) -> dict[str, int]:
    """Parents above each span reachable from the root(s); spans in a parent cycle are left out."""
    ids = {r.span_id for r in rows}
    children: dict[str, list[SpanRow]] = defaultdict(list)
    for row in rows:
        if row.parent_id in ids:
            children[row.parent_id].append(row)
    roots = [r for r in rows if not r.parent_id]
    orphans = [r for r in rows if r.parent_id and r.parent_id not in ids]
    if not roots:
        roots, orphans = orphans, []
    depth: dict[str, int] = {}
    level, current = roots, 0
    while level:
        for row in level:
            depth.setdefault(row.span_id, current)
        following = [c for r in level for c in children.get(r.span_id, []) if c.span_id not in depth]
        if current == 0:
            following += [o for o in orphans if o.span_id not in depth]
        level, current = following, current + 1
    return depth


def _pick(ordered: list[SpanRow], present: str) -> SpanRow | None:
    candidates = [r for r in ordered if getattr(r, present)]
    if not candidates:
        return None
    if not candidates[0].parent_id:
        return candidates[0]  # the root recorded it
    conversational = [r for r in candidates if r.span_type not in STEP_TYPES]
    return (conversational or candidates)[0]


def conversation_spans(rows: Iterable[SpanRow]) -> ConversationSpans:
    """Which span supplies the request and which the response, by the rule above (no queries)."""
    spans = list(rows)
    roots = [r for r in spans if not r.parent_id]
    if len(roots) == 1 and roots[0].has_inputs and roots[0].has_outputs:
        return ConversationSpans(root=roots[0], request=roots[0], response=roots[0])  # the usual trace
    depth = _depths(spans)
    reachable = [(i, r) for i, r in enumerate(spans) if r.span_id in depth]
    if not reachable:
        return ConversationSpans(root=None, request=None, response=None)
    first = sorted(reachable, key=lambda ir: (depth[ir[1].span_id], ir[1].start_time_ns, ir[0]))
    last = sorted(
        reachable,
        key=lambda ir: (depth[ir[1].span_id], -(ir[1].end_time_ns or ir[1].start_time_ns), ir[0]),
    )
    return ConversationSpans(
        root=first[0][1],
        request=_pick([r for _, r in first], "has_inputs"),
        response=_pick([r for _, r in last], "has_outputs"),
    )


# ---------------------------------------------------------------- in the database


class _RecordedJson(Func):
    """SQL: the JSON column holds something other than NULL, null, "", {} and [].

    On PostgreSQL a value stored larger than a few bytes is non-empty without reading it
    (``pg_column_size`` looks at the stored datum only, so a 100 MB value costs nothing).
    """

    output_field = BooleanField()
    arity = 1

    def as_sql(self, compiler: Any, connection: Any, **extra: Any) -> tuple[str, list[Any]]:
        column, params = compiler.compile(self.source_expressions[0])
        empties = ", ".join(["%s"] * len(EMPTY_JSON))
        sql = f"CASE WHEN {column} IS NULL THEN 0 WHEN CAST({column} AS text) IN ({empties}) THEN 0 ELSE 1 END"
        return sql, [*params, *EMPTY_JSON]

    def as_postgresql(self, compiler: Any, connection: Any, **extra: Any) -> tuple[str, list[Any]]:
        column, params = compiler.compile(self.source_expressions[0])
        empties = ", ".join(["%s::jsonb"] * len(EMPTY_JSON))
        sql = (
            f"CASE WHEN {column} IS NULL THEN false WHEN pg_column_size({column}) > 32 THEN true "
            f"ELSE {column} NOT IN ({empties}) END"
        )
        return sql, [*params, *EMPTY_JSON]


def with_presence(spans: Any) -> Any:
    """Annotate a Span queryset with ``has_inputs`` / ``has_outputs``, computed by the database."""
    return spans.annotate(has_inputs=_RecordedJson(F("inputs")), has_outputs=_RecordedJson(F("outputs")))


SPAN_ROW_FIELDS = ("pk", "span_id", "parent_id", "start_time_ns", "end_time_ns", "span_type", "name")


def span_rows_by_trace(trace_pks: Collection[int]) -> dict[int, list[SpanRow]]:
    """Light rows of every span of these traces, in one query."""
    from .models import Span

    rows = (
        with_presence(Span.objects.filter(trace_id__in=trace_pks))
        .order_by("trace_id", "start_time_ns", "id")
        .values_list("trace_id", *SPAN_ROW_FIELDS, "has_inputs", "has_outputs")
    )
    by_trace: dict[int, list[SpanRow]] = defaultdict(list)
    # A plain query, not a server-side cursor: the rows of one batch fit in memory, and psycopg
    # binds the long id list client-side far slower for a named cursor.
    for trace_pk, pk, span_id, parent_id, start, end, span_type, name, has_in, has_out in rows:
        by_trace[trace_pk].append(
            SpanRow(span_id, parent_id, start, end, span_type, bool(has_in), bool(has_out), name=name, pk=pk)
        )
    return by_trace


@dataclass(frozen=True, slots=True)
class ConversationIO:
    """A trace's request and response values, and the spans they come from."""

    inputs: Any
    outputs: Any
    request_span_id: str | None
    response_span_id: str | None


def _loads(text: str | None) -> Any:
    return None if text is None else orjson.loads(text)


def _text_of(field: str, pks: set[int]) -> Expression:
    """The column as JSON text for the picked spans only (decoded with orjson: much faster than the ORM)."""
    if not pks:
        return Value(None, output_field=TextField())
    return Case(When(Q(pk__in=pks), then=Cast(field, TextField())), default=None, output_field=TextField())


def _root_values(trace_pks: Collection[int]) -> dict[int, list[tuple[str, Any, Any]]]:
    """Per trace, its true roots (no parent) with their inputs and outputs: one query."""
    from .models import Span

    rows = (
        Span.objects.filter(trace_id__in=trace_pks, parent_id="")
        .annotate(inputs_text=Cast("inputs", TextField()), outputs_text=Cast("outputs", TextField()))
        .values_list("trace_id", "span_id", "inputs_text", "outputs_text")
    )
    roots: dict[int, list[tuple[str, Any, Any]]] = defaultdict(list)
    for trace_pk, span_id, inputs, outputs in rows:
        roots[trace_pk].append((span_id, _loads(inputs), _loads(outputs)))
    return roots


def _picked_values(trace_pks: Collection[int]) -> dict[int, ConversationIO]:
    """The whole rule for these traces: their spans' light rows, then the picked values (two queries)."""
    from .models import Span

    chosen = {pk: conversation_spans(rows) for pk, rows in span_rows_by_trace(trace_pks).items()}
    request_pks = {c.request.pk for c in chosen.values() if c.request is not None and c.request.pk is not None}
    response_pks = {c.response.pk for c in chosen.values() if c.response is not None and c.response.pk is not None}
    values: dict[int, tuple[Any, Any]] = {}
    if request_pks or response_pks:
        rows = (
            Span.objects.filter(pk__in=request_pks | response_pks)
            .annotate(inputs_text=_text_of("inputs", request_pks), outputs_text=_text_of("outputs", response_pks))
            .values_list("pk", "inputs_text", "outputs_text")
        )
        values = {pk: (_loads(i), _loads(o)) for pk, i, o in rows}
    result: dict[int, ConversationIO] = {}
    for trace_pk, spans in chosen.items():
        request, response = spans.request, spans.response
        result[trace_pk] = ConversationIO(
            inputs=values[request.pk][0] if request is not None and request.pk in values else None,
            outputs=values[response.pk][1] if response is not None and response.pk in values else None,
            request_span_id=request.span_id if request is not None else None,
            response_span_id=response.span_id if response is not None else None,
        )
    return result


def conversation_io(trace_pks: Collection[int]) -> dict[int, ConversationIO]:
    """Request and response of each trace by the rule, for any number of traces in one to three queries.

    Most traces have one root that recorded both: one query reads those, as MLflow would. The
    others (a wrapper root, several roots, none) go through :func:`conversation_spans` with all
    their spans. Traces without spans are left out of the result.
    """
    result: dict[int, ConversationIO] = {}
    others: list[int] = []
    roots = _root_values(trace_pks)
    for trace_pk in trace_pks:
        found = roots.get(trace_pk, [])
        if len(found) == 1 and has_value(found[0][1]) and has_value(found[0][2]):
            span_id, inputs, outputs = found[0]
            result[trace_pk] = ConversationIO(inputs, outputs, span_id, span_id)
        else:
            others.append(trace_pk)
    if others:
        result.update(_picked_values(others))
    return result
