"""Manage pages: questions (admins), sessions (admins and their leads), adding traces, the dashboard."""

from __future__ import annotations

from collections import defaultdict
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.db.models import Count, F, Q
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from traces.models import Trace
from traces.pagination import estimate_count
from traces.references import pk_from_text
from traces.search import TraceFilterForm

from .. import services
from ..access import is_admin, is_lead_anywhere, managed_sessions
from ..adjudication import disagreement_count, session_answers
from ..answers import parse_answer
from ..assignment import assign_items, assign_items_evenly
from ..forms import AnswerFilterForm, LabelSchemaForm, SessionForm, TraceIdsForm
from ..models import (
    ADJUDICATION_KEY,
    ItemReview,
    JobState,
    LabelingSession,
    LabelSchema,
    LabelSchemaVersion,
    SessionStatus,
    TraceAddJob,
)
from ..progress import reviewer_progress
from .access import admin_required, deny, get_session_for_manager

ANSWERS_PER_PAGE = 50
ITEMS_PER_PAGE = 50
PREVIEW_ROWS = 10
UNKNOWN_IDS_SHOWN = 100
RECENT_ADD_JOBS = 5
ANSWERED = "\x00answered"


def _apply_errors(form: Any, error: ValidationError) -> None:
    for field, messages_ in error.message_dict.items():
        form.add_error(field if field in form.fields else None, messages_)


# ---------------------------------------------------------------- questions (label schemas)


@admin_required
@require_GET
def schema_list(request: HttpRequest) -> HttpResponse:
    schemas = LabelSchema.objects.annotate(session_count=Count("session_links", distinct=True)).order_by(
        "-builtin", "name"
    )
    return render(request, "labeling/manage/schema_list.html", {"schemas": schemas})


def _schema_form_page(request: HttpRequest, schema: LabelSchema) -> HttpResponse:
    form = LabelSchemaForm(request.POST or None, instance=schema)
    if request.method == "POST" and form.is_valid():
        try:
            saved = services.save_label_schema(schema=form.instance, changed_by=request.user)
        except ValidationError as exc:
            _apply_errors(form, exc)
        else:
            messages.success(request, f"Saved the question “{saved.title}”.")
            return redirect("labeling:schema_list")
    versions = LabelSchemaVersion.objects.filter(schema=schema) if schema.pk else []
    has_answers = bool(schema.pk) and services.schema_has_answers(schema)
    status = 400 if request.method == "POST" else 200
    context = {"form": form, "schema": schema, "versions": versions, "has_answers": has_answers}
    return render(request, "labeling/manage/schema_form.html", context, status=status)


@admin_required
@require_http_methods(["GET", "POST"])
def schema_create(request: HttpRequest) -> HttpResponse:
    return _schema_form_page(request, LabelSchema(input_type="pass_fail"))


@admin_required
@require_http_methods(["GET", "POST"])
def schema_edit(request: HttpRequest, pk: int) -> HttpResponse:
    return _schema_form_page(request, get_object_or_404(LabelSchema, pk=pk))


# ---------------------------------------------------------------- sessions


@login_required
@require_GET
def session_list(request: HttpRequest) -> HttpResponse:
    if not is_lead_anywhere(request.user):
        deny(request)
    sessions = (
        managed_sessions(request.user)
        .annotate(
            item_count=Count("items", distinct=True),
            reviewer_count=Count("reviewers", distinct=True),
            done_items=Count("items", filter=Q(items__submitted_count__gte=F("reviewers_per_item")), distinct=True),
        )
        .order_by("status", "-created_at")
    )
    return render(request, "labeling/manage/session_list.html", {"sessions": sessions})


def _save_session(request: HttpRequest, form: SessionForm, session: LabelingSession | None) -> LabelingSession:
    data = form.cleaned_data
    schemas = form.ordered_schemas()
    if session is None:
        session = services.create_labeling_session(
            name=data["name"],
            schemas=schemas,
            reviewers=data["reviewers"],
            instructions=data["instructions"],
            created_by=request.user,
        )
    else:
        services.update_labeling_session(
            session=session,
            name=data["name"],
            instructions=data["instructions"],
            status=data["status"],
            schemas=schemas,
        )
        services.set_assigned_reviewers(session=session, reviewers=data["reviewers"])
    services.update_review_settings(
        session=session,
        reviewers_per_item=data["reviewers_per_item"],
        lease_minutes=data["lease_minutes"],
        blind=data["blind"],
        assignment_mode=data["assignment_mode"],
        status=data["status"],
    )
    if is_admin(request.user):
        services.set_session_leads(session=session, leads=data["leads"])
    return session


