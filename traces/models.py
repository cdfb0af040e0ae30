"""The trace store, in MLflow 3's vocabulary: experiments, traces, spans, assessments."""

from __future__ import annotations

import json
from typing import Any

from django.conf import settings
from django.db import NotSupportedError, connection, models
from django.db.models import (
    BooleanField,
    Case,
    Exists,
    F,
    Func,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
    TextField,
    Value,
    When,
)
from django.db.models.functions import Cast, Coalesce, Left
from django.db.models.lookups import IsNull
from django.urls import reverse

# trace_metadata key holding what the importer changed to make a trace showable (a JSON list of
# sentences), e.g. a span parent loop it broke. A metadata entry, so session copies keep it.
INGEST_WARNINGS_KEY = "reviewapp.ingest.warnings"


class ExperimentKind(models.TextChoices):
    TRACES = "traces", "Traces"
    LABELING = "labeling", "Labeling session copies"


class Experiment(models.Model):
    """A named container of traces (MLflow's ``experiment_id``).

    Labeling sessions keep their frozen trace copies in an experiment of kind ``labeling``,
    which the trace explorer does not list.
    """

    name = models.CharField(max_length=255, unique=True)
    kind = models.CharField(max_length=16, choices=ExperimentKind.choices, default=ExperimentKind.TRACES)
    mlflow_experiment_id = models.CharField(
        max_length=64, blank=True, default="", help_text="The experiment id in the MLflow server the traces came from."
    )
    description = models.TextField(blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def get_absolute_url(self) -> str:
        return reverse("traces:list") + f"?experiment={self.pk}"


class TraceState(models.TextChoices):
    OK = "OK", "OK"
    ERROR = "ERROR", "Error"
    IN_PROGRESS = "IN_PROGRESS", "In progress"
    STATE_UNSPECIFIED = "STATE_UNSPECIFIED", "Unspecified"


class HasTag(Func):
    """True where a JSON object column has ``key`` (holding the string ``value``, if given).

    PostgreSQL: ``?`` / ``@>`` on jsonb. SQLite: ``json_each``, which compares decoded keys, so any
    key works (a JSON path such as ``$."key"`` cannot name a key with a quote, and digits in
    Django's key lookups turn into array indexes).
    """

    output_field = BooleanField()

    def __init__(self, column: str, *, key: str, value: str | None = None) -> None:
        super().__init__(F(column))
        self.key, self.value = key, value

    def as_postgresql(self, compiler: Any, connection: Any, **extra: Any) -> tuple[str, list[Any]]:
        column, params = compiler.compile(self.source_expressions[0])
        if self.value is None:
            return f"({column} ? %s)", [*params, self.key]
        return f"({column} @> %s::jsonb)", [*params, json.dumps({self.key: self.value})]

    def as_sql(self, compiler: Any, connection: Any, **extra: Any) -> tuple[str, list[Any]]:
        raise NotSupportedError("Tag filters need PostgreSQL or SQLite.")

    def as_sqlite(self, compiler: Any, connection: Any, **extra: Any) -> tuple[str, list[Any]]:
        column, params = compiler.compile(self.source_expressions[0])
        if self.value is None:
            return f"EXISTS (SELECT 1 FROM json_each({column}) WHERE key = %s)", [*params, self.key]
        sql = f"EXISTS (SELECT 1 FROM json_each({column}) WHERE key = %s AND type = 'text' AND value = %s)"
        return sql, [*params, self.key, self.value]


def escape_like(text: str) -> str:
    """``text`` as a LIKE pattern matching itself."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _is_plain_contains(pattern: str) -> bool:
    """``%literal%`` with no other wildcard or escape: found in a search document (one line per
    span column, and JSON text holds no raw newline), it was found within one column of one span."""
    inner = pattern[1:-1]
    return len(pattern) >= 3 and pattern[0] == pattern[-1] == "%" and not any(c in inner for c in "%_\\\n")


def like(column: str, pattern: str, *, case_sensitive: bool) -> Q:
    """``column LIKE/ILIKE pattern``, MLflow's way on both databases (a trigram index serves it)."""
    from .search.expressions import Like

    return Q(Like(column, pattern, case_sensitive=case_sensitive))


class LoweredLike(Func):
    """PostgreSQL: ``column LIKE lower(pattern)``, for the lowercased search documents; with
    ``lines``, true when some line of the document matches (lines being span columns: the inputs,
    outputs or attributes of one span)."""

    output_field = BooleanField()

    def __init__(self, column: str, pattern: str, *, lines: bool = False) -> None:
        super().__init__(F(column))
        self.pattern, self.lines = pattern, lines

    def as_sql(self, compiler: Any, connection: Any, **extra: Any) -> tuple[str, list[Any]]:
        column, params = compiler.compile(self.source_expressions[0])
        if self.lines:
            sql = f"EXISTS (SELECT 1 FROM unnest(string_to_array({column}, E'\\n')) AS line WHERE line LIKE lower(%s))"
        else:
            sql = f"({column} LIKE lower(%s))"
        return sql, [*params, self.pattern]


def _matching_documents(pattern: str, *, case_sensitive: bool) -> tuple[QuerySet[TraceSearchDocument], bool]:
    """PostgreSQL: the trace ids from the search documents matching ``pattern``, and whether they
    are the answer (else a superset to check against the spans).

    Documents are lowercased, so ``x ILIKE p`` is ``document LIKE lower(p)`` (what ILIKE does).
    The trigram index finds the documents containing a match somewhere; for a plain ``%text%``
    that is exact, otherwise an ILIKE checks each found document's lines. A case-sensitive LIKE
    is narrowed the same way, then checked against the spans."""
    from .search.expressions import json_text_pattern, like_pattern

    pattern = json_text_pattern(like_pattern(pattern))  # lines are JSON text, as SpanContentLike matches
    plain = _is_plain_contains(pattern)
    documents = TraceSearchDocument.objects.filter(LoweredLike("content", pattern if plain else f"%{pattern}%"))
    if case_sensitive:
        return documents.values("trace_id"), False
    if not plain:
        documents = documents.filter(LoweredLike("content", pattern, lines=True))
    return documents.values("trace_id"), True


def _spans_matching(pattern: str, *, case_sensitive: bool, per_row: bool = False) -> Q:
    """``EXISTS`` (a semi-join the planner may start from either side); ``per_row``: a scalar
    subquery, which PostgreSQL runs for each row that reaches it (an ``EXISTS``, even inside a
    CASE, it may turn into one hashed scan of every span)."""
    from .search.expressions import SpanContentLike

    spans = Span.objects.filter(trace_id=OuterRef("pk")).filter(SpanContentLike(pattern, case_sensitive=case_sensitive))
    if per_row:
        return Q(IsNull(Subquery(spans.order_by().values(one=Value(1))[:1]), False))
    return Q(Exists(spans))


# Up to this many candidate documents, a case-sensitive span.content LIKE checks the spans of each.
SPAN_CHECKS_UP_TO = 1000


def _checked_per_row(condition: Q) -> Q:
    """``condition`` as PostgreSQL checks it on each row it reads: inside a CASE, which the planner
    never turns into a join it might start from. Walking a list order's index under a LIMIT, the
    checks stop when the page is full. (An uncorrelated ``IN`` becomes one hashed set.)"""
    return Q(Case(When(condition, then=Value(True)), default=Value(False), output_field=BooleanField()))


def span_content_condition(pattern: str, *, case_sensitive: bool = False) -> Q:
    """Some span of the trace has inputs, outputs or attributes whose JSON text matches the LIKE
    ``pattern`` (``traces.search.expressions.SpanContentLike``, which SQLite uses).

    PostgreSQL answers from the search documents (all of a trace's span columns, one per line,
    kept by triggers on traces_span, trigram-indexed): see ``_matching_documents``. When they only
    narrow the answer (a case-sensitive LIKE) and narrow it to more than ``SPAN_CHECKS_UP_TO``
    traces (one bounded count tells), checking every candidate's spans before sorting them would
    cost seconds; the list then walks its order and checks the spans of the candidates it meets,
    stopping at the page (the planner cannot know: it guesses ~100 candidates for any pattern).
    """
    if connection.vendor != "postgresql":
        return _spans_matching(pattern, case_sensitive=case_sensitive)
    documents, exact = _matching_documents(pattern, case_sensitive=case_sensitive)
    narrowed = Q(pk__in=documents)
    if exact:
        return narrowed
    if documents.order_by()[: SPAN_CHECKS_UP_TO + 1].count() <= SPAN_CHECKS_UP_TO:
        return narrowed & _spans_matching(pattern, case_sensitive=case_sensitive)
    return _checked_per_row(narrowed) & _spans_matching(pattern, case_sensitive=case_sensitive, per_row=True)


def text_condition(pattern: str, *, case_sensitive: bool = False) -> Q:
    """MLflow's ``text``: the request or response preview, or some span's content, matches.

    On PostgreSQL one ``id IN (… UNION ALL …)`` subquery, so that each part uses its own trigram
    index (an OR of subqueries would read every trace)."""
    previews = like("request_preview", pattern, case_sensitive=case_sensitive) | like(
        "response_preview", pattern, case_sensitive=case_sensitive
    )
    if connection.vendor != "postgresql":
        return previews | span_content_condition(pattern, case_sensitive=case_sensitive)
    documents, exact = _matching_documents(pattern, case_sensitive=case_sensitive)
    ids = Q(pk__in=Trace.objects.filter(previews).order_by().values("pk").union(documents, all=True))
    return ids if exact else ids & (previews | _spans_matching(pattern, case_sensitive=case_sensitive))


def assessment_condition(kind: str, name: str, value: Any) -> Q:
    """A valid assessment of ``kind`` named ``name`` whose JSON value equals ``value``
    (``"yes"``, ``True``, ``4``): served by ``assessment_valid_value_idx``."""
    return Q(Exists(Assessment.objects.valid_value(kind, name, value).filter(trace_id=OuterRef("pk"))))


# Execution time as a non-null sort key, so that keyset pagination compares plain values and an
# index serves it: -1 sorts "none yet" last in a descending order, the largest bigint in an
# ascending one.
BIGINT_MAX = 9223372036854775807
DURATION_DESC = Coalesce("execution_duration_ms", Value(-1))
DURATION_ASC = Coalesce("execution_duration_ms", Value(BIGINT_MAX))


class TraceQuerySet(models.QuerySet["Trace"]):
    def explorable(self) -> TraceQuerySet:
        """Traces of ordinary experiments, without the frozen copies held by labeling sessions."""
        return self.filter(experiment__kind=ExperimentKind.TRACES)

    def in_experiment(self, experiment: Experiment | int | None) -> TraceQuerySet:
        return self if experiment is None else self.filter(experiment=experiment)

    def with_tag(self, key: str, value: str | None = None) -> TraceQuerySet:
        """Traces whose tags have ``key`` (set to ``value``, if given). Both come from users, so
        they are bound as values, never made into a lookup name."""
        return self.filter(HasTag("tags", key=key, value=value))

    def with_metadata(self, key: str, value: str | None = None) -> TraceQuerySet:
        """Like ``with_tag``, for ``trace_metadata`` (GIN-indexed on PostgreSQL too)."""
        return self.filter(HasTag("trace_metadata", key=key, value=value))

    def with_name_like(self, pattern: str, *, case_sensitive: bool = False) -> TraceQuerySet:
        """Traces whose name matches the LIKE ``pattern`` (trigram index on PostgreSQL)."""
        return self.filter(like("name", pattern, case_sensitive=case_sensitive))

    def with_name_containing(self, text: str) -> TraceQuerySet:
        """Traces whose name contains ``text``, ignoring case."""
        return self.with_name_like(f"%{escape_like(text)}%")

    def with_text(self, pattern: str, *, case_sensitive: bool = False) -> TraceQuerySet:
        """MLflow's ``text LIKE/ILIKE pattern`` (``text_condition``)."""
        return self.filter(text_condition(pattern, case_sensitive=case_sensitive))

    def with_span_content(self, pattern: str, *, case_sensitive: bool = False) -> TraceQuerySet:
        """MLflow's ``span.content LIKE/ILIKE pattern`` (``span_content_condition``)."""
        return self.filter(span_content_condition(pattern, case_sensitive=case_sensitive))

    def with_assessment(self, kind: str, name: str, value: Any) -> TraceQuerySet:
        return self.filter(assessment_condition(kind, name, value))

    def with_feedback(self, name: str, value: Any) -> TraceQuerySet:
        """``feedback.<name> = value`` over valid assessments (``assessment_condition``)."""
        return self.with_assessment(AssessmentKind.FEEDBACK, name, value)

    def with_expectation(self, name: str, value: Any) -> TraceQuerySet:
        return self.with_assessment(AssessmentKind.EXPECTATION, name, value)


class Trace(models.Model):
    """One request/response execution of an LLM application."""

    trace_id = models.CharField(max_length=64, unique=True)
    # No index of its own: the (experiment, …) indexes below start with it.
    experiment = models.ForeignKey(Experiment, on_delete=models.CASCADE, related_name="traces", db_index=False)
    name = models.CharField(
        max_length=255, blank=True, default="", help_text="mlflow.traceName, or the root span's name."
    )
    state = models.CharField(max_length=20, choices=TraceState.choices, default=TraceState.OK)
    request_time = models.DateTimeField()
    execution_duration_ms = models.BigIntegerField(null=True, blank=True)
    request_preview = models.TextField(blank=True, default="")
    response_preview = models.TextField(blank=True, default="")
    client_request_id = models.CharField(max_length=255, blank=True, default="")
    model_id = models.CharField(
        max_length=255,
        blank=True,
        default="",
        help_text="The application version (MLflow's LoggedModel id, trace metadata mlflow.modelId).",
    )
    tags = models.JSONField(default=dict, blank=True)
    trace_metadata = models.JSONField(default=dict, blank=True)
    span_count = models.PositiveIntegerField(default=0)
    source_trace = models.ForeignKey(
        "self",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="copies",
        help_text="For a frozen copy (in a labeling session): the trace it was copied from.",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = TraceQuerySet.as_manager()

    class Meta:
        ordering = ["-request_time", "-id"]
        # One index per list order (traces/pagination.py ORDERINGS), alone and after the usual
        # equality filters, each ending in id, the tiebreaker. PostgreSQL also has (migration 0004):
        # GIN jsonb_ops on tags and trace_metadata (? and @>), pg_trgm GIN on name,
        # request_preview and response_preview, and the per-trace span search documents.
        indexes = [
            models.Index(fields=["-request_time", "-id"], name="trace_time_id_idx"),
            models.Index(fields=["experiment", "-request_time", "-id"], name="trace_exp_time_id_idx"),
            models.Index(fields=["state", "-request_time", "-id"], name="trace_state_time_id_idx"),
            models.Index(fields=["experiment", "state", "-request_time", "-id"], name="trace_exp_state_time_id_idx"),
            # execution time with "none yet" last both ways (MLflow's NULLS LAST), then newest first
            models.Index(
                DURATION_DESC.desc(), F("request_time").desc(), F("id").desc(), name="trace_duration_desc_idx"
            ),
            models.Index(DURATION_ASC.asc(), F("request_time").desc(), F("id").desc(), name="trace_duration_asc_idx"),
            models.Index(fields=["name", "-request_time", "-id"], name="trace_name_time_id_idx"),
            models.Index(fields=["model_id", "-request_time", "-id"], name="trace_model_time_id_idx"),
            models.Index(fields=["client_request_id"], name="trace_client_req_idx"),
        ]

    def __str__(self) -> str:
        return self.trace_id

    def get_absolute_url(self) -> str:
        return reverse("traces:detail", args=[self.trace_id])

    @property
    def session_id(self) -> str:
        return str(self.trace_metadata.get("mlflow.trace.session", ""))

    @property
    def user_id(self) -> str:
        return str(self.trace_metadata.get("mlflow.trace.user", ""))

    @property
    def ingest_warnings(self) -> list[str]:
        """What the importer changed in this trace (see ``INGEST_WARNINGS_KEY``), for the trace page."""
        raw = self.trace_metadata.get(INGEST_WARNINGS_KEY) if isinstance(self.trace_metadata, dict) else None
        if not raw:
            return []
        try:
            warnings = json.loads(raw)
        except (TypeError, ValueError):
            return [str(raw)]
        return [str(w) for w in warnings] if isinstance(warnings, list) else [str(warnings)]


class Span(models.Model):
    """A node of the trace tree. Times are nanoseconds since the epoch, kept exact."""

    # No index of its own: span_unique_per_trace and span_trace_start_idx both start with it.
    trace = models.ForeignKey(Trace, on_delete=models.CASCADE, related_name="spans", db_index=False)
    span_id = models.CharField(max_length=32)
    parent_id = models.CharField(max_length=32, blank=True, default="")
    name = models.CharField(max_length=500)
    span_type = models.CharField(max_length=40, default="UNKNOWN")
    status_code = models.CharField(max_length=20, default="UNSET")
    status_message = models.TextField(blank=True, default="")
    start_time_ns = models.BigIntegerField()
    end_time_ns = models.BigIntegerField(null=True, blank=True)
    inputs = models.JSONField(null=True, blank=True)
    outputs = models.JSONField(null=True, blank=True)
    attributes = models.JSONField(default=dict, blank=True)
    events = models.JSONField(default=list, blank=True)

    class Meta:
        ordering = ["start_time_ns", "id"]
        constraints = [models.UniqueConstraint(fields=["trace", "span_id"], name="span_unique_per_trace")]
        indexes = [models.Index(fields=["trace", "start_time_ns"], name="span_trace_start_idx")]

    def __str__(self) -> str:
        return f"{self.name} ({self.span_id})"

    @property
    def duration_ms(self) -> float | None:
        if self.end_time_ns is None:
            return None
        return (self.end_time_ns - self.start_time_ns) / 1_000_000


class TraceSearchDocument(models.Model):
    """All of a trace's span contents, one per line, for ``span.content`` search.

    Filled on PostgreSQL only: statement triggers on traces_span keep it (every write path, COPY
    included), and a pg_trgm GIN index serves ``LIKE``/``ILIKE`` (migration 0004). SQLite leaves
    the table empty and searches span content in the spans directly. Nothing else writes it.
    """

    trace = models.OneToOneField(Trace, on_delete=models.CASCADE, primary_key=True, related_name="+")
    content = models.TextField()

    class Meta:
        db_table = "traces_search_document"

    def __str__(self) -> str:
        return f"search document of trace {self.trace_id}"


class AssessmentKind(models.TextChoices):
    FEEDBACK = "feedback", "Feedback"
    EXPECTATION = "expectation", "Expectation"


# Metadata naming what produced a Feedback (written by evaluation; read here to say so on the trace page)
SOURCE_RUN_KEY = "mlflow.assessment.sourceRunId"
MONITORING_REGISTRATION_KEY = "reviewapp.monitoring.registration"
MONITORING_VERSION_KEY = "reviewapp.monitoring.registrationVersion"


class AssessmentSource(models.TextChoices):
    HUMAN = "HUMAN", "Human"
    LLM_JUDGE = "LLM_JUDGE", "LLM judge"
    CODE = "CODE", "Code"
    SOURCE_TYPE_UNSPECIFIED = "SOURCE_TYPE_UNSPECIFIED", "Unspecified"


# Assessment values are JSON of any size: the value index holds the first characters of their
# JSON text (a btree entry must stay under ~2.7 KB) and the lookup re-checks the whole value.
VALUE_PREFIX = 200


def value_prefix(expression: Any) -> Left:
    return Left(Cast(expression, TextField()), VALUE_PREFIX)


class AssessmentQuerySet(models.QuerySet["Assessment"]):
    def valid(self) -> AssessmentQuerySet:
        return self.filter(valid=True)

    def valid_value(self, kind: str, name: str, value: Any) -> AssessmentQuerySet:
        """Valid assessments of ``kind`` named ``name`` with the JSON value ``value``."""
        json_value = Value(value, output_field=models.JSONField())
        matching = (
            self.valid()
            .alias(_prefix=value_prefix("value"))
            .filter(kind=kind, name=name, _prefix=value_prefix(json_value))
        )
        # A value whose JSON text is shorter than the prefix is equal exactly when the prefixes
        # are; only a long one needs the whole value compared (which hides the index's row
        # estimate from the planner).
        if len(json.dumps(value, ensure_ascii=False)) >= VALUE_PREFIX - 20:
            matching = matching.filter(value=json_value)
        return matching


class Assessment(models.Model):
    """Feedback (a quality judgement) or an Expectation (ground truth) on a trace.

    A correction never overwrites: it is a new assessment whose ``overrides`` names
    the old one, which then has ``valid=False``.
    """

    assessment_id = models.CharField(max_length=64, unique=True)
    # No index of its own: assessment_trace_name_idx starts with it.
    trace = models.ForeignKey(Trace, on_delete=models.CASCADE, related_name="assessments", db_index=False)
    name = models.CharField(max_length=255)
    kind = models.CharField(max_length=12, choices=AssessmentKind.choices)
    value = models.JSONField(null=True, blank=True)
    rationale = models.TextField(blank=True, default="")
    error = models.JSONField(null=True, blank=True, help_text="Feedback error: error_code, error_message, stack_trace.")
    source_type = models.CharField(max_length=32, choices=AssessmentSource.choices, default=AssessmentSource.HUMAN)
    source_id = models.CharField(max_length=255, blank=True, default="")
    span_id = models.CharField(max_length=32, blank=True, default="")
    overrides = models.CharField(max_length=64, blank=True, default="", help_text="assessment_id this one replaces.")
    valid = models.BooleanField(default=True)
    metadata = models.JSONField(default=dict, blank=True)
    create_time = models.DateTimeField()
    last_update_time = models.DateTimeField()

    objects = AssessmentQuerySet.as_manager()

    class Meta:
        ordering = ["create_time", "id"]
        indexes = [
            models.Index(fields=["trace", "name"], name="assessment_trace_name_idx"),
            models.Index(fields=["name", "source_type"], name="assessment_name_source_idx"),
            models.Index(
                "kind",
                "name",
                value_prefix("value"),
                "trace",
                condition=Q(valid=True),
                name="assessment_valid_value_idx",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name}={self.value!r} ({self.source_type})"

    @property
    def display_value(self) -> Any:
        return self.value


class ApiTokenQuerySet(models.QuerySet["ApiToken"]):
    def active(self) -> ApiTokenQuerySet:
        return self.filter(revoked_at__isnull=True)


class ApiToken(models.Model):
    """A personal API token. Only a SHA-256 of the secret is kept; the secret is shown once.

    A token acts with its owner's role: what the owner may do in the browser, it may do over HTTP.
    """

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens")
    name = models.CharField(max_length=100)
    prefix = models.CharField(max_length=16, help_text="The token's first characters, to tell tokens apart.")
    token_hash = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    objects = ApiTokenQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None
