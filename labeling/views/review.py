"""The expert's review screen: my sessions, then one item at a time (HTMX swaps the item region)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.db.models import Count, Q
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST
from django_htmx.http import push_url

from traces.loading import load_spans_for_view
from traces.models import Assessment, AssessmentSource, Span
from traces.rendering import build_trace_view
from traces.templatetags.trace_tags import SPAN_TREE_LIMIT
from traces.views import span_json

from .. import services, workflow
from ..answers import answer_to_form_value
from ..models import InputType, ItemReview, LabelingSession, LabelSchema, ReviewItem, ReviewStatus, SessionStatus

REVIEW_TEMPLATE = "labeling/review_item.html"


# ---------------------------------------------------------------- access


def _get_session_for_reviewer(request: HttpRequest, pk: int) -> LabelingSession:
    """The session if the user reviews, leads or administers it; everyone else gets 404."""
    sessions = LabelingSession.objects.select_related("experiment")
    if not request.user.is_staff:
        sessions = sessions.filter(Q(reviewers=request.user) | Q(leads=request.user)).distinct()
    return get_object_or_404(sessions, pk=pk)


def _get_item(request: HttpRequest, session: LabelingSession, item_pk: int) -> ReviewItem:
    """An item given to this reviewer (claimed, answered, skipped or assigned); managers see all."""
    items = workflow.visible_items(session, request.user).select_related("trace")
    return get_object_or_404(items, pk=item_pk)


# ---------------------------------------------------------------- navigation


@dataclass(slots=True)
class Progress:
    total: int
    submitted: int
    position: int  # 1-based index of the current item

    @property
    def left(self) -> int:
        return self.total - self.submitted

    @property
    def percent(self) -> int:
        return round(100 * self.submitted / self.total) if self.total else 100


def _neighbours(request: HttpRequest, session: LabelingSession, item: ReviewItem) -> tuple[int | None, int | None]:
    """Previous / next among the items this user may open (their own work for reviewers)."""
    items = workflow.visible_items(session, request.user).order_by()
    previous = items.filter(position__lt=item.position).order_by("-position").values_list("pk", flat=True)
    following = items.filter(position__gt=item.position).order_by("position").values_list("pk", flat=True)
    return previous.first(), following.first()


def _progress(session: LabelingSession, user: Any, item: ReviewItem) -> Progress:
    """“N of M left”: M items in this reviewer's scope, N of them still waiting for this reviewer."""
    scope = session.items.all()
    if session.assignment_mode == "assigned" and not workflow.can_manage(user, session):
        scope = scope.filter(assignments__reviewer=user)
    mine_done = Q(reviews__reviewer=user, reviews__status=ReviewStatus.SUBMITTED)
    counts = scope.aggregate(
        total=Count("pk", distinct=True),
        submitted=Count("pk", filter=mine_done, distinct=True),
        closed=Count("pk", filter=Q(submitted_count__gte=session.reviewers_per_item) & ~mine_done, distinct=True),
        before=Count("pk", filter=Q(position__lt=item.position), distinct=True),
    )
    return Progress(
        total=counts["total"],
        submitted=counts["submitted"] + counts["closed"],
        position=counts["before"] + 1,
    )


# ---------------------------------------------------------------- questions


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


def _questions_from_answers(schemas: list[LabelSchema], answers: dict[str, Assessment]) -> list[Question]:
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


def _raw_answers(request: HttpRequest, schemas: list[LabelSchema]) -> tuple[dict[str, Any], dict[str, str]]:
    answers: dict[str, Any] = {}
    for schema in schemas:
        name = f"q-{schema.name}"
        answers[schema.name] = (
            request.POST.getlist(name) if schema.input_type == InputType.CATEGORICAL_LIST else request.POST.get(name)
        )
    comments = {s.name: request.POST.get(f"c-{s.name}", "") for s in schemas}
    return answers, comments


def _questions_from_post(
    schemas: list[LabelSchema], raw: dict[str, Any], comments: dict[str, str], errors: dict[str, list[str]]
) -> list[Question]:
    return [
        Question(schema=s, value=raw.get(s.name), comment=comments.get(s.name, ""), errors=errors.get(s.name, []))
        for s in schemas
    ]


# ---------------------------------------------------------------- rendering


