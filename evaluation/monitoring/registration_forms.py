"""Forms of the registered-scorer pages: register, start (or restart), update.

Sample rates are percentages on the pages (0–100, as the table shows them) and fractions (0–1) in
the services and on the command line. The filter string box is the trace explorer's: its
examples, and its error pointing at the bad position.
"""

from __future__ import annotations

from typing import Any

from django import forms

from evaluation.scorers.catalogue import Catalogue, ScorerInfo
from traces.search import FilterError, parse_filter
from traces.search.form import FILTER_PLACEHOLDER, SEARCH_EXAMPLES
from traces.search.grammar import MAX_FILTER_LENGTH

from .registrations import RegistrationError

RATE_HELP = "Percent of new traces to score, 0–100 (decimals allowed: 0.5 is one trace in 200)."
CUSTOM_JUDGE_MODULE = "custom judge"


def percent_to_rate(percent: float) -> float:
    return percent / 100.0


def rate_to_percent(rate: float) -> float:
    return round(rate * 100.0, 4)


def rate_field(*, required: bool, help_text: str = RATE_HELP) -> forms.FloatField:
    """A percentage; Django's FloatField already refuses NaN and infinity."""
    return forms.FloatField(
        required=required,
        min_value=0,
        max_value=100,
        label="Sample rate (%)",
        help_text=help_text,
        widget=forms.NumberInput(attrs={"step": "any", "min": "0", "max": "100", "class": "rate-input"}),
        error_messages={
            "invalid": "Give the sample rate as a number of percent, from 0 to 100.",
            "min_value": "The sample rate is at least 0 %%.",
            "max_value": "The sample rate is at most 100 %%.",
        },
    )


def filter_field() -> forms.CharField:
    return forms.CharField(
        required=False,
        max_length=MAX_FILTER_LENGTH,
        label="Filter",
        strip=True,
        widget=forms.TextInput(
            attrs={"placeholder": FILTER_PLACEHOLDER, "spellcheck": "false", "autocomplete": "off", "class": "mono"}
        ),
        help_text="Optional: only traces matching this MLflow filter string are sampled.",
    )


class FilterStringForm(forms.Form):
    """A form with the explorer's filter box (``traces/_search_box.html`` reads these attributes)."""

    search_examples = SEARCH_EXAMPLES

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.filter_error: FilterError | None = None

    def clean_filter_string(self) -> str:
        text = self.cleaned_data.get("filter_string") or ""
        try:
            parse_filter(text)
        except FilterError as error:
            self.filter_error = error
            raise forms.ValidationError(f"Bad filter string: {error}", code="bad_filter") from None
        return text

    @property
    def error_marker(self) -> tuple[str, str, str] | None:
        """The filter text split around the bad position: (before, at, after)."""
        error = self.filter_error
        text = (self.data.get(self.add_prefix("filter_string")) or "").strip() if self.is_bound else ""
        if error is None or not error.position or not text:
            return None
        index = min(error.position - 1, len(text))
        return text[:index], text[index : index + 1] or " ", text[index + 1 :]

    def add_registration_error(self, error: RegistrationError) -> None:
        """A service's refusal, on the field it is about (else on the whole form)."""
        message = str(error)
        text = message.lower()
        if text.startswith("bad filter string"):
            field = "filter_string"
        elif "sample rate" in text:
            field = "sample_rate"
        elif "registered as" in text or "registration name" in text:
            field = "name"
        elif "scorer" in text and ("unknown" in text or "not available" in text or "failed to import" in text):
            field = "scorer"
        else:
            field = None
        self.add_error(field if field in self.fields else None, message[:1].upper() + message[1:])


class ScorerSelect(forms.Select):
    """Options of scorers that cannot run now (a judge without an endpoint) are shown, disabled, with the reason."""

    def __init__(self, *args: Any, unavailable: dict[str, str] | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.unavailable = unavailable or {}

    def create_option(self, name: str, value: Any, label: Any, selected: Any, index: Any, **kwargs: Any) -> Any:
        option = super().create_option(name, value, label, selected, index, **kwargs)
        reason = self.unavailable.get(str(value))
        if reason:
            option["attrs"]["disabled"] = True
            option["attrs"]["title"] = reason
        return option


def scorer_choices(catalogue: Catalogue) -> tuple[list[Any], dict[str, str]]:
    """The catalogue as grouped choices (code scorers, built-in judges, custom judges) and the unavailable ones."""

    def label(info: ScorerInfo) -> str:
        return f"{info.name} — unavailable: {info.unavailable}" if info.unavailable else info.name

    code = [(info.name, label(info)) for info in sorted(catalogue.scorers.values(), key=lambda i: i.name)]
    judges = sorted(catalogue.judges.values(), key=lambda i: i.name)
    builtin = [(i.name, label(i)) for i in judges if i.module != CUSTOM_JUDGE_MODULE]
    custom = [(i.name, label(i)) for i in judges if i.module == CUSTOM_JUDGE_MODULE]
    groups: list[Any] = [("", "Choose a scorer…")]
    for title, options in (("Code scorers", code), ("Built-in judges", builtin), ("Custom judges", custom)):
        if options:
            groups.append((title, options))
    unavailable = {info.name: info.unavailable for info in judges if info.unavailable}
    return groups, unavailable


class RegisterScorerForm(FilterStringForm):
    name = forms.CharField(
        max_length=100,
        label="Name",
        help_text="Unique in the experiment; its verdicts are Feedback of this name. Letters, digits, _ . -",
        widget=forms.TextInput(attrs={"autocomplete": "off", "spellcheck": "false"}),
    )
    scorer = forms.ChoiceField(
        label="Scorer",
        error_messages={"invalid_choice": "Unknown scorer %(value)s: choose one of the catalogue."},
    )
    sample_rate = rate_field(
        required=False, help_text="Percent of new traces to score, 0–100; empty or 0 registers without sampling."
    )
    filter_string = filter_field()

    def __init__(self, *args: Any, catalogue: Catalogue, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        choices, unavailable = scorer_choices(catalogue)
        field = self.fields["scorer"]
        field.choices = choices
        field.widget = ScorerSelect(choices=field.choices, unavailable=unavailable)

    def rate(self) -> float:
        percent = self.cleaned_data.get("sample_rate")
        return percent_to_rate(percent) if percent is not None else 0.0


class StartScorerForm(FilterStringForm):
    """Start, or restart after a stop: a rate above 0 and the filter (kept as it was unless changed)."""

    sample_rate = rate_field(required=True)
    filter_string = filter_field()

    def rate(self) -> float:
        return percent_to_rate(self.cleaned_data["sample_rate"])


class UpdateScorerForm(FilterStringForm):
    """A new rate and/or filter: a rate of 0 stops the scorer, above 0 starts it."""

    sample_rate = rate_field(required=False, help_text=RATE_HELP + " Empty: unchanged; 0 stops it.")
    filter_string = filter_field()

    def rate(self) -> float | None:
        percent = self.cleaned_data.get("sample_rate")
        return percent_to_rate(percent) if percent is not None else None
