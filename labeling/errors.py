"""Errors the labeling services raise for the views to turn into a clear 4xx."""

from __future__ import annotations

from django.core.exceptions import PermissionDenied

CLOSED_MESSAGE = "This session is archived; it no longer accepts answers."


class SessionClosedError(PermissionDenied):
    """Answers, skips, flags or final answers sent to an archived session (403)."""
