"""Forms of the manage pages. Validation of meaning lives in services/answers; forms parse and display."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib.auth.models import User

from .models import INPUT_FIELDS, InputType, LabelingSession, LabelSchema, SessionStatus

SETTING_GROUPS = [
    ("Options", ["options"]),
    ("Text limits", ["max_length", "max_count"]),
    ("Number range", ["min_value", "max_value", "integer"]),
    ("Button labels", ["pass_label", "fail_label"]),
]


class OptionsField(forms.CharField):
    """Options typed one per line; becomes a list."""

    # An instruction, not sample values: example options in the box looked like options already typed.
    widget = forms.Textarea(attrs={"rows": 4, "placeholder": "Type one option per line"})

    def to_python(self, value: Any) -> list[str]:  # type: ignore[override]
        text = super().to_python(value) or ""
        return [line.strip() for line in str(text).splitlines() if line.strip() or line]

    def prepare_value(self, value: Any) -> Any:
        return "\n".join(value) if isinstance(value, list) else value


class LabelSchemaForm(forms.ModelForm):
    options = OptionsField(
        required=False,
        help_text="One option per line, for example “very helpful”, “somewhat helpful”, “not helpful”. "
        "Reviewers see them in this order and pick them with the digits 1–9.",
    )

    class Meta:
        model = LabelSchema
        fields = [
            "name",
            "type",
            "title",
            "instruction",
            "enable_comment",
            "input_type",
            "options",
            "max_length",
            "max_count",
            "min_value",
            "max_value",
            "integer",
            "pass_label",
            "fail_label",
        ]
        widgets = {"instruction": forms.Textarea(attrs={"rows": 4})}
        labels = {
            "name": "Name",
            "title": "Question",
            "enable_comment": "Let reviewers add a comment",
            "input_type": "Answer kind",
            "max_length": "Maximum length (characters)",
            "max_count": "Maximum number of items",
            "min_value": "Minimum",
            "max_value": "Maximum",
            "integer": "Whole numbers only",
            "pass_label": "Label for pass",
            "fail_label": "Label for fail",
        }

    def validate_unique(self) -> None:
        """Uniqueness is checked by the service, with a friendlier message."""

    def kind_groups(self) -> list[dict[str, Any]]:
        """Settings grouped by what they configure, each tagged with the answer kinds it applies to."""
        groups = []
        for legend, names in SETTING_GROUPS:
            kinds = [kind for kind in InputType.values if set(INPUT_FIELDS[kind]) & set(names)]
            labels = [InputType(kind).label.lower() for kind in kinds]
            groups.append(
                {
                    "kinds": " ".join(kinds),
                    "label": f"{legend} (for: {', '.join(labels)})",
                    "fields": [self[name] for name in names],
                }
            )
        return groups


class PeopleField(forms.ModelMultipleChoiceField):
    """Users picked by id. An id beyond a 64-bit integer is refused like any unknown id: SQLite
    cannot even compare it (``OverflowError``), where PostgreSQL would just find no one."""

    def _check_values(self, value: Any) -> Any:
        for pk in value:
            text = str(pk).strip()
            digits = text.lstrip("-")
            if digits.isdigit() and (len(digits) > 19 or not -(2**63) <= int(text) < 2**63):
                raise forms.ValidationError(
                    self.error_messages["invalid_choice"], code="invalid_choice", params={"value": text[:30]}
                )
        return super()._check_values(value)


class SessionForm(forms.ModelForm):
    reviewers = PeopleField(
        queryset=User.objects.filter(is_active=True).order_by("username"),
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text="Who labels the items.",
    )
    leads = PeopleField(
        queryset=User.objects.filter(is_active=True).order_by("username"),
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text="Leads manage this session and settle disagreements.",
    )

    class Meta:
        model = LabelingSession
        fields = [
            "name",
            "instructions",
            "status",
            "reviewers_per_item",
            "lease_minutes",
            "blind",
            "assignment_mode",
            "reviewers",
            "leads",
        ]
        widgets = {"instructions": forms.Textarea(attrs={"rows": 4})}
        labels = {"reviewers_per_item": "Reviewers per item", "lease_minutes": "Reserve an opened item for (minutes)"}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.instance.pk is None:
            self.fields["status"].initial = SessionStatus.ACTIVE
        chosen = {s.pk: i + 1 for i, s in enumerate(self.instance.ordered_schemas())} if self.instance.pk else {}
        # The session's questions first, in the order reviewers see them; the others after, by title.
        self.schemas = sorted(
            LabelSchema.objects.all(), key=lambda s: (s.pk not in chosen, chosen.get(s.pk, 0), s.title.lower(), s.pk)
        )
        for schema in self.schemas:
            self.fields[f"schema_{schema.pk}"] = forms.IntegerField(
                required=False,
                min_value=1,
                max_value=99,
                label=schema.title,
                initial=chosen.get(schema.pk),
                widget=forms.NumberInput(attrs={"class": "order-input", "placeholder": "–"}),
            )

    def validate_unique(self) -> None:
        """Uniqueness is checked by the service, with a friendlier message."""

    def schema_rows(self) -> list[tuple[LabelSchema, forms.BoundField]]:
        return [(schema, self[f"schema_{schema.pk}"]) for schema in self.schemas]

    def ordered_schemas(self) -> list[LabelSchema]:
        picked = [
            (self.cleaned_data[f"schema_{s.pk}"], s.name, s)
            for s in self.schemas
            if self.cleaned_data.get(f"schema_{s.pk}")
        ]
        return [schema for _, _, schema in sorted(picked, key=lambda row: (row[0], row[1]))]


MAX_PASTED_TRACE_IDS = 10_000


class TraceIdsForm(forms.Form):
    trace_ids = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 4, "placeholder": "tr-…\ntr-…"}),
        help_text="One trace id per line (or separated by commas).",
    )

    def clean_trace_ids(self) -> list[str]:
        raw = self.cleaned_data["trace_ids"].replace(",", "\n")
        ids = list(dict.fromkeys(line.strip() for line in raw.splitlines() if line.strip()))
        if not ids:
            raise forms.ValidationError("Paste at least one trace id.")
        if len(ids) > MAX_PASTED_TRACE_IDS:
            raise forms.ValidationError(
                f"Paste at most {MAX_PASTED_TRACE_IDS:,} trace ids at a time (this is {len(ids):,})."
            )
        return ids


class AnswerFilterForm(forms.Form):
    question = forms.ChoiceField(required=False)
    value = forms.CharField(required=False, max_length=200)

    def __init__(self, *args: Any, schemas: list[LabelSchema], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["question"].choices = [("", "All questions"), *[(s.name, s.title) for s in schemas]]