def _session_form_page(request: HttpRequest, session: LabelingSession | None) -> HttpResponse:
    form = SessionForm(request.POST or None, instance=session or LabelingSession())
    if not is_admin(request.user):
        form.fields["leads"].disabled = True
    if request.method == "POST" and form.is_valid():
        try:
            saved = _save_session(request, form, session)
        except ValidationError as exc:
            _apply_errors(form, exc)
        else:
            messages.success(request, f"Saved the session “{saved.name}”.")
            return redirect(saved.get_absolute_url())
    status = 400 if request.method == "POST" else 200
    return render(request, "labeling/manage/session_form.html", {"form": form, "session": session}, status=status)


@admin_required
@require_http_methods(["GET", "POST"])
def session_create(request: HttpRequest) -> HttpResponse:
    return _session_form_page(request, None)


@login_required
@require_http_methods(["GET", "POST"])
def session_edit(request: HttpRequest, pk: int) -> HttpResponse:
    return _session_form_page(request, get_session_for_manager(request, pk))


@login_required
@require_POST
def session_complete(request: HttpRequest, pk: int) -> HttpResponse:
    session = get_session_for_manager(request, pk)
    services.complete_session(session=session)
    messages.success(request, f"“{session.name}” is marked completed. Reviewers can no longer get new items.")
    return redirect(session.get_absolute_url())


@login_required
@require_POST
def session_assign(request: HttpRequest, pk: int) -> HttpResponse:
    """Split the items evenly among the assigned reviewers."""
    session = get_session_for_manager(request, pk)
    try:
        count = assign_items_evenly(session=session, reviewers=list(session.reviewers.order_by("username")))
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    else:
        messages.success(request, f"Made {count} assignments: each reviewer now sees only their items.")
    return redirect(session.get_absolute_url())


@login_required
@require_POST
def session_assign_by_hand(request: HttpRequest, pk: int) -> HttpResponse:
    """Give the checked items to one reviewer."""
    session = get_session_for_manager(request, pk)
    reviewer_pk = pk_from_text(request.POST.get("reviewer", ""))
    reviewer = session.reviewers.filter(pk=reviewer_pk).first() if reviewer_pk else None
    item_ids = [pk_from_text(value) for value in request.POST.getlist("items")]
    if reviewer is None or not item_ids or None in item_ids:
        messages.error(request, "Pick a reviewer of this session and at least one item.")
        return redirect(session.get_absolute_url())
    try:
        count = assign_items(session=session, reviewer=reviewer, item_ids=item_ids)
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    else:
        messages.success(request, f"Gave {count} item{'s' if count != 1 else ''} to {reviewer.username}.")
    return redirect(session.get_absolute_url())


# ---------------------------------------------------------------- adding traces


@login_required
@require_GET
def add_from_filters(request: HttpRequest) -> HttpResponse:
    """From the trace list: pick the session to add the filtered traces to."""
    if not is_lead_anywhere(request.user):
        deny(request)
    sessions = managed_sessions(request.user).exclude(status=SessionStatus.ARCHIVED)
    query = request.GET.urlencode()
    return render(request, "labeling/manage/add_from_filters.html", {"sessions": sessions, "query": query})


@login_required
@require_http_methods(["GET", "POST"])
def session_add_traces(request: HttpRequest, pk: int) -> HttpResponse:
    session = get_session_for_manager(request, pk)
    data = request.POST if request.method == "POST" else request.GET
    form = TraceFilterForm(data or None, versions_of=Trace.objects.explorable())
    ids_form = TraceIdsForm(request.POST if "trace_ids" in request.POST else None)
    added: services.AddResult | None = None
    if request.method == "POST":
        added = _add_traces(session, form, ids_form, request.user)
        if added is not None and added.job is not None and not added.unknown:
            messages.success(request, f"Adding {added.job.total} traces in the background: progress below.")
            return redirect(session.get_absolute_url())
        if added is not None and not added.unknown:
            messages.success(request, f"Added {added.added} traces ({added.already_there} were already there).")
            return redirect(session.get_absolute_url())
        if added is not None:  # some pasted ids name no trace: say which, and offer them for correction
            ids_form = TraceIdsForm(initial={"trace_ids": "\n".join(added.unknown)})
    preview = _preview(session, form)
    context = {
        "session": session,
        "form": form,
        "ids_form": ids_form,
        "added": added,
        "unknown_shown": added.unknown[:UNKNOWN_IDS_SHOWN] if added else [],
        "unknown_more": max(0, len(added.unknown) - UNKNOWN_IDS_SHOWN) if added else 0,
        "query": data.urlencode(),
        **preview,
    }
    template = "labeling/manage/add_traces.html"
    if request.htmx and request.method == "GET":
        template += "#preview"
    refused = request.method == "POST" and added is None
    status = 400 if refused or (form.is_bound and not form.is_valid()) else 200
    return render(request, template, context, status=status)


