"""The explorer's filters, shared by the trace list and by "add traces to a session"."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, time
from typing import Any

from django import forms
from django.db import connections
from django.db.models import Prefetch, QuerySet
from django.utils import timezone

from ..models import Assessment, Experiment, ExperimentKind, Trace, TraceState
from .grammar import MAX_FILTER_LENGTH, Filter, FilterError, parse_filter
from .ordering import parse_order_by
from .translate import apply_filter

TAG_HELP = "key=value, or just key; separate several with commas"
FILTER_PLACEHOLDER = "e.g. tags.environment = 'production' AND feedback.relevance = 'no'"
VERSIONS_SHOWN = 200

# The examples in the search box's help (the README has the same table).
SEARCH_EXAMPLES: list[tuple[str, str]] = [
    ("status = 'ERROR'", "failed traces"),
    ("tags.environment = 'production' AND execution_time_ms > 2000", "slow production traces"),
    ("tags.`mlflow.traceName` LIKE '%chat%'", "a dotted name, in backquotes"),
    ("tags.app_version = '1.4.0' AND feedback.correct = false", "one app version's wrong answers"),
    ("metadata.`mlflow.modelId` IS NOT NULL", "traces linked to an app version"),
    ("feedback.relevance = 'no'", "a judge or reviewer said no"),
    ("feedback.groundedness <= 2", "a numeric feedback value"),
    ("span.type = 'RETRIEVER' AND span.content ILIKE '%physiotherapy%'", "what the retriever found"),
    ("text ILIKE '%deductible%'", "anywhere in the request, response or spans"),
    ("name IN ('support_chat', 'member_agent')", "one of several names"),
    ("tags.reviewed IS NULL", "no such tag"),
]

ORDER_CHOICES = [
    ("", "Newest first"),
    ("timestamp_ms ASC", "Oldest first"),
    ("execution_time_ms DESC", "Slowest first"),
    ("execution_time_ms ASC", "Fastest first"),
    ("name ASC", "Name (A–Z)"),
    ("status ASC", "State"),
]


def parse_tag_filters(raw: str) -> list[tuple[str, str | None]]:
    """``"env=prod, reviewed"`` → ``[("env", "prod"), ("reviewed", None)]``."""
    filters: list[tuple[str, str | None]] = []
    for part in raw.split(","):
        part = part.strip()
        if not part:
            continue
        key, sep, value = part.partition("=")
        key = key.strip()
        if not key:
            raise forms.ValidationError(f"Tag filter {part!r} has no key. Use key=value.")
        filters.append((key, value.strip() if sep else None))
    return filters


def version_choices(traces: QuerySet[Trace]) -> Callable[[], list[tuple[str, str]]]:
    """The distinct app versions (``model_id``) among ``traces``: one query, run when first shown."""
    cache: list[tuple[str, str]] = []

    def choices() -> list[tuple[str, str]]:
        if not cache:
            versions = distinct_versions(traces, VERSIONS_SHOWN)
            cache.extend([("", "Any version"), *((v, v) for v in versions)])
        return cache

    return choices


# PostgreSQL: a loose index scan over trace_model_time_id_idx, one index probe per version (a
# DISTINCT reads every trace: ~0.3 s at a million). The versions of ordinary experiments, which
# every explorer may see (session copies carry their sources' versions).
DISTINCT_VERSIONS_SQL = """
WITH RECURSIVE versions(model_id) AS (
    (SELECT t.model_id FROM traces_trace t JOIN traces_experiment e ON e.id = t.experiment_id
     WHERE e.kind = %s AND t.model_id > '' ORDER BY t.model_id LIMIT 1)
    UNION ALL
    SELECT (SELECT t.model_id FROM traces_trace t JOIN traces_experiment e ON e.id = t.experiment_id
            WHERE e.kind = %s AND t.model_id > v.model_id ORDER BY t.model_id LIMIT 1)
    FROM versions v WHERE v.model_id IS NOT NULL
)
SELECT model_id FROM versions WHERE model_id IS NOT NULL LIMIT %s
"""


def distinct_versions(traces: QuerySet[Trace], limit: int) -> list[str]:
    """The app versions to offer, in order: one query whatever the number of traces."""
    if connections[traces.db].vendor == "postgresql":
        with connections[traces.db].cursor() as cursor:
            cursor.execute(DISTINCT_VERSIONS_SQL, [ExperimentKind.TRACES, ExperimentKind.TRACES, limit])
            return [row[0] for row in cursor.fetchall()]
    versions = traces.exclude(model_id="").order_by("model_id").values_list("model_id", flat=True).distinct()
    return list(versions[:limit])


class VersionField(forms.ChoiceField):
    """A select of the known versions that also takes one not listed (beyond the first
    ``VERSIONS_SHOWN``, or from a shared link): any short id is a value, not a lookup."""

    def valid_value(self, value: Any) -> bool:
        return isinstance(value, str) and len(value) <= 255 and "\x00" not in value


class TraceFilterForm(forms.Form):
    filter_string = forms.CharField(
        required=False,
        max_length=MAX_FILTER_LENGTH,
        label="Search",
        strip=True,
        widget=forms.TextInput(
            attrs={"placeholder": FILTER_PLACEHOLDER, "spellcheck": "false", "autocomplete": "off", "class": "mono"}
        ),
        help_text="An MLflow filter string, as for mlflow.search_traces(filter_string=…)",
    )
    experiment = forms.ModelChoiceField(
        queryset=Experiment.objects.filter(kind=ExperimentKind.TRACES), required=False, empty_label="All experiments"
    )
    state = forms.ChoiceField(choices=[("", "Any state"), *TraceState.choices], required=False)
    version = VersionField(required=False, choices=[("", "Any version")])
    name = forms.CharField(required=False, max_length=255, label="Name contains")
    since = forms.DateField(required=False, label="From", widget=forms.DateInput(attrs={"type": "date"}))
    until = forms.DateField(required=False, label="To", widget=forms.DateInput(attrs={"type": "date"}))
    tags = forms.CharField(required=False, max_length=500, label="Tags", help_text=TAG_HELP)

    def __init__(self, *args: Any, versions_of: QuerySet[Trace] | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.filter_error: FilterError | None = None
        if versions_of is not None:
            self.fields["version"].choices = version_choices(versions_of)

    search_examples = SEARCH_EXAMPLES

    def clean_filter_string(self) -> Filter:
        text = self.cleaned_data.get("filter_string") or ""
        try:
            return parse_filter(text)
        except FilterError as exc:
            self.filter_error = exc
            raise forms.ValidationError(str(exc), code="bad_filter") from None

    def clean_tags(self) -> list[tuple[str, str | None]]:
        return parse_tag_filters(self.cleaned_data.get("tags") or "")

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        since, until = data.get("since"), data.get("until")
        if since and until and since > until:
            raise forms.ValidationError("“From” must be on or before “To”.")
        return data

    def filter(self, queryset: QuerySet[Trace]) -> QuerySet[Trace]:
        """Apply the cleaned filters (the filter string ANDed with the fields); call only after
        ``is_valid()``. A filter the database side refuses (a timestamp out of range, a regular
        expression PostgreSQL cannot read) becomes a form error and no traces."""
        data = self.cleaned_data
        if data.get("experiment"):
            queryset = queryset.filter(experiment=data["experiment"])
        if data.get("state"):
            queryset = queryset.filter(state=data["state"])
        if data.get("version"):
            queryset = queryset.filter(model_id=data["version"])
        if data.get("name"):
            queryset = queryset.with_name_containing(data["name"])  # ILIKE: the trigram index serves it
        if data.get("since"):
            queryset = queryset.filter(request_time__gte=_day_start(data["since"]))
        if data.get("until"):
            queryset = queryset.filter(request_time__lte=_day_end(data["until"]))
        for key, value in data.get("tags") or []:
            queryset = queryset.with_tag(key, value)
        parsed = data.get("filter_string")
        if parsed:
            try:
                queryset = apply_filter(queryset, parsed)
            except FilterError as exc:
                self.filter_error = exc
                self.add_error("filter_string", str(exc))
                return queryset.none()
        return queryset

    @property
    def errors_besides_filter(self) -> dict[str, Any]:
        """The errors shown with the results; the filter string's is shown under its box."""
        return {field: errors for field, errors in self.errors.items() if field != "filter_string"}

    @property
    def error_marker(self) -> tuple[str, str, str] | None:
        """The filter text split around the bad position, to point at it: (before, at, after)."""
        exc, text = self.filter_error, (self.data.get("filter_string") or "").strip() if self.is_bound else ""
        if exc is None or not exc.position or not text:
            return None
        index = min(exc.position - 1, len(text))
        return text[:index], text[index : index + 1] or " ", text[index + 1 :]


class TraceListForm(TraceFilterForm):
    """The explorer's form: the filters plus MLflow's ``order_by``."""

    order_by = forms.ChoiceField(choices=ORDER_CHOICES, required=False, label="Order")

    def ordering(self) -> list[Any]:
        value = self.cleaned_data.get("order_by") if self.is_bound and self.is_valid() else ""
        return parse_order_by([value] if value else None)


def _day_start(day: Any) -> datetime:
    return timezone.make_aware(datetime.combine(day, time.min))


def _day_end(day: Any) -> datetime:
    return timezone.make_aware(datetime.combine(day, time.max))


def traces_for_list(queryset: QuerySet[Trace]) -> QuerySet[Trace]:
    """The rows the list shows: light columns only, with valid assessments for the badges."""
    badges = Assessment.objects.valid().only("trace_id", "name", "value", "source_type", "kind", "error")
    return (
        queryset.select_related("experiment")
        .defer("trace_metadata")
        .prefetch_related(Prefetch("assessments", queryset=badges, to_attr="valid_assessments"))
    )