def _render_item(
    request: HttpRequest,
    session: LabelingSession,
    item: ReviewItem,
    *,
    questions: list[Question] | None = None,
    form_errors: list[str] | None = None,
    status: int = 200,
    partial: bool = False,
    notice: str = "",
) -> HttpResponse:
    schemas = session.ordered_schemas()
    assessments = list(item.trace.assessments.all())
    username = request.user.get_username()
    mine = {
        a.name: a
        for a in assessments
        if a.valid and a.source_type == AssessmentSource.HUMAN and a.source_id == username
    }
    context_assessments = [a for a in assessments if a.source_type != AssessmentSource.HUMAN or a.source_id != username]
    spans = load_spans_for_view(item.trace_id, all_tools=request.GET.get("tools") == "all")
    previous_pk, next_pk = _neighbours(request, session, item)
    my_review = ItemReview.objects.filter(item=item, reviewer=request.user).first()
    if _blinded(session, request.user, my_review):
        context_assessments = []  # blind review: no other answers, no judge or code verdicts before submitting
    view = build_trace_view(
        item.trace,
        spans,
        context_assessments,
        all_documents=request.GET.get("docs") == "all",
        all_tools=request.GET.get("tools") == "all",
    )
    context = {
        "session": session,
        "item": item,
        "trace": item.trace,
        "view": view,
        "questions": questions if questions is not None else _questions_from_answers(schemas, mine),
        "form_errors": form_errors or [],
        "progress": _progress(session, request.user, item),
        "previous_pk": previous_pk,
        "next_pk": next_pk,
        "my_review": my_review,
        "span_url": item.get_absolute_url(),
        "tree_open_depth": 0,
        "tree_limit": len(view.nodes) if request.GET.get("tree") == "all" else SPAN_TREE_LIMIT,
        "accepts_answers": session.accepts_answers,
        "can_manage": workflow.can_manage(request.user, session),
        "notice": notice,
    }
    template = f"{REVIEW_TEMPLATE}#review-main" if partial else REVIEW_TEMPLATE
    response = render(request, template, context, status=status)
    return response


def _blinded(session: LabelingSession, user: Any, review: ItemReview | None) -> bool:
    """In a blind session, a reviewer sees others' answers and automatic verdicts only after submitting."""
    submitted = review is not None and review.status == ReviewStatus.SUBMITTED
    return session.blind and not submitted and not workflow.can_manage(user, session)


def _render_done(request: HttpRequest, session: LabelingSession, *, partial: bool) -> HttpResponse:
    template = "labeling/review_done.html#done" if partial else "labeling/review_done.html"
    mine = ItemReview.objects.filter(item__session=session, reviewer=request.user).aggregate(
        done=Count("pk", filter=Q(status=ReviewStatus.SUBMITTED)),
        skipped=Count("pk", filter=Q(status=ReviewStatus.SKIPPED)),
    )
    busy = session.items.filter(submitted_count__lt=session.reviewers_per_item).count()
    context = {"session": session, "done": mine["done"], "skipped": mine["skipped"], "still_open": busy}
    response = render(request, template, context)
    if partial:
        push_url(response, reverse("labeling:review_start", args=[session.pk]))
    return response


# ---------------------------------------------------------------- views


@login_required
@require_GET
def my_sessions(request: HttpRequest) -> HttpResponse:
    sessions = (
        LabelingSession.objects.for_reviewer(request.user)
        .exclude(status=SessionStatus.ARCHIVED)
        .annotate(
            item_count=Count("items", distinct=True),
            done_count=Count(
                "items__reviews",
                filter=Q(items__reviews__reviewer=request.user, items__reviews__status=ReviewStatus.SUBMITTED),
                distinct=True,
            ),
        )
        .order_by("status", "-created_at")
    )
    return render(request, "labeling/my_sessions.html", {"sessions": sessions})


@login_required
@require_GET
def review_start(request: HttpRequest, session_pk: int) -> HttpResponse:
    """Hand out the next item (with a lease) and open it."""
    session = _get_session_for_reviewer(request, session_pk)
    item = workflow.claim_next_item(session=session, reviewer=request.user)
    if item is None:
        return _render_done(request, session, partial=bool(request.htmx))
    if request.htmx:
        response = _render_item(request, session, _reload(item), partial=True)
        return push_url(response, item.get_absolute_url())
    return redirect(item.get_absolute_url())


def _reload(item: ReviewItem) -> ReviewItem:
    return ReviewItem.objects.select_related("trace").get(pk=item.pk)