def _add_traces(
    session: LabelingSession, form: TraceFilterForm, ids_form: TraceIdsForm, requester: Any
) -> services.AddResult | None:
    """Add the pasted ids or the filtered traces; None when the form is refused (its errors say why)."""
    target = ids_form if ids_form.is_bound else form
    if not target.is_valid():
        return None
    # Large adds are copied by a background job (its progress shows on the session page).
    run = {"background_from": settings.TRACE_ADD_BACKGROUND_THRESHOLD, "requested_by": requester}
    try:
        if ids_form.is_bound:
            return services.add_traces_to_session(session=session, trace_ids=ids_form.cleaned_data["trace_ids"], **run)
        traces = _chosen_traces(form)
        if traces is None:
            return None
        return services.add_traces_to_session(session=session, traces=traces, **run)
    except ValidationError as exc:
        target.add_error(None, exc.messages)
        return None


def _chosen_traces(form: TraceFilterForm) -> Any:
    """The traces the filters (fields and MLflow filter string) choose, or None when they are
    refused: the preview count and "add all N" use this same queryset."""
    if not form.is_bound:
        return Trace.objects.explorable()
    if not form.is_valid():
        return None
    traces = form.filter(Trace.objects.explorable())
    return None if form.errors else traces  # e.g. a regular expression the database refused


def _preview(session: LabelingSession, form: TraceFilterForm) -> dict[str, Any]:
    traces = _chosen_traces(form)
    if traces is None:
        return {"matching": 0, "already": 0, "to_add": 0, "sample": []}
    # A preview: exact when small, else the planner's estimate ("about N"); adding counts exactly.
    matching = estimate_count(traces)
    already = traces.filter(trace_id__in=session.items.values("source_trace_id_text")).count()
    return {
        "matching": matching.value,
        "matching_exact": matching.exact,
        "already": already,
        "to_add": max(matching.value - already, 0),
        "sample": list(traces.select_related("experiment").order_by("-request_time")[:PREVIEW_ROWS]),
    }


# ---------------------------------------------------------------- dashboard


@login_required
@require_GET
def session_dashboard(request: HttpRequest, pk: int) -> HttpResponse:
    session = get_session_for_manager(request, pk)
    schemas = session.ordered_schemas()
    part = request.GET.get("part", "") if request.htmx else ""
    context: dict[str, Any] = {"session": session, "schemas": schemas}
    if part in ("", "progress"):
        context.update(_progress_context(session))
    if part in ("", "answers"):
        context.update(_answers_context(request, session, schemas))
    if part in ("", "items"):
        context.update(_items_context(request, session))
    if part == "":
        context.update(_overview_context(session, schemas))
        context["add_jobs"] = _recent_add_jobs(session)
    template = "labeling/manage/session_dashboard.html"
    if request.htmx and part in ("progress", "answers", "items"):
        template += f"#{part}"
    return render(request, template, context)


def _recent_add_jobs(session: LabelingSession) -> list[TraceAddJob]:
    """Background adds worth showing: running or waiting, failed in the last day, finished in the last hour."""
    now = timezone.now()
    shown = (
        Q(state__in=[JobState.QUEUED, JobState.RUNNING])
        | Q(state=JobState.FAILED, updated_at__gte=now - timedelta(days=1))
        | Q(state=JobState.DONE, finished_at__gte=now - timedelta(hours=1))
    )
    jobs = session.add_jobs.filter(shown).defer("source_ids").select_related("requested_by")
    return list(jobs.order_by("-created_at", "-id")[:RECENT_ADD_JOBS])


