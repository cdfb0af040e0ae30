"""The backfill start form: registered scorers (each with an optional rate for this job) and a UTC time range."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from django import forms

from .models import RegisteredScorer

TIME_HELP = "UTC. Traces whose request time is in the range (both ends included)."


def parse_utc(text: str) -> datetime:
    """An ISO 8601 date or time; without an offset it is UTC (what the form and the command say)."""
    value = datetime.fromisoformat(text.strip())
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


class UTCDateTimeField(forms.CharField):
    """A ``datetime-local`` input read as UTC (the browser's own time zone is not sent)."""

    widget = forms.DateTimeInput(attrs={"type": "datetime-local", "step": "1"})

    def to_python(self, value: Any) -> datetime | None:  # type: ignore[override]
        text = super().to_python(value)
        if not text:
            return None
        try:
            return parse_utc(text)
        except ValueError:
            raise forms.ValidationError("Enter a date and time, e.g. 2026-11-01T00:00.", code="invalid") from None


def rate_field_name(registration: RegisteredScorer) -> str:
    return f"rate_{registration.pk}"


class BackfillForm(forms.Form):
    """What ``start_backfill`` takes; the choices are the experiment's registered scorers."""

    scorers = forms.MultipleChoiceField(
        choices=[],
        widget=forms.CheckboxSelectMultiple,
        error_messages={
            "required": "Pick at least one registered scorer.",
            "invalid_choice": "“%(value)s” is not a scorer registered on this experiment.",
        },
    )
    start = UTCDateTimeField(label="From", help_text=TIME_HELP, error_messages={"required": "Give the range's start."})
    end = UTCDateTimeField(label="To", required=False, help_text="UTC. Blank: now (when the job starts).")

    def __init__(self, *args: Any, registrations: list[RegisteredScorer], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.registrations = registrations
        self.fields["scorers"].choices = [(r.name, r.name) for r in registrations]
        for registration in registrations:
            self.fields[rate_field_name(registration)] = forms.FloatField(
                required=False,
                min_value=0.0,
                max_value=1.0,
                label=f"Rate for {registration.name}",
                widget=forms.NumberInput(
                    attrs={"step": "any", "placeholder": f"{registration.sample_rate:g}", "class": "rate-input"}
                ),
                error_messages={
                    "invalid": f"The rate for {registration.name} must be a number from 0 to 1.",
                    "min_value": f"The rate for {registration.name} must be from 0 to 1.",
                    "max_value": f"The rate for {registration.name} must be from 0 to 1.",
                },
            )

    def rows(self) -> list[tuple[RegisteredScorer, Any, forms.BoundField]]:
        """Each registration with its checkbox and its rate input, for the template."""
        boxes = {box.data["value"]: box for box in self["scorers"]}
        return [(r, boxes[r.name], self[rate_field_name(r)]) for r in self.registrations]

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        start, end = data.get("start"), data.get("end")
        if start and end and start >= end:
            self.add_error("end", "The end must be after the start.")
        return data

    def backfill_arguments(self) -> dict[str, Any]:
        """Keyword arguments of ``start_backfill`` (without the experiment)."""
        data = self.cleaned_data
        by_name = {r.name: r for r in self.registrations}
        chosen = [(name, data.get(rate_field_name(by_name[name]))) for name in data["scorers"]]
        return {"scorers": chosen, "start": data["start"], "end": data["end"]}
