"""Who may use the trace explorer. The rule lives in settings so that ``traces`` needs no other app."""

from __future__ import annotations

from functools import cache
from typing import Any

from django.conf import settings
from django.utils.module_loading import import_string


@cache
def _rule() -> Any:
    path = getattr(settings, "TRACE_EXPLORER_ACCESS", "")
    return import_string(path) if path else None


def can_explore_traces(user: Any) -> bool:
    """Admins always; others when the configured rule says so (session leads, by default)."""
    if not user.is_authenticated:
        return False
    if user.is_staff:
        return True
    rule = _rule()
    return bool(rule(user)) if rule else False
