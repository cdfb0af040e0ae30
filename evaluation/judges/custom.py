"""Custom judges defined in the app: their definition, its checks, the MLflow judge it builds, and its exact prompt.

A *guidelines* judge is MLflow's ``Guidelines`` judge over its guidelines (yes/no). A *prompt* judge is
``mlflow.genai.judges.make_judge`` over its instruction template (``{{ inputs }}``, ``{{ outputs }}``,
``{{ expectations }}``, ``{{ trace }}``) with one output kind: yes/no; named categories, each with an
optional number (the Feedback's value is the number when there is one, the category's name is in
its metadata); or an integer scale with a pass threshold, which gives two Feedback: the score (named
after the judge) and ``<name>_pass`` (yes/no). Few-shot examples (up to ``JUDGE_MAX_EXAMPLES``) are
appended to the instructions (to a guidelines judge: as one more guideline). The digest derives from
the definition and the model, so an edited judge runs as a new scorer version.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from django.conf import settings
from django.core.exceptions import ValidationError

from evaluation.models import CustomJudge, JudgeKind, OutputKind
from evaluation.scorers.catalogue import ScorerInfo

from . import endpoint

MODULE = "custom judge"
TEMPLATE_VARIABLES = ("inputs", "outputs", "expectations", "trace")
VARIABLE = re.compile(r"\{\{\s*(.*?)\s*\}\}")
NAME = re.compile(r"[a-z][a-z0-9_]{0,99}")
CATEGORY = re.compile(r"[A-Za-z0-9_.-]{1,60}")
PASS_SUFFIX = "_pass"
MAX_TEXT = 20_000
MAX_EXAMPLE_TEXT = 5_000
MAX_SCALE_WIDTH = 100
YES_NO = ("yes", "no")


@dataclass(frozen=True)
class Example:
    inputs: str = ""
    outputs: str = ""
    verdict: str = ""
    rationale: str = ""


@dataclass(frozen=True)
class Category:
    name: str
    value: float | None = None


@dataclass(frozen=True)
class Definition:
    """A custom judge's definition as plain data (from the model, a form, or a new version being made)."""

    name: str
    kind: str
    description: str = ""
    guidelines: tuple[str, ...] = ()
    instructions: str = ""
    output_kind: str = OutputKind.YES_NO
    categories: tuple[Category, ...] = ()
    scale_min: int | None = None
    scale_max: int | None = None
    pass_threshold: int | None = None
    examples: tuple[Example, ...] = field(default=())

    @classmethod
    def of(cls, judge: CustomJudge) -> Definition:
        return cls.from_fields(judge.snapshot())

    @classmethod
    def from_fields(cls, fields: dict[str, Any]) -> Definition:
        """A definition from ``CustomJudge.snapshot()`` (or ``fields()``): what versions and pins store."""
        return cls(
            name=fields["name"],
            kind=fields["kind"],
            description=fields.get("description") or "",
            guidelines=tuple(fields.get("guidelines") or ()),
            instructions=fields.get("instructions") or "",
            output_kind=fields.get("output_kind") or OutputKind.YES_NO,
            categories=tuple(Category(c["name"], c.get("value")) for c in fields.get("categories") or ()),
            scale_min=fields.get("scale_min"),
            scale_max=fields.get("scale_max"),
            pass_threshold=fields.get("pass_threshold"),
            examples=tuple(Example(**e) for e in fields.get("examples") or ()),
        )

    def fields(self) -> dict[str, Any]:
        """The model's fields for this definition (what ``CustomJudge.snapshot`` compares)."""
        return {
            "name": self.name,
            "description": self.description,
            "kind": self.kind,
            "guidelines": list(self.guidelines),
            "instructions": self.instructions,
            "output_kind": self.output_kind,
            "categories": [asdict(c) for c in self.categories],
            "scale_min": self.scale_min,
            "scale_max": self.scale_max,
            "pass_threshold": self.pass_threshold,
            "examples": [asdict(e) for e in self.examples],
        }

    @property
    def is_prompt(self) -> bool:
        return self.kind == JudgeKind.PROMPT

    @property
    def effective_output(self) -> str:
        return self.output_kind if self.is_prompt else OutputKind.YES_NO

    @property
    def variables(self) -> tuple[str, ...]:
        """The template variables it reads, in the order of ``TEMPLATE_VARIABLES``."""
        if not self.is_prompt:
            return ("inputs", "outputs")
        used = set(VARIABLE.findall(self.instructions))
        return tuple(name for name in TEMPLATE_VARIABLES if name in used)

    @property
    def verdicts(self) -> tuple[str, ...]:
        """The answers it may give, as text (the expected verdict of an example is one of them)."""
        if self.effective_output == OutputKind.CATEGORIES:
            return tuple(c.name for c in self.categories)
        if self.effective_output == OutputKind.SCALE and self.scale_min is not None and self.scale_max is not None:
            return tuple(str(n) for n in range(self.scale_min, self.scale_max + 1))
        return YES_NO

    def with_example(self, example: Example) -> Definition:
        return Definition(**{**self.__dict__, "examples": (*self.examples, example)})


