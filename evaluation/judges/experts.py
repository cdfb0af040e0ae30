"""A judge checked against the experts of a labeling session: agreement, Cohen's κ, a confusion matrix, disagreements.

The judge's answers are the Feedback of an evaluation run over the session (the latest finished one
by default, ``start_evaluation_run(session=...)`` makes one); the experts' answer on an item is the
lead's adjudication when there is one, else the reviewers' majority (``labeling.agreement.consensus``;
a single reviewer's answer is the consensus, a tie has none and the item is left out). Both sides are
compared in the question's terms (``labeling.agreement.canonical``): a yes/no judge against a pass/fail
question; a scale judge's score against a number question, or score ≥ threshold against pass/fail; a
category judge's category against a categorical question, or its number against a number question.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from labeling.agreement import canonical, cohen, consensus
from labeling.answers import display_answer
from labeling.copies import on_session_copies
from labeling.models import ADJUDICATION_KEY, COPIED_KEY, InputType, LabelingSession, LabelSchema, ReviewItem
from traces.models import Assessment, AssessmentKind, AssessmentSource

from ..models import CustomJudge, EvaluationRun, OutputKind, RunSource
from ..runs import of_run, scorer_of_feedback
from .custom import MAX_EXAMPLE_TEXT, Definition, Example

RECENT_RUNS = 50


@dataclass
class ExpertAnswer:
    reviewer: str
    answer: str
    comment: str
    adjudicated: bool = False


@dataclass
class Disagreement:
    item: int  # ReviewItem pk
    trace: int  # the item's trace (the session's copy)
    position: int
    source_trace_id: str
    judge_answer: str
    rationale: str
    experts_answer: str
    experts: list[ExpertAnswer]


@dataclass
class Agreement:
    """The judge of one run against the experts on one question; statistics are ``None`` when undefined."""

    run: EvaluationRun
    question: LabelSchema
    items: int = 0  # items with both a judge answer and an experts' answer
    agreed: int = 0
    percent: float | None = None
    kappa: float | None = None
    labels: list[str] = field(default_factory=list)
    matrix: list[list[int]] = field(default_factory=list)  # rows: experts, columns: judge
    disagreements: list[Disagreement] = field(default_factory=list)
    no_consensus: int = 0  # items whose reviewers tie
    judge_missing: int = 0  # items with an experts' answer but no usable judge answer (an error, a bad value)
    notes: list[str] = field(default_factory=list)

    @property
    def rows(self) -> list[tuple[str, list[int]]]:
        return list(zip(self.labels, self.matrix, strict=True))


def judge_runs(session: LabelingSession, judge: str) -> list[EvaluationRun]:
    """The finished runs over this session that ran this judge, newest first (one query)."""
    runs = EvaluationRun.objects.filter(session=session, source_kind=RunSource.SESSION).order_by("-created_at", "-id")
    return [run for run in runs[:RECENT_RUNS] if judge in run.scorer_names]


def version_of(run: EvaluationRun, judge: str) -> dict[str, str]:
    return next((s for s in run.scorers if s.get("name") == judge), {})


def feedback_name(judge: str, question: LabelSchema, builtin_feedback: str | None) -> str:
    """Which of the judge's Feedback answers the question: a custom judge's is its name; a built-in judge's its
    MLflow name; the built-in Guidelines judge gives one per guideline name (the question's name)."""
    if builtin_feedback is None:
        return judge
    return question.name if judge == "Guidelines" else builtin_feedback


def judge_value(question: LabelSchema, value: Any, metadata: dict[str, Any], definition: Definition | None) -> Any:
    """The judge's answer in the question's terms (``canonical``), ``None`` when it cannot be compared."""
    kind = question.input_type
    if definition is not None and definition.effective_output == OutputKind.SCALE and kind == InputType.PASS_FAIL:
        number = canonical(InputType.NUMERIC, value)
        return None if number is None else number >= (definition.pass_threshold or 0)
    if definition is not None and definition.effective_output == OutputKind.CATEGORIES and kind != InputType.NUMERIC:
        value = (metadata or {}).get("category", value)
    return canonical(kind, value)


def shown(question: LabelSchema, value: Any) -> str:
    if question.input_type == InputType.PASS_FAIL and isinstance(value, bool):
        return display_answer(question, value)
    if isinstance(value, float):
        return display_answer(question, value)
    if isinstance(value, tuple):
        return ", ".join(value)
    return str(value)


def _label_order(question: LabelSchema, values: set[Any]) -> list[Any]:
    if question.input_type == InputType.PASS_FAIL:
        return [v for v in (True, False) if v in values] or [True, False]
    known = [canonical(question.input_type, option) for option in question.options or ()]
    order = [v for v in known if v in values]
    return order + sorted((v for v in values if v not in order), key=_sort_key)


def _sort_key(value: Any) -> tuple[int, float, str]:
    """Numbers by size, then everything else by its text."""
    number = isinstance(value, int | float) and not isinstance(value, bool)
    return (0, float(value), "") if number else (1, 0.0, repr(value))


@dataclass
class Statistics:
    items: int
    agreed: int
    percent: float | None
    kappa: float | None
    labels: list[Any]
    matrix: list[list[int]]  # rows: experts, columns: judge, in the order of labels
    notes: list[str]


def statistics(pairs: list[tuple[Any, Any]], question: LabelSchema | None = None) -> Statistics:
    """Agreement, Cohen's κ (``labeling.agreement.cohen``) and the confusion matrix of (experts, judge) pairs."""
    notes = []
    agreed = sum(1 for expert, answer in pairs if expert == answer)
    percent = round(agreed / len(pairs), 4) if pairs else None
    kappa = cohen([e for e, _ in pairs], [a for _, a in pairs]) if pairs else None
    if not pairs:
        notes.append("No item has both a judge answer and an experts' answer yet.")
    elif kappa is None:
        notes.append(
            "Cohen's κ is undefined: fewer than two items, or judge and experts gave one same answer throughout "
            "(chance agreement is 100%)."
        )
    values = {v for pair in pairs for v in pair}
    labels = _label_order(question, values) if question is not None else sorted(values, key=_sort_key)
    index = {label: position for position, label in enumerate(labels)}
    matrix = [[0] * len(labels) for _ in labels]
    for expert, answer in pairs:
        matrix[index[expert]][index[answer]] += 1
    return Statistics(len(pairs), agreed, percent, kappa, labels, matrix, notes)


def agreement(
    run: EvaluationRun,
    session: LabelingSession,
    question: LabelSchema,
    judge: str,
    *,
    builtin_feedback: str | None = None,
    definition: Definition | None = None,
    experts: tuple[dict[int, Any], dict[int, list[ExpertAnswer]], int] | None = None,
) -> Agreement:
    """Three queries (judge Feedback, experts' answers, items); pass ``experts`` (``load_experts``) to share two."""
    result = Agreement(run=run, question=question)
    name = feedback_name(judge, question, builtin_feedback)
    rows = (
        of_run(run)
        .filter(kind=AssessmentKind.FEEDBACK, name=name)
        .annotate(scorer=scorer_of_feedback())
        .filter(scorer=judge)
        .order_by("trace_id", "create_time", "id")
        .values_list("trace_id", "value", "rationale", "error", "metadata")
    )
    judged: dict[int, tuple[Any, str]] = {}
    for trace, value, rationale, error, metadata in rows:
        if trace in judged or error:
            continue
        answer = judge_value(question, value, metadata, definition)
        if answer is not None:
            judged[trace] = (answer, rationale)
    majority, answers, ties = experts if experts is not None else load_experts(session, question)
    result.no_consensus = ties
    pairs = [(trace, expert, judged[trace]) for trace, expert in majority.items() if trace in judged]
    result.judge_missing = sum(1 for trace in majority if trace not in judged)
    stats = statistics([(expert, answer) for _, expert, (answer, _) in pairs], question)
    result.items, result.agreed, result.percent, result.kappa = stats.items, stats.agreed, stats.percent, stats.kappa
    result.matrix, result.notes = stats.matrix, stats.notes
    labels = stats.labels
    result.labels = [shown(question, label) for label in labels]
    items = dict(
        (trace, (pk, position, source))
        for trace, pk, position, source in ReviewItem.objects.filter(session=session).values_list(
            "trace_id", "pk", "position", "source_trace_id_text"
        )
    )
    for trace, expert, (answer, rationale) in sorted(pairs, key=lambda p: items.get(p[0], (0, 0, ""))[1]):
        if expert == answer or trace not in items:
            continue
        pk, position, source = items[trace]
        result.disagreements.append(
            Disagreement(
                pk,
                trace,
                position,
                source,
                shown(question, answer),
                rationale,
                shown(question, expert),
                answers.get(trace, []),
            )
        )
    return result


def load_experts(
    session: LabelingSession, question: LabelSchema
) -> tuple[dict[int, Any], dict[int, list[ExpertAnswer]], int]:
    """Per item trace: the experts' answer (adjudication, else majority), every answer with its comment, and how
    many items tie (one query)."""
    rows = (
        Assessment.objects.filter(
            on_session_copies(session), source_type=AssessmentSource.HUMAN, valid=True, name=question.name
        )
        .exclude(metadata__has_key=COPIED_KEY)
        .order_by("create_time", "id")
        .values_list("trace_id", "source_id", "value", "rationale", "metadata")
    )
    ratings: dict[int, dict[str, Any]] = {}
    adjudicated: dict[int, Any] = {}
    answers: dict[int, dict[tuple[str, bool], ExpertAnswer]] = {}
    for trace, who, value, rationale, metadata in rows:
        answer = canonical(question.input_type, value)
        if answer is None:
            continue
        final = ADJUDICATION_KEY in (metadata or {})
        if final:
            adjudicated[trace] = answer
        else:
            ratings.setdefault(trace, {})[who] = answer
        answers.setdefault(trace, {})[(who, final)] = ExpertAnswer(who, shown(question, answer), rationale, final)
    majority = consensus(ratings, min_ratings=1)
    majority.update(adjudicated)
    ties = sum(1 for trace in ratings if trace not in majority)
    return majority, {trace: list(found.values()) for trace, found in answers.items()}, ties


# ---------------------------------------------------------------- use as example


class ExampleError(ValueError):
    """The experts' answer cannot be an example of this judge; the message is one line."""


def example_verdict(definition: Definition, question: LabelSchema, experts: Any) -> str:
    """The experts' answer (canonical, in the question's terms) as a verdict this judge gives."""
    kind = definition.effective_output
    if kind == OutputKind.YES_NO and isinstance(experts, bool):
        return "yes" if experts else "no"
    if kind == OutputKind.SCALE:
        low, high, threshold = definition.scale_min or 0, definition.scale_max or 0, definition.pass_threshold or 0
        if isinstance(experts, bool):  # pass/fail experts: the threshold, or just below it
            return str(threshold if experts else max(low, threshold - 1))
        if isinstance(experts, float) and experts.is_integer() and low <= experts <= high:
            return str(int(experts))
    if kind == OutputKind.CATEGORIES:
        if isinstance(experts, float):
            found = [c.name for c in definition.categories if c.value is not None and c.value == experts]
            if len(found) == 1:
                return found[0]
        elif str(experts) in definition.verdicts:
            return str(experts)
    if isinstance(experts, str) and experts in definition.verdicts:
        return experts
    raise ExampleError(
        f"the experts' answer “{shown(question, experts)}” is not a verdict this judge gives "
        f"({', '.join(definition.verdicts)})"
    )


def _text(value: Any) -> str:
    if value is None:
        return ""
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)


def example_of(judge: CustomJudge, session: LabelingSession, question: LabelSchema, trace_pk: int) -> Example:
    """A disagreement as a few-shot example: the item's input and output, the experts' answer, their comments."""
    from ..scorers.runner import build_items

    majority, answers, _ = load_experts(session, question)
    if trace_pk not in majority:
        raise ExampleError("this item has no experts' answer (no answer, or the reviewers tie)")
    definition = Definition.of(judge)
    verdict = example_verdict(definition, question, majority[trace_pk])
    items = build_items([trace_pk], with_trace=False)
    if not items:
        raise ExampleError("this item's trace is gone")
    comments = [a.comment.strip() for a in answers.get(trace_pk, []) if a.comment.strip()]
    rationale = " ".join(comments) or f"The expert reviewers answered {shown(question, majority[trace_pk])}."
    inputs, outputs = _text(items[0].inputs)[:MAX_EXAMPLE_TEXT], _text(items[0].outputs)[:MAX_EXAMPLE_TEXT]
    return Example(inputs, outputs, verdict, rationale[:MAX_EXAMPLE_TEXT])
