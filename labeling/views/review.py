"""The expert's review screen: my sessions, then one item at a time (HTMX swaps the item region)."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.db.models import Count, Q
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST
from django_htmx.http import push_url

from traces.views import find_span, span_json, span_value_response

from .. import claims, submissions
from ..access import is_session_reviewer, reviewable_sessions, visible_items
from ..errors import SessionClosedError
from ..models import InputType, ItemReview, LabelingSession, LabelSchema, ReviewItem, ReviewStatus, SessionStatus
from ..progress import reviewer_summary
from ..review_screen import Question, ShowAll, questions_from_post, review_screen

REVIEW_TEMPLATE = "labeling/review_item.html"
SAVED_NOTICE = "Saved your answers to the previous item."
LATE_NOTICE = (
    "Saved your answers to the previous item. Others answered it while you were away, so your answer "
    "is kept as an extra one and does not count towards the item's reviews."
)


# ---------------------------------------------------------------- access


def _get_session_for_reviewer(request: HttpRequest, pk: int) -> LabelingSession:
    """The session if the user reviews, leads or administers it; everyone else gets 404."""
    return get_object_or_404(reviewable_sessions(request.user), pk=pk)


def _get_item(request: HttpRequest, session: LabelingSession, item_pk: int) -> ReviewItem:
    """An item given to this reviewer (claimed, answered, skipped or assigned); managers see all."""
    items = visible_items(session, request.user).select_related("trace")
    return get_object_or_404(items, pk=item_pk)


# ---------------------------------------------------------------- parsing


def _show_all(request: HttpRequest) -> ShowAll:
    return ShowAll(
        documents=request.GET.get("docs") == "all",
        tools=request.GET.get("tools") == "all",
        tree=request.GET.get("tree") == "all",
    )


def _raw_answers(request: HttpRequest, schemas: list[LabelSchema]) -> tuple[dict[str, Any], dict[str, str]]:
    answers: dict[str, Any] = {}
    for schema in schemas:
        name = f"q-{schema.name}"
        answers[schema.name] = (
            request.POST.getlist(name) if schema.input_type == InputType.CATEGORICAL_LIST else request.POST.get(name)
        )
    comments = {s.name: request.POST.get(f"c-{s.name}", "") for s in schemas}
    return answers, comments


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
    notice_ok: bool = False,
) -> HttpResponse:
    context = review_screen(
        session=session,
        item=item,
        user=request.user,
        show_all=_show_all(request),
        questions=questions,
        form_errors=form_errors or (),
        notice=notice,
        notice_ok=notice_ok,
    )
    template = f"{REVIEW_TEMPLATE}#review-main" if partial else REVIEW_TEMPLATE
    return render(request, template, context, status=status)


def _render_done(
    request: HttpRequest, session: LabelingSession, *, partial: bool, notice: str = "", notice_ok: bool = False
) -> HttpResponse:
    template = "labeling/review_done.html#done" if partial else "labeling/review_done.html"
    summary = reviewer_summary(session, request.user)
    context = {
        "session": session,
        "done": summary.done,
        "skipped": summary.skipped,
        "still_open": summary.still_open,
        "notice": notice,
        "notice_ok": notice_ok,
    }
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
    item = claims.claim_next_item(session=session, reviewer=request.user)
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
    if request.GET.get("value"):
        return span_value_response(request, item.trace)  # "show all" / download of one cut value
    if request.GET.get("span"):
        return _span_detail(request, item)
    if session.status == SessionStatus.ACTIVE and is_session_reviewer(request.user, session):
        mine = item.reviews.filter(reviewer=request.user).first()
        if claims.lease_needs_renewal(mine):
            claims.claim_item(item=item, reviewer=request.user)  # hold the item while the reviewer works
    return _render_item(request, session, item, partial=bool(request.htmx))


@login_required
@require_POST
def heartbeat(request: HttpRequest, session_pk: int, item_pk: int) -> JsonResponse:
    """The open review page renews its lease; the answer says whether the item is still held."""
    session = _get_session_for_reviewer(request, session_pk)
    item = _get_item(request, session, item_pk)
    state = claims.renew_lease(item=item, reviewer=request.user)
    body: dict[str, Any] = {"lease": state.value}
    if state == claims.LeaseState.LOST:
        body["message"] = (
            "Others answered this item while you were away. You can still submit: your answer is kept as an extra one."
        )
    return JsonResponse(body)


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
        claims.flag_item(item=item, reviewer=request.user, note=request.POST.get("note", ""))
    except SessionClosedError as exc:
        return _refuse(request, session, item, str(exc), status=403)
    except ValidationError as exc:
        return _refuse(request, session, item, " ".join(exc.messages), status=400)
    if not request.htmx:
        messages.success(request, "Flagged for an admin. Thank you.")
        return redirect(item.get_absolute_url())
    return _render_item(request, session, item, partial=True, notice="Flagged for an admin. Thank you.", notice_ok=True)


def _span_detail(request: HttpRequest, item: ReviewItem) -> HttpResponse:
    span = find_span(item.trace_id, request.GET["span"])
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
        submission = submissions.submit_review(item=item, reviewer=request.user, raw_answers=raw, raw_comments=comments)
    except SessionClosedError as exc:
        return _refuse(request, session, item, str(exc), status=403)
    except ValidationError as exc:
        errors = exc.message_dict
        questions = questions_from_post(schemas, raw, comments, errors)
        return _render_item(
            request,
            session,
            item,
            questions=questions,
            form_errors=errors.get("__all__"),
            status=400,
            partial=bool(request.htmx),
        )
    if submission.late:
        return _go_next(request, session, item, notice=LATE_NOTICE, notice_ok=False)
    return _go_next(request, session, item, notice=SAVED_NOTICE)


@login_required
@require_POST
def skip(request: HttpRequest, session_pk: int, item_pk: int) -> HttpResponse:
    session = _get_session_for_reviewer(request, session_pk)
    item = _get_item(request, session, item_pk)
    try:
        claims.skip_item(item=item, reviewer=request.user, reason=request.POST.get("reason", ""))
    except SessionClosedError as exc:
        return _refuse(request, session, item, str(exc), status=403)
    except ValidationError as exc:
        return _refuse(request, session, item, " ".join(exc.messages), status=400)
    return _go_next(request, session, item, notice="Skipped the previous item.")


def _refuse(
    request: HttpRequest, session: LabelingSession, item: ReviewItem, message: str, status: int
) -> HttpResponse:
    return _render_item(request, session, item, form_errors=[message], status=status, partial=bool(request.htmx))


def _go_next(
    request: HttpRequest, session: LabelingSession, item: ReviewItem, *, notice: str, notice_ok: bool = True
) -> HttpResponse:
    """After a submit or skip: the next item, with a short confirmation of what just happened."""
    following = claims.claim_next_item(session=session, reviewer=request.user)
    if not request.htmx:
        messages.add_message(request, messages.SUCCESS if notice_ok else messages.WARNING, notice)
        return redirect(
            following.get_absolute_url() if following else reverse("labeling:review_start", args=[session.pk])
        )
    if following is None:
        return _render_done(request, session, partial=True, notice=notice, notice_ok=notice_ok)
    response = _render_item(request, session, _reload(following), partial=True, notice=notice, notice_ok=notice_ok)
    return push_url(response, following.get_absolute_url())