# ---------------------------------------------------------------- checks


def _add(errors: dict[str, list[str]], name: str, message: str) -> None:
    errors.setdefault(name, []).append(message)


def taken_names() -> set[str]:
    """Names of the built-in judges (class and Feedback names) and of the scorer modules' scorers."""
    from evaluation.scorers.catalogue import ScorerModuleError, _snake, import_scorer_module, scorers_in

    from .builtin import BUILTIN_JUDGES

    names = {spec.name.lower() for spec in BUILTIN_JUDGES} | {_snake(spec.name) for spec in BUILTIN_JUDGES}
    for dotted in settings.SCORER_MODULES:
        try:
            names |= {scorer.name.lower() for scorer in scorers_in(import_scorer_module(dotted))}
        except ScorerModuleError:
            continue
    return names


def check(definition: Definition, *, pk: int | None = None) -> None:
    """Every problem of a definition at once, as a ``ValidationError`` by field; nothing when it is fine."""
    errors: dict[str, list[str]] = {}
    _check_name(definition, pk, errors)
    if definition.kind not in JudgeKind.values:
        _add(errors, "kind", "Choose a guidelines judge or a prompt judge.")
    elif definition.is_prompt:
        _check_instructions(definition, errors)
        _check_output(definition, errors)
    else:
        _check_guidelines(definition, errors)
    _check_examples(definition, errors)
    if not errors and definition.is_prompt:
        try:
            build_scorer(definition, "openai:/check")
        except Exception as error:  # MLflow's own checks of the instructions
            _add(errors, "instructions", f"MLflow refuses these instructions: {' '.join(str(error).split())[:500]}")
    if errors:
        raise ValidationError(errors)


def _check_name(definition: Definition, pk: int | None, errors: dict[str, list[str]]) -> None:
    name = definition.name
    if not NAME.fullmatch(name):
        message = "Use lower-case letters, digits and _ starting with a letter (at most 100): it is the Feedback name."
        _add(errors, "name", message)
        return
    if name.endswith(PASS_SUFFIX) and definition.output_kind == OutputKind.SCALE:
        _add(errors, "name", f"A scale judge's name cannot end in {PASS_SUFFIX}: that is its pass/fail Feedback.")
    if CustomJudge.objects.filter(name=name).exclude(pk=pk).exists():
        _add(errors, "name", f"A custom judge named “{name}” already exists.")
    elif name in taken_names():
        _add(errors, "name", f"“{name}” is already the name of a scorer or a built-in judge.")


def _check_guidelines(definition: Definition, errors: dict[str, list[str]]) -> None:
    if not definition.guidelines:
        _add(errors, "guidelines", "Give at least one guideline (one per line).")
    for number, text in enumerate(definition.guidelines, 1):
        if len(text) > 2_000:
            _add(errors, "guidelines", f"Guideline {number} is longer than 2000 characters.")


def _check_instructions(definition: Definition, errors: dict[str, list[str]]) -> None:
    text = definition.instructions
    if not text.strip():
        _add(errors, "instructions", "Write the judge's instructions.")
        return
    if len(text) > MAX_TEXT:
        _add(errors, "instructions", f"The instructions are longer than {MAX_TEXT} characters.")
    allowed = ", ".join(f"{{{{ {name} }}}}" for name in TEMPLATE_VARIABLES)
    unknown = [name for name in dict.fromkeys(VARIABLE.findall(text)) if name not in TEMPLATE_VARIABLES]
    for name in unknown:
        _add(errors, "instructions", f"Unknown template variable {{{{ {name[:60]} }}}}: use {allowed}.")
    if not unknown and not definition.variables:
        _add(errors, "instructions", f"The instructions must use at least one of {allowed}.")


