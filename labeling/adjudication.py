"""Disagreements between reviewers and the lead's final answers that settle them.

A final answer is an authoritative HUMAN assessment (``metadata.adjudicated``) that overrides
the reviewers' answers on that question (``metadata.overrides_all``); their answers are kept.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson
from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.db.models import Count, QuerySet
from django.utils import timezone

from traces.models import Assessment, AssessmentSource

from .access import can_manage
from .answers import answer_to_form_value, display_answer, is_blank, parse_answer
from .claims import require_open
from .copies import AnyOf, on_session_copies
from .models import ADJUDICATION_KEY, COPIED_KEY, Adjudication, LabelingSession, LabelSchema, ReviewItem


def session_answers(session: LabelingSession | None = None) -> QuerySet[Assessment]:
    """Valid human answers given in labeling sessions (not the ones copied in with the traces)."""
    answers = Assessment.objects.filter(source_type=AssessmentSource.HUMAN, valid=True).exclude(
        metadata__has_key=COPIED_KEY
    )
    if session is not None:
        answers = answers.filter(on_session_copies(session))
    return answers


def canonical(value: Any) -> str:
    """Values compared as canonical JSON (lists of choices as sets)."""
    if isinstance(value, list):
        value = sorted(map(str, value))
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()


def reviewer_answers(items: Iterable[int]) -> dict[int, dict[str, list[Assessment]]]:
    """Current reviewer answers (not adjudications) per item and question, in one query."""
    grouped: dict[int, dict[str, list[Assessment]]] = defaultdict(lambda: defaultdict(list))
    rows = (
        session_answers()
        .filter(trace__review_item__in=list(items))
        .exclude(metadata__has_key=ADJUDICATION_KEY)
        .select_related("trace__review_item")
        .order_by("create_time", "id")
    )
    for assessment in rows:
        grouped[assessment.trace.review_item.pk][assessment.name].append(assessment)
    return grouped


def disagreements(session: LabelingSession) -> dict[int, list[str]]:
    """Items (by id) where reviewers gave different answers, with the questions they disagree on.

    Two queries whatever the session's size: the answered items' answer values (no full rows),
    then the ids of the items that split.
    """
    names = {s.name for s in session.ordered_schemas()}
    answered = session.items.filter(submitted_count__gte=2)
    rows = (
        session_answers()
        .filter(AnyOf("trace_id", answered.order_by().values("trace_id")), name__in=list(names))
        .exclude(metadata__has_key=ADJUDICATION_KEY)
        .values_list("trace_id", "name", "value")
    )
    values: dict[int, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
    for trace_id, name, value in rows:
        values[trace_id][name].add(canonical(value))
    split = {t: sorted(n for n, seen in by_name.items() if len(seen) > 1) for t, by_name in values.items()}
    split = {t: names_ for t, names_ in split.items() if names_}
    items = answered.filter(trace_id__in=list(split)).values_list("trace_id", "pk")
    return {pk: split[trace_id] for trace_id, pk in items}


def disagreement_count(session: LabelingSession, names: Iterable[str]) -> int:
    """How many items ``disagreements`` would list, counted in one SQL query without loading answers.

    Answers are compared as stored JSON: the app stores each kind in one canonical form (a list of
    choices in the options' order), so this equals the per-value comparison there.
    """
    # Only the answered items' copies, not the whole session's: one short index lookup.
    split = (
        session_answers()
        .filter(name__in=list(names))
        .filter(AnyOf("trace_id", session.items.filter(submitted_count__gte=2).order_by().values("trace_id")))
        .exclude(metadata__has_key=ADJUDICATION_KEY)
        .values("trace_id", "name")
        .annotate(distinct_values=Count("value", distinct=True))
        .filter(distinct_values__gt=1)
        .values("trace_id")
    )
    return session.items.filter(trace_id__in=split).count()


def adjudicated_names(item: ReviewItem) -> set[str]:
    return set(item.adjudications.values_list("schema__name", flat=True))


def adjudication_queue(session: LabelingSession) -> list[tuple[ReviewItem, list[str], set[str]]]:
    """Items with disagreements, each with the split questions and those already settled."""
    split = disagreements(session)
    items = session.items.filter(pk__in=split).order_by("position").prefetch_related("adjudications__schema")
    return [(item, split[item.pk], {a.schema.name for a in item.adjudications.all()}) for item in items]


# ---------------------------------------------------------------- the adjudication form


@dataclass(slots=True)
class ReviewerAnswer:
    reviewer: str
    value: str  # as the question's own labels show it
    rationale: str


@dataclass(slots=True)
class AdjudicationQuestion:
    """One question on the adjudication page: the reviewers' answers and what the form starts with."""

    schema: LabelSchema
    answers: list[ReviewerAnswer]
    split: bool  # the reviewers disagree
    value: Any = None  # the form's starting value: the final answer, else the answer all reviewers gave
    prefilled_from_agreement: bool = False
    final: str | None = None  # the final answer already saved, as displayed
    final_by: str = ""
    errors: list[str] = field(default_factory=list)


def adjudication_questions(
    *,
    session: LabelingSession,
    item: ReviewItem,
    raw_values: Mapping[str, Any] | None = None,
    errors: Mapping[str, list[str]] | None = None,
) -> list[AdjudicationQuestion]:
    """The form's questions. Answers all reviewers agreed on are filled in, so the lead only settles splits.

    After a refused POST, ``raw_values`` (what the lead sent) wins over both.
    """
    answers = reviewer_answers([item.pk]).get(item.pk, {})
    finals = {a.schema.name: a.assessment for a in item.adjudications.select_related("assessment", "schema")}
    questions = []
    for schema in session.ordered_schemas():
        given = answers.get(schema.name, [])
        distinct = {canonical(a.value) for a in given}
        final = finals.get(schema.name)
        final_valid = final is not None and final.valid
        question = AdjudicationQuestion(
            schema=schema,
            answers=[ReviewerAnswer(a.source_id, display_answer(schema, a.value), a.rationale) for a in given],
            split=len(distinct) > 1,
            final=display_answer(schema, final.value) if final_valid else None,
            final_by=final.source_id if final is not None else "",
            errors=list((errors or {}).get(schema.name, [])),
        )
        if raw_values is not None:
            question.value = raw_values.get(schema.name)
        elif final_valid:
            question.value = answer_to_form_value(schema, final.value)
        elif given and len(distinct) == 1:
            question.value = answer_to_form_value(schema, given[0].value)
            question.prefilled_from_agreement = True
        questions.append(question)
    return questions


def adjudicate(
    *,
    item: ReviewItem,
    lead: AbstractBaseUser,
    raw_answers: Mapping[str, Any],
    rationale: str = "",
) -> list[Assessment]:
    """Store the lead's final answers as authoritative assessments that override the reviewers' ones."""
    session = item.session
    if not can_manage(lead, session):
        raise PermissionDenied("Only this session's leads and admins can settle disagreements.")
    require_open(session)
    schemas = {s.name: s for s in session.ordered_schemas()}
    values: dict[str, Any] = {}
    errors: dict[str, list[str]] = {}
    for name, raw in raw_answers.items():
        if name not in schemas or is_blank(raw):
            continue
        try:
            values[name] = parse_answer(schemas[name], raw)
        except ValidationError as exc:
            errors[name] = exc.messages
    if "\x00" in rationale:
        errors["rationale"] = ["The rationale contains a NUL character; remove it."]
    if not values and not errors:
        errors["__all__"] = ["Pick or write the final answer for at least one question."]
    if errors:
        raise ValidationError(errors)
    stored = []
    now = timezone.now()
    with transaction.atomic():
        ReviewItem.objects.select_for_update().get(pk=item.pk)
        current = reviewer_answers([item.pk]).get(item.pk, {})
        previous_final = {
            a.schema.name: a.assessment for a in item.adjudications.select_related("assessment", "schema")
        }
        for name, value in values.items():
            superseded = previous_final.get(name)
            overridden = [a.assessment_id for a in current.get(name, [])]
            assessment = Assessment.objects.create(
                assessment_id=f"a-{uuid.uuid4().hex}",
                trace_id=item.trace_id,
                name=name,
                kind=schemas[name].type,
                value=value,
                rationale=rationale.strip(),
                source_type=AssessmentSource.HUMAN,
                source_id=lead.get_username(),
                overrides=superseded.assessment_id if superseded else (overridden[0] if overridden else ""),
                valid=True,
                metadata={
                    ADJUDICATION_KEY: True,
                    "overrides_all": overridden,
                    "labeling_session_id": session.pk,
                    "labeling_session": session.name,
                    "review_item_id": item.pk,
                    "source_trace_id": item.source_trace_id_text,
                },
                create_time=now,
                last_update_time=now,
            )
            if superseded is not None:
                Assessment.objects.filter(pk=superseded.pk).update(valid=False, last_update_time=now)
            Adjudication.objects.create(item=item, schema=schemas[name], assessment=assessment, decided_by=lead)
            stored.append(assessment)
    return stored