def _progress_context(session: LabelingSession) -> dict[str, Any]:
    counts = session.items.aggregate(
        total=Count("pk"),
        complete=Count("pk", filter=Q(submitted_count__gte=session.reviewers_per_item)),
    )
    rows = {row["reviewer__username"]: row for row in reviewer_progress(session)}
    reviewers = list(session.reviewers.order_by("username").values_list("username", flat=True))
    blank = {"done": 0, "skipped": 0, "flagged": 0, "in_progress": 0, "average_seconds": None, "items_per_hour": None}
    progress = [{"reviewer__username": name, **blank, **rows.get(name, {})} for name in reviewers]
    progress += [row for name, row in rows.items() if name not in reviewers]  # e.g. removed since
    return {"counts": counts, "progress": progress}


def _answers_context(request: HttpRequest, session: LabelingSession, schemas: list[LabelSchema]) -> dict[str, Any]:
    form = AnswerFilterForm(request.GET or None, schemas=schemas)
    answers = session_answers(session).order_by("-create_time", "-id")
    filter_error = ""
    if form.is_valid():
        question, value = form.cleaned_data["question"], form.cleaned_data["value"].strip()
        by_name = {s.name: s for s in schemas}
        if question:
            answers = answers.filter(name=question)
        if value:
            try:
                typed = parse_answer(by_name[question], value) if question else value
            except ValidationError as exc:
                filter_error = " ".join(exc.messages)
                answers = answers.none()
            else:
                answers = answers.filter(value=typed)
    page = Paginator(answers, ANSWERS_PER_PAGE).get_page(request.GET.get("page"))
    # The page's items in one more query: joining them before the sort would join every answer.
    items = session.items.filter(trace_id__in=[a.trace_id for a in page]).only("pk", "position", "session_id", "trace")
    by_trace = {item.trace_id: item for item in items}
    for answer in page:
        answer.item = by_trace.get(answer.trace_id)
    return {"answer_form": form, "answers": page, "filter_error": filter_error}


def _items_context(request: HttpRequest, session: LabelingSession) -> dict[str, Any]:
    items = session.items.select_related("trace").only(
        "pk", "position", "submitted_count", "source_trace_id_text", "session_id", "trace__request_preview"
    )
    page = Paginator(items.order_by("position"), ITEMS_PER_PAGE).get_page(request.GET.get("items_page"))
    return {"items": page, "session_reviewers": list(session.reviewers.order_by("username"))}


def _overview_context(session: LabelingSession, schemas: list[LabelSchema]) -> dict[str, Any]:
    distributions = _distributions(session, schemas)
    flagged = ItemReview.objects.filter(item__session=session, flagged=True).select_related("item", "reviewer")
    return {
        "distributions": distributions,
        "flagged": list(flagged[:50]),
        "disagreement_count": disagreement_count(session, [s.name for s in schemas]),
        "agreement": _agreement(session),
    }


def _agreement(session: LabelingSession) -> list[Any]:
    try:
        from ..agreement import session_agreement
    except ImportError:  # pragma: no cover - the agreement module ships with the app
        return []
    return session_agreement(session)


def _distributions(session: LabelingSession, schemas: list[LabelSchema]) -> list[dict[str, Any]]:
    """Answer counts per question and value, in one query; bars scaled to the largest count."""
    # Counted per distinct stored value in SQL: a handful of rows, not one per answer.
    rows = (
        session_answers(session)
        .exclude(metadata__has_key=ADJUDICATION_KEY)
        .values("name", "value")
        .annotate(n=Count("pk"))
        .values_list("name", "value", "n")
        .order_by()
    )
    counts: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for name, value, n in rows:
        counts[name][ANSWERED] += n
        for one in value if isinstance(value, list) else [value]:
            counts[name][_label(one)] += n
    result = []
    for schema in schemas:
        by_value = dict(counts.get(schema.name, {}))
        answered = by_value.pop(ANSWERED, 0)
        if schema.choices:
            labels = [(label, by_value.get(_label(_choice_value(schema, value)), 0)) for value, label in schema.choices]
        elif schema.input_type == "numeric":
            labels = sorted(by_value.items(), key=lambda kv: _numeric_key(kv[0]))
        else:
            labels = [("answered", answered)]
        top = max([count for _, count in labels] or [0]) or 1
        result.append(
            {
                "schema": schema,
                "total": answered,
                "bars": [
                    {"label": label, "count": count, "width": round(300 * count / top)} for label, count in labels
                ],
            }
        )
    return result


def _choice_value(schema: LabelSchema, value: str) -> Any:
    if schema.input_type == "pass_fail":
        return value == "pass"
    return value


def _label(value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list):
        return ", ".join(map(str, value))
    return str(value)


def _numeric_key(label: str) -> float:
    try:
        return float(label)
    except ValueError:
        return float("inf")
