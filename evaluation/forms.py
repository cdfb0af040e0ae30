"""The form that saves a labeling session's labels as an evaluation dataset."""

from __future__ import annotations

from typing import Any

from django import forms
from django.core.exceptions import ValidationError

from .exporters import POLICIES
from .services import NAME_MAX_LENGTH, clean_dataset_name

POLICY_LABELS = {
    "latest": "the latest answer",
    "consensus": "the majority (ties left out)",
    "adjudicated": "the lead's final answer, else the majority",
}
POLICY_CHOICES = [(name, POLICY_LABELS[name]) for name in POLICIES]


class SaveDatasetForm(forms.Form):
    name = forms.CharField(label="Dataset name", max_length=NAME_MAX_LENGTH, required=False)
    policy = forms.ChoiceField(label="When reviewers differ", choices=POLICY_CHOICES, initial="latest", required=False)
    include_feedback = forms.BooleanField(label="add feedback as tags", required=False)

    def __init__(self, *args: Any, default_name: str = "", **kwargs: Any) -> None:
        kwargs.setdefault("initial", {"name": default_name[:NAME_MAX_LENGTH]})
        kwargs.setdefault("auto_id", "dataset_%s")  # the form sits on the session dashboard beside others
        super().__init__(*args, **kwargs)
        self.default_name = default_name
        self.fields["name"].widget.attrs["maxlength"] = NAME_MAX_LENGTH

    def clean_policy(self) -> str:
        return self.cleaned_data["policy"] or "latest"

    def clean_name(self) -> str:
        try:
            return clean_dataset_name(self.cleaned_data["name"].strip() or self.default_name)
        except ValidationError as exc:
            raise ValidationError(exc.message_dict["name"]) from None


class DatasetFromTracesForm(forms.Form):
    """The dataset name for "save these traces as a dataset"; the traces come from the explorer's filters."""

    name = forms.CharField(label="Dataset name", max_length=NAME_MAX_LENGTH, required=False)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("auto_id", "dataset_%s")
        super().__init__(*args, **kwargs)
        self.fields["name"].widget.attrs.update({"maxlength": NAME_MAX_LENGTH, "list": "dataset-names"})

    def clean_name(self) -> str:
        try:
            return clean_dataset_name(self.cleaned_data["name"])
        except ValidationError as exc:
            raise ValidationError(exc.message_dict["name"]) from None
