"""Forms of the evaluation run pages: starting a run, adding a run's traces to a labeling session."""

from __future__ import annotations

from typing import Any

from django import forms

from labeling.models import LabelingSession
from traces.models import Experiment, ExperimentKind

from .models import EvaluationDataset

SOURCES = [
    ("dataset", "An evaluation dataset"),
    ("session", "A labeling session's traces"),
    ("filter", "An experiment, with an optional MLflow filter string"),
]


class StartRunForm(forms.Form):
    """What ``start_evaluation_run`` takes; the choices are what the user may run on."""

    source = forms.ChoiceField(choices=SOURCES, widget=forms.RadioSelect, initial="dataset")
    dataset = forms.ModelChoiceField(queryset=EvaluationDataset.objects.none(), required=False, empty_label="—")
    session = forms.ModelChoiceField(queryset=LabelingSession.objects.none(), required=False, empty_label="—")
    experiment = forms.ModelChoiceField(queryset=Experiment.objects.none(), required=False, empty_label="—")
    filter_string = forms.CharField(
        required=False,
        max_length=5000,
        label="Filter string",
        widget=forms.TextInput(attrs={"placeholder": "trace.status = 'OK' AND tag.env = 'prod'"}),
    )
    scorers = forms.MultipleChoiceField(choices=[], widget=forms.CheckboxSelectMultiple)
    name = forms.CharField(required=False, max_length=200, help_text="Empty: what it runs on and the time.")
    app_version = forms.CharField(
        required=False,
        max_length=255,
        label="App version",
        help_text="Empty: the traces' model id when they share one.",
    )

    def __init__(self, *args: Any, scorer_names: list[str], sessions: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["dataset"].queryset = EvaluationDataset.objects.order_by("name")
        self.fields["session"].queryset = sessions.order_by("name")
        self.fields["experiment"].queryset = Experiment.objects.filter(kind=ExperimentKind.TRACES).order_by("name")
        self.fields["scorers"].choices = [(name, name) for name in scorer_names]

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        source = data.get("source")
        needed = {"dataset": "dataset", "session": "session", "filter": "experiment"}.get(source or "")
        if needed and not data.get(needed):
            self.add_error(needed, f"Choose the {needed} to run on.")
        return data

    def run_arguments(self) -> dict[str, Any]:
        """Keyword arguments of ``start_evaluation_run`` (names, as it takes them)."""
        data = self.cleaned_data
        arguments: dict[str, Any] = {
            "scorer_names": list(data["scorers"]),
            "name": data["name"].strip(),
            "app_version": data["app_version"].strip() or None,
        }
        if data["source"] == "dataset":
            arguments["dataset"] = data["dataset"].name
        elif data["source"] == "session":
            arguments["session"] = data["session"].name
        else:
            arguments["experiment"] = data["experiment"].name
            arguments["filter_string"] = data["filter_string"].strip()
        return arguments


class AddToSessionForm(forms.Form):
    session = forms.ModelChoiceField(
        queryset=LabelingSession.objects.none(),
        empty_label="Choose a session…",
        error_messages={"invalid_choice": "Choose a labeling session you manage (open, not archived)."},
    )
    failed = forms.CharField(required=False, max_length=255)

    def __init__(self, *args: Any, sessions: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["session"].queryset = sessions.order_by("name")
