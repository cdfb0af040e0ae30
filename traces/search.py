"""Trace filters shared by the trace list and by "add traces to a session"."""

from __future__ import annotations

from datetime import datetime, time
from typing import Any

from django import forms
from django.db.models import Prefetch, QuerySet
from django.utils import timezone

from .models import Assessment, Experiment, ExperimentKind, Trace, TraceQuerySet, TraceState

TAG_HELP = "key=value, or just key; separate several with commas"


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


class TraceFilterForm(forms.Form):
    experiment = forms.ModelChoiceField(
        queryset=Experiment.objects.filter(kind=ExperimentKind.TRACES), required=False, empty_label="All experiments"
    )
    state = forms.ChoiceField(choices=[("", "Any state"), *TraceState.choices], required=False)
    name = forms.CharField(required=False, max_length=255, label="Name contains")
    since = forms.DateField(required=False, label="From", widget=forms.DateInput(attrs={"type": "date"}))
    until = forms.DateField(required=False, label="To", widget=forms.DateInput(attrs={"type": "date"}))
    tags = forms.CharField(required=False, max_length=500, label="Tags", help_text=TAG_HELP)

    def clean_tags(self) -> list[tuple[str, str | None]]:
        return parse_tag_filters(self.cleaned_data.get("tags") or "")

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        since, until = data.get("since"), data.get("until")
        if since and until and since > until:
            raise forms.ValidationError("“From” must be on or before “To”.")
        return data

    def filter(self, queryset: TraceQuerySet) -> TraceQuerySet:
        """Apply the cleaned filters; call only after ``is_valid()``."""
        data = self.cleaned_data
        if data.get("experiment"):
            queryset = queryset.filter(experiment=data["experiment"])
        if data.get("state"):
            queryset = queryset.filter(state=data["state"])
        if data.get("name"):
            queryset = queryset.with_name_containing(data["name"])  # ILIKE: the trigram index serves it
        if data.get("since"):
            queryset = queryset.filter(request_time__gte=_day_start(data["since"]))
        if data.get("until"):
            queryset = queryset.filter(request_time__lte=_day_end(data["until"]))
        for key, value in data.get("tags") or []:
            queryset = queryset.with_tag(key, value)
        return queryset


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