def _check_output(definition: Definition, errors: dict[str, list[str]]) -> None:
    kind = definition.output_kind
    if kind not in OutputKind.values:
        _add(errors, "output_kind", "Choose yes/no, named categories or an integer scale.")
    elif kind == OutputKind.CATEGORIES:
        names = [c.name for c in definition.categories]
        if len(names) < 2:
            _add(errors, "categories", "Give at least two categories, one per line (name, or name = number).")
        for category in definition.categories:
            if not CATEGORY.fullmatch(category.name):
                _add(errors, "categories", f"“{category.name[:60]}” is not a category name (letters, digits, _ . -).")
            if category.value is not None and not math.isfinite(category.value):
                _add(errors, "categories", f"The value of “{category.name}” must be a finite number.")
        for name in sorted({n for n in names if names.count(n) > 1}):
            _add(errors, "categories", f"The category “{name}” is given twice.")
    elif kind == OutputKind.SCALE:
        low, high, threshold = definition.scale_min, definition.scale_max, definition.pass_threshold
        if low is None or high is None:
            _add(errors, "scale_min", "Give the lowest and the highest score of the scale, e.g. 1 and 5.")
        elif low >= high:
            _add(errors, "scale_max", "The highest score must be above the lowest.")
        elif high - low > MAX_SCALE_WIDTH:
            _add(errors, "scale_max", f"A scale spans at most {MAX_SCALE_WIDTH} steps.")
        elif threshold is None or not low <= threshold <= high:
            _add(errors, "pass_threshold", f"The pass threshold must be a score from {low} to {high}.")


def _check_examples(definition: Definition, errors: dict[str, list[str]]) -> None:
    limit = settings.JUDGE_MAX_EXAMPLES
    if len(definition.examples) > limit:
        _add(errors, "examples", f"At most {limit} examples (JUDGE_MAX_EXAMPLES); this has {len(definition.examples)}.")
        return
    verdicts = definition.verdicts
    for number, example in enumerate(definition.examples, 1):
        if not (example.inputs.strip() or example.outputs.strip()):
            _add(errors, "examples", f"Example {number}: give its input or its output.")
        if example.verdict not in verdicts:
            shown = ", ".join(verdicts) if len(verdicts) <= 12 else f"{verdicts[0]} … {verdicts[-1]}"
            _add(errors, "examples", f"Example {number}: the expected verdict must be one of {shown}.")
        if max(len(example.inputs), len(example.outputs), len(example.rationale)) > MAX_EXAMPLE_TEXT:
            _add(errors, "examples", f"Example {number}: each text is at most {MAX_EXAMPLE_TEXT} characters.")


# ---------------------------------------------------------------- instructions


def _literal(text: str) -> str:
    """Example text as it goes into a template: ``{{`` would be read as a template variable."""
    return text.replace("{{", "{ {").replace("}}", "} }")


def examples_block(definition: Definition) -> str:
    if not definition.examples:
        return ""
    parts = ["Examples judged by expert reviewers (judge new cases the way they did):"]
    for number, example in enumerate(definition.examples, 1):
        lines = [f"Example {number}"]
        if example.inputs.strip():
            lines.append(f"Input: {_literal(example.inputs.strip())}")
        if example.outputs.strip():
            lines.append(f"Output: {_literal(example.outputs.strip())}")
        lines.append(f"Expected result: {example.verdict}")
        if example.rationale.strip():
            lines.append(f"Rationale: {_literal(example.rationale.strip())}")
        parts.append("\n".join(lines))
    return "\n\n".join(parts)


def full_instructions(definition: Definition) -> str:
    """A prompt judge's instructions as MLflow gets them: the template, the answer's form, then the examples."""
    parts = [definition.instructions.strip()]
    if definition.output_kind == OutputKind.CATEGORIES:
        parts.append("Answer with exactly one of these categories: " + ", ".join(definition.verdicts) + ".")
    elif definition.output_kind == OutputKind.SCALE:
        parts.append(f"Answer with one integer score from {definition.scale_min} to {definition.scale_max}.")
    block = examples_block(definition)
    if block:
        parts.append(block)
    return "\n\n".join(parts)


