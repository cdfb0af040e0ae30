"""The trace store, in MLflow 3's vocabulary: experiments, traces, spans, assessments."""

from __future__ import annotations

import json
from typing import Any

from django.conf import settings
from django.db import NotSupportedError, models
from django.db.models import BooleanField, F, Func
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


class Trace(models.Model):
    """One request/response execution of an LLM application."""

    trace_id = models.CharField(max_length=64, unique=True)
    experiment = models.ForeignKey(Experiment, on_delete=models.CASCADE, related_name="traces")
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
        indexes = [
            models.Index(fields=["experiment", "-request_time"], name="trace_exp_time_idx"),
            models.Index(fields=["experiment", "state", "-request_time"], name="trace_exp_state_time_idx"),
            models.Index(fields=["name"], name="trace_name_idx"),
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

    trace = models.ForeignKey(Trace, on_delete=models.CASCADE, related_name="spans")
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


class AssessmentKind(models.TextChoices):
    FEEDBACK = "feedback", "Feedback"
    EXPECTATION = "expectation", "Expectation"


class AssessmentSource(models.TextChoices):
    HUMAN = "HUMAN", "Human"
    LLM_JUDGE = "LLM_JUDGE", "LLM judge"
    CODE = "CODE", "Code"
    SOURCE_TYPE_UNSPECIFIED = "SOURCE_TYPE_UNSPECIFIED", "Unspecified"


class AssessmentQuerySet(models.QuerySet["Assessment"]):
    def valid(self) -> AssessmentQuerySet:
        return self.filter(valid=True)


class Assessment(models.Model):
    """Feedback (a quality judgement) or an Expectation (ground truth) on a trace.

    A correction never overwrites: it is a new assessment whose ``overrides`` names
    the old one, which then has ``valid=False``.
    """

    assessment_id = models.CharField(max_length=64, unique=True)
    trace = models.ForeignKey(Trace, on_delete=models.CASCADE, related_name="assessments")
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
