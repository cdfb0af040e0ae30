"""Access helpers for the manage pages: a reader without the right gets 404, a writer gets 403."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404

from ..access import can_manage, is_admin
from ..models import LabelingSession


def deny(request: HttpRequest) -> None:
    """Reads of pages one may not see are 404 (nothing to discover); writes are 403 (refused)."""
    if request.method in ("GET", "HEAD"):
        raise Http404("No such page.")
    raise PermissionDenied("You do not have the right to do this.")


def admin_required(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    @login_required
    @wraps(view)
    def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if not is_admin(request.user):
            deny(request)
        return view(request, *args, **kwargs)

    return wrapped


def get_session_for_manager(request: HttpRequest, pk: int) -> LabelingSession:
    """The session if the user is an admin or one of its leads."""
    session = get_object_or_404(LabelingSession.objects.select_related("experiment"), pk=pk)
    if not can_manage(request.user, session):
        deny(request)
    return session