def full_guidelines(definition: Definition) -> list[str]:
    """A guidelines judge's guidelines as MLflow gets them (the examples as one more)."""
    block = examples_block(definition)
    return [*definition.guidelines, *([block] if block else [])]


def _value_type(definition: Definition) -> Any:
    if definition.output_kind == OutputKind.CATEGORIES:
        return Literal[tuple(definition.verdicts)]  # type: ignore[valid-type]
    if definition.output_kind == OutputKind.SCALE:
        return int
    return Literal["yes", "no"]


# ---------------------------------------------------------------- the scorer


class CustomJudgeScorer:
    """What the runner calls (``run``) for a custom judge; MLflow's judge does the request."""

    aggregations = None
    timeout = None

    def __init__(self, definition: Definition, model: str) -> None:
        self.definition = definition
        self.name = definition.name
        self.model = model
        if definition.is_prompt:
            from mlflow.genai.judges import make_judge

            self.judge: Any = make_judge(
                name=definition.name,
                instructions=full_instructions(definition),
                model=model,
                description=definition.description or None,
                feedback_value_type=_value_type(definition),
            )
        else:
            from mlflow.genai.scorers import Guidelines

            self.judge = Guidelines(name=definition.name, guidelines=full_guidelines(definition), model=model)

    def arguments(self, *, inputs: Any, outputs: Any, expectations: Any, trace: Any) -> dict[str, Any]:
        given = {"inputs": inputs, "outputs": outputs, "expectations": expectations or {}, "trace": trace}
        return {name: given[name] for name in self.definition.variables}

    def run(self, *, inputs: Any = None, outputs: Any = None, expectations: Any = None, trace: Any = None) -> Any:
        feedback = self.judge(**self.arguments(inputs=inputs, outputs=outputs, expectations=expectations, trace=trace))
        return shape(self.definition, feedback)

    def messages(self, *, inputs: Any, outputs: Any, expectations: Any, trace: Any) -> list[tuple[str, str]]:
        """The exact messages the judge sends first for these arguments (role, content)."""
        if not self.definition.is_prompt:
            from mlflow.genai.judges.prompts.guidelines import get_prompt
            from mlflow.genai.utils.trace_utils import parse_inputs_to_str, parse_outputs_to_str

            context = {"request": parse_inputs_to_str(inputs), "response": parse_outputs_to_str(outputs)}
            return [("user", get_prompt(full_guidelines(self.definition), context))]
        given = self.arguments(inputs=inputs, outputs=outputs, expectations=expectations, trace=trace)
        with_trace = "trace" in self.definition.variables
        system = self.judge._build_system_message(with_trace)
        user = self.judge._build_user_message(
            given.get("inputs"), given.get("outputs"), given.get("expectations"), None
        )
        return [("system", system), ("user", user)]

    def digest(self) -> str:
        return digest(self.definition, self.model)


def digest(definition: Definition, model: str) -> str:
    payload = json.dumps({"definition": definition.fields(), "model": model}, sort_keys=True, default=str)
    return "sha256:" + hashlib.sha256(payload.encode()).hexdigest()


def _failed(feedback: Any, code: str, message: str) -> Any:
    from mlflow.entities import AssessmentError, Feedback

    error = AssessmentError(error_code=code, error_message=message)
    return Feedback(
        name=feedback.name,
        error=error,
        source=feedback.source,
        rationale=feedback.rationale,
        metadata=feedback.metadata,
    )