@login_required
@require_GET
def review_item(request: HttpRequest, session_pk: int, item_pk: int) -> HttpResponse:
    session = _get_session_for_reviewer(request, session_pk)
    item = _get_item(request, session, item_pk)
    if request.GET.get("span"):
        return _span_detail(request, item)
    mine = ItemReview.objects.filter(item=item, reviewer=request.user).first()
    renew = session.status == SessionStatus.ACTIVE and workflow.lease_needs_renewal(mine)
    if renew and session.reviewers.filter(pk=request.user.pk).exists():
        workflow.claim_item(item=item, reviewer=request.user)  # hold the item while the reviewer works
    return _render_item(request, session, item, partial=bool(request.htmx))


@login_required
@require_GET
def my_completed(request: HttpRequest, session_pk: int) -> HttpResponse:
    """The items this reviewer answered, to revisit and edit."""
    session = _get_session_for_reviewer(request, session_pk)
    reviews = (
        ItemReview.objects.filter(item__session=session, reviewer=request.user)
        .exclude(status=ReviewStatus.CLAIMED, flagged=False)
        .select_related("item__trace")
        .order_by("item__position")
    )
    return render(request, "labeling/my_completed.html", {"session": session, "reviews": reviews})


@login_required
@require_POST
def flag(request: HttpRequest, session_pk: int, item_pk: int) -> HttpResponse:
    session = _get_session_for_reviewer(request, session_pk)
    item = _get_item(request, session, item_pk)
    try:
        workflow.flag_item(item=item, reviewer=request.user, note=request.POST.get("note", ""))
    except ValidationError as exc:
        return _refuse(request, session, item, " ".join(exc.messages), status=400)
    if not request.htmx:
        messages.success(request, "Flagged for an admin. Thank you.")
        return redirect(item.get_absolute_url())
    return _render_item(request, session, item, partial=True, notice="Flagged for an admin. Thank you.")


def _span_detail(request: HttpRequest, item: ReviewItem) -> HttpResponse:
    span = Span.objects.filter(trace_id=item.trace_id, span_id=request.GET["span"]).first()
    if span is None:
        raise Http404("No such span in this trace.")
    context = {"selected": span, "selected_json": span_json(span)}
    if request.htmx:
        return render(request, "traces/trace_detail.html#span-detail", context)
    return render(request, "labeling/span_page.html", {**context, "item": item, "session": item.session})


@login_required
@require_POST
def submit_item(request: HttpRequest, session_pk: int, item_pk: int) -> HttpResponse:
    session = _get_session_for_reviewer(request, session_pk)
    item = _get_item(request, session, item_pk)
    schemas = session.ordered_schemas()
    raw, comments = _raw_answers(request, schemas)
    try:
        services.submit_review(item=item, reviewer=request.user, raw_answers=raw, raw_comments=comments)
    except services.SessionClosedError as exc:
        return _refuse(request, session, item, str(exc), status=403)
    except ValidationError as exc:
        errors = exc.message_dict
        questions = _questions_from_post(schemas, raw, comments, errors)
        return _render_item(
            request,
            session,
            item,
            questions=questions,
            form_errors=errors.get("__all__"),
            status=400,
            partial=bool(request.htmx),
        )
    return _go_next(request, session, item)


@login_required
@require_POST
def skip(request: HttpRequest, session_pk: int, item_pk: int) -> HttpResponse:
    session = _get_session_for_reviewer(request, session_pk)
    item = _get_item(request, session, item_pk)
    try:
        services.skip_item(item=item, reviewer=request.user, reason=request.POST.get("reason", ""))
    except services.SessionClosedError as exc:
        return _refuse(request, session, item, str(exc), status=403)
    return _go_next(request, session, item)


def _refuse(
    request: HttpRequest, session: LabelingSession, item: ReviewItem, message: str, status: int
) -> HttpResponse:
    return _render_item(request, session, item, form_errors=[message], status=status, partial=bool(request.htmx))


def _go_next(request: HttpRequest, session: LabelingSession, item: ReviewItem) -> HttpResponse:
    following = workflow.claim_next_item(session=session, reviewer=request.user)
    if following is None:
        if not request.htmx:
            return redirect("labeling:review_start", session.pk)
        return _render_done(request, session, partial=True)
    if not request.htmx:
        return redirect(following.get_absolute_url())
    response = _render_item(request, session, _reload(following), partial=True)
    return push_url(response, following.get_absolute_url())
