"""Everything the review screen shows for one item, built in one place.

The view parses the request, checks access, calls ``review_screen`` and renders what it returns.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.urls import reverse

from traces.loading import load_spans_for_view
from traces.models import Assessment, AssessmentSource
from traces.rendering import build_trace_view
from traces.templatetags.trace_tags import SPAN_TREE_LIMIT

from .access import can_manage, visible_items
from .answers import answer_to_form_value
from .models import ItemReview, LabelingSession, LabelSchema, ReviewItem, ReviewStatus
from .progress import reviewer_position

# The trace page opens the span tree two levels deep; the review screen shows it the same way.
TREE_OPEN_DEPTH = 2


@dataclass(slots=True)
class Question:
    schema: LabelSchema
    value: Any = None  # what the input shows
    comment: str = ""
    errors: list[str] = field(default_factory=list)
    answered: bool = False

    @property
    def field_name(self) -> str:
        return f"q-{self.schema.name}"

    @property
    def comment_name(self) -> str:
        return f"c-{self.schema.name}"

    @property
    def selected(self) -> list[str]:
        if isinstance(self.value, list):
            return [str(v) for v in self.value]
        return [] if self.value in (None, "") else [str(self.value)]


def questions_from_answers(schemas: Sequence[LabelSchema], answers: dict[str, Assessment]) -> list[Question]:
    """The questions filled with the reviewer's current answers (empty where they gave none)."""
    questions = []
    for schema in schemas:
        answer = answers.get(schema.name)
        questions.append(
            Question(
                schema=schema,
                value=answer_to_form_value(schema, answer.value) if answer else None,
                comment=answer.rationale if answer else "",
                answered=answer is not None,
            )
        )
    return questions


def questions_from_post(
    schemas: Sequence[LabelSchema], raw: dict[str, Any], comments: dict[str, str], errors: dict[str, list[str]]
) -> list[Question]:
    """The questions as the reviewer sent them, with the errors of a refused submit."""
    return [
        Question(schema=s, value=raw.get(s.name), comment=comments.get(s.name, ""), errors=errors.get(s.name, []))
        for s in schemas
    ]


@dataclass(frozen=True, slots=True)
class ShowAll:
    """The "show all" links of a big trace: every document, tool call, span of the tree."""

    documents: bool = False
    tools: bool = False
    tree: bool = False


def is_blinded(session: LabelingSession, user: Any, review: ItemReview | None) -> bool:
    """In a blind session, a reviewer sees others' answers and automatic verdicts only after submitting."""
    submitted = review is not None and review.status == ReviewStatus.SUBMITTED
    return session.blind and not submitted and not can_manage(user, session)


def neighbours(session: LabelingSession, user: Any, item: ReviewItem) -> tuple[int | None, int | None]:
    """Previous / next among the items this user may open (their own work for reviewers)."""
    items = visible_items(session, user).order_by()
    previous = items.filter(position__lt=item.position).order_by("-position").values_list("pk", flat=True)
    following = items.filter(position__gt=item.position).order_by("position").values_list("pk", flat=True)
    return previous.first(), following.first()


def heartbeat_seconds(session: LabelingSession) -> int:
    """How often the open page renews its lease: three times per lease, within the configured bounds."""
    low, high = settings.REVIEW_HEARTBEAT_MIN_SECONDS, settings.REVIEW_HEARTBEAT_MAX_SECONDS
    return max(low, min(high, session.lease_minutes * 60 // 3))


def review_screen(
    *,
    session: LabelingSession,
    item: ReviewItem,
    user: Any,
    show_all: ShowAll = ShowAll(),
    questions: list[Question] | None = None,
    form_errors: Sequence[str] = (),
    notice: str = "",
    notice_ok: bool = False,
) -> dict[str, Any]:
    """The template context of the review screen for this user on this item (``item.trace`` loaded)."""
    schemas = session.ordered_schemas()
    assessments = list(item.trace.assessments.all())
    username = user.get_username()
    mine = {
        a.name: a
        for a in assessments
        if a.valid and a.source_type == AssessmentSource.HUMAN and a.source_id == username
    }
    my_review = ItemReview.objects.filter(item=item, reviewer=user).first()
    context_assessments = [a for a in assessments if a.source_type != AssessmentSource.HUMAN or a.source_id != username]
    if is_blinded(session, user, my_review):
        context_assessments = []  # blind review: no other answers, no judge or code verdicts before submitting
    spans = load_spans_for_view(item.trace_id, all_tools=show_all.tools)
    view = build_trace_view(
        item.trace, spans, context_assessments, all_documents=show_all.documents, all_tools=show_all.tools
    )
    previous_pk, next_pk = neighbours(session, user, item)
    manager = can_manage(user, session)
    return {
        "session": session,
        "item": item,
        "trace": item.trace,
        "view": view,
        "questions": questions if questions is not None else questions_from_answers(schemas, mine),
        "form_errors": list(form_errors),
        "progress": reviewer_position(session, user, item),
        "previous_pk": previous_pk,
        "next_pk": next_pk,
        "my_review": my_review,
        "span_url": item.get_absolute_url(),
        "tree_open_depth": TREE_OPEN_DEPTH,
        "tree_limit": len(view.nodes) if show_all.tree else SPAN_TREE_LIMIT,
        "accepts_answers": session.accepts_answers,
        "can_manage": manager,
        "notice": notice,
        "notice_ok": notice_ok,
        "heartbeat_url": reverse("labeling:heartbeat", args=[session.pk, item.pk]),
        "heartbeat_seconds": heartbeat_seconds(session),
        "holds_lease": my_review is not None and my_review.status == ReviewStatus.CLAIMED,
    }