def shape(definition: Definition, feedback: Any) -> Any:
    """The judge's Feedback in the output kind's form; an answer outside it is an error Feedback (``BAD_VERDICT``)."""
    from mlflow.entities import Feedback

    if getattr(feedback, "error", None) is not None:
        return feedback
    value = feedback.value
    text = str(getattr(value, "value", value)).strip()
    kind = definition.effective_output
    if kind == OutputKind.YES_NO:
        if text.lower() not in YES_NO:
            return _failed(feedback, "BAD_VERDICT", f"the judge answered {text[:100]!r}, not yes or no")
        feedback.value = text.lower()
        return feedback
    if kind == OutputKind.CATEGORIES:
        found = next((c for c in definition.categories if c.name == text), None)
        if found is None:
            shown = ", ".join(definition.verdicts)
            return _failed(feedback, "BAD_VERDICT", f"the judge answered {text[:100]!r}, not one of {shown}")
        feedback.value = found.value if found.value is not None else found.name
        feedback.metadata = {**(feedback.metadata or {}), "category": found.name}
        return feedback
    try:
        score = int(text) if re.fullmatch(r"-?\d+", text) else None
    except ValueError:
        score = None
    low, high, threshold = definition.scale_min or 0, definition.scale_max or 0, definition.pass_threshold or 0
    if score is None or not low <= score <= high:
        return _failed(
            feedback, "BAD_VERDICT", f"the judge answered {text[:100]!r}, not an integer from {low} to {high}"
        )
    feedback.value = score
    passes = score >= threshold
    passed = Feedback(
        name=f"{definition.name}{PASS_SUFFIX}",
        value="yes" if passes else "no",
        rationale=f"score {score} {'≥' if passes else '<'} pass threshold {threshold}. {feedback.rationale or ''}",
        source=feedback.source,
        metadata={**(feedback.metadata or {}), "score": str(score), "threshold": str(threshold)},
    )
    return [feedback, passed]


def build_scorer(definition: Definition, model: str) -> CustomJudgeScorer:
    return CustomJudgeScorer(definition, model)


def reads(definition: Definition) -> str:
    if not definition.is_prompt:
        return f"the request and the response; {len(definition.guidelines)} guideline(s) (yes/no)"
    words = {OutputKind.YES_NO: "yes/no", OutputKind.CATEGORIES: "one of " + ", ".join(definition.verdicts)}
    answer = words.get(definition.output_kind) or (
        f"a score {definition.scale_min}–{definition.scale_max}, pass from {definition.pass_threshold}"
    )
    return f"{', '.join(definition.variables)} → {answer}"


def describe(judge: CustomJudge, model_uri: str, configured: bool) -> ScorerInfo:
    return describe_definition(Definition.of(judge), model_uri, configured, module=f"{MODULE} v{judge.version}")


def describe_definition(
    definition: Definition, model_uri: str, configured: bool, *, module: str = MODULE
) -> ScorerInfo:
    """The catalogue entry of a definition (saved or not: "run once" scores an unsaved one)."""
    common: dict[str, Any] = {
        "name": definition.name,
        "module": module,
        "arguments": definition.variables,
        "aggregations": (),
        "docstring": definition.description or reads(definition),
        "kind": "judge",
        "reads": reads(definition),
    }
    if not configured:
        return ScorerInfo(**common, digest="", unavailable=endpoint.NOT_CONFIGURED)
    try:
        scorer = build_scorer(definition, model_uri)
    except Exception as error:  # a definition MLflow no longer takes: listed, with the reason
        return ScorerInfo(**common, digest="", unavailable=f"MLflow refuses this judge: {error}"[:300])
    return ScorerInfo(**common, digest=scorer.digest(), scorer=scorer)


def pinned_judge(pin: dict[str, Any]) -> ScorerInfo:
    """The catalogue entry of a custom judge as it was pinned (``{"custom_judge", "version", "definition"}``)."""
    current = endpoint.current()
    model_uri = current.model_uri if current.configured else "openai:/(JUDGE_MODEL not set)"
    definition = Definition.from_fields(pin["definition"])
    return describe_definition(definition, model_uri, current.configured, module=f"{MODULE} v{pin['version']}")


def pin_of(name: str) -> dict[str, Any]:
    """The custom judge ``name``'s current version, to pin a registration to ({} when it is not a custom judge)."""
    judge = CustomJudge.objects.filter(name=name).first()
    if judge is None:
        return {}
    return {"custom_judge": judge.pk, "version": judge.version, "definition": judge.snapshot()}


def custom_judges() -> dict[str, ScorerInfo]:
    """The custom judges by name (one query); without an endpoint, marked unavailable."""
    current = endpoint.current()
    model_uri = current.model_uri if current.configured else "openai:/(JUDGE_MODEL not set)"
    return {judge.name: describe(judge, model_uri, current.configured) for judge in CustomJudge.objects.all()}
