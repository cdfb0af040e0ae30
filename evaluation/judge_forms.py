"""The custom judge form: text fields parsed into a ``Definition``, checked by ``evaluation.judges.custom.check``."""

from __future__ import annotations

import math
from typing import Any

from django import forms
from django.conf import settings
from django.core.exceptions import ValidationError

from .judges.custom import Category, Definition, Example, check
from .models import CustomJudge, JudgeKind, OutputKind

EXAMPLE_PARTS = ("inputs", "outputs", "verdict", "rationale")


def _lines(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.strip()]


class CustomJudgeForm(forms.Form):
    name = forms.CharField(max_length=100, help_text="Lower-case, e.g. helpfulness: the scorer and Feedback name.")
    description = forms.CharField(required=False, max_length=2000, widget=forms.TextInput)
    kind = forms.ChoiceField(choices=JudgeKind.choices, widget=forms.RadioSelect, initial=JudgeKind.PROMPT)
    guidelines = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 4}),
        help_text="One pass/fail guideline per line (MLflow's Guidelines judge answers yes or no).",
    )
    instructions = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 6}),
        help_text="Use {{ inputs }}, {{ outputs }}, {{ expectations }} and, for a judge that reads the spans, "
        "{{ trace }}.",
    )
    output_kind = forms.ChoiceField(choices=OutputKind.choices, initial=OutputKind.YES_NO, label="Output")
    categories = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text="One per line: a name, or name = number (e.g. formal = 1).",
    )
    scale_min = forms.IntegerField(required=False, label="Lowest score", min_value=-1000, max_value=1000)
    scale_max = forms.IntegerField(required=False, label="Highest score", min_value=-1000, max_value=1000)
    pass_threshold = forms.IntegerField(
        required=False, label="Passes from", min_value=-1000, max_value=1000, help_text="A score at least this passes."
    )
    trace_id = forms.CharField(
        required=False, max_length=64, label="Trace for the preview", help_text="A trace id (or pick a recent one)."
    )

    def __init__(self, *args: Any, judge: CustomJudge | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.judge = judge
        self.definition: Definition | None = None
        self.example_count = settings.JUDGE_MAX_EXAMPLES
        for index in range(self.example_count):
            self.fields[f"example_{index}_inputs"] = forms.CharField(
                required=False, label="Input", widget=forms.Textarea(attrs={"rows": 2})
            )
            self.fields[f"example_{index}_outputs"] = forms.CharField(
                required=False, label="Output", widget=forms.Textarea(attrs={"rows": 2})
            )
            self.fields[f"example_{index}_verdict"] = forms.CharField(
                required=False, max_length=60, label="Expected verdict"
            )
            self.fields[f"example_{index}_rationale"] = forms.CharField(
                required=False, label="Rationale", widget=forms.Textarea(attrs={"rows": 2})
            )

    @classmethod
    def initial_of(cls, judge: CustomJudge) -> dict[str, Any]:
        values: dict[str, Any] = {
            "name": judge.name,
            "description": judge.description,
            "kind": judge.kind,
            "guidelines": "\n".join(judge.guidelines),
            "instructions": judge.instructions,
            "output_kind": judge.output_kind,
            "categories": "\n".join(
                c["name"] if c.get("value") is None else f"{c['name']} = {c['value']:g}" for c in judge.categories
            ),
            "scale_min": judge.scale_min,
            "scale_max": judge.scale_max,
            "pass_threshold": judge.pass_threshold,
        }
        for index, example in enumerate(judge.examples):
            for part in EXAMPLE_PARTS:
                values[f"example_{index}_{part}"] = example.get(part, "")
        return values

    def example_rows(self) -> list[list[Any]]:
        return [[self[f"example_{i}_{part}"] for part in EXAMPLE_PARTS] for i in range(self.example_count)]

    def _categories(self) -> tuple[Category, ...]:
        found = []
        for number, line in enumerate(_lines(self.cleaned_data.get("categories") or ""), 1):
            name, _, value = (part.strip() for part in line.replace(":", "=", 1).partition("="))
            number_value: float | None = None
            if value:
                try:
                    number_value = float(value)
                except ValueError:
                    self.add_error("categories", f"Line {number}: “{value[:40]}” is not a number.")
                    continue
                if not math.isfinite(number_value):
                    self.add_error("categories", f"Line {number}: the value must be a finite number.")
                    continue
            found.append(Category(name, number_value))
        return tuple(found)

    def _examples(self) -> tuple[Example, ...]:
        examples = []
        for index in range(self.example_count):
            parts = {part: (self.cleaned_data.get(f"example_{index}_{part}") or "").strip() for part in EXAMPLE_PARTS}
            if any(parts.values()):
                examples.append(Example(**parts))
        return tuple(examples)

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        if self.errors:
            return data
        kind = data.get("kind") or ""
        definition = Definition(
            name=(data.get("name") or "").strip(),
            kind=kind,
            description=(data.get("description") or "").strip(),
            guidelines=tuple(_lines(data.get("guidelines") or "")),
            instructions=data.get("instructions") or "",
            output_kind=data.get("output_kind") if kind == JudgeKind.PROMPT else OutputKind.YES_NO,
            categories=self._categories(),
            scale_min=data.get("scale_min"),
            scale_max=data.get("scale_max"),
            pass_threshold=data.get("pass_threshold"),
            examples=self._examples(),
        )
        if self.errors:
            return data
        definition = _trimmed(definition)
        try:
            check(definition, pk=self.judge.pk if self.judge is not None else None)
        except ValidationError as error:
            for field, messages in error.message_dict.items():
                for message in messages:
                    self.add_error(field if field in self.fields else None, message)
            return data
        self.definition = definition
        return data


def _trimmed(definition: Definition) -> Definition:
    """Only what the kind uses is stored: a prompt judge keeps no guidelines, a yes/no judge no scale."""
    values = dict(definition.__dict__)
    if definition.kind == JudgeKind.GUIDELINES:
        values.update(instructions="", output_kind=OutputKind.YES_NO)
    else:
        values["guidelines"] = ()
    if values["output_kind"] != OutputKind.CATEGORIES:
        values["categories"] = ()
    if values["output_kind"] != OutputKind.SCALE:
        values.update(scale_min=None, scale_max=None, pass_threshold=None)
    return Definition(**values)
