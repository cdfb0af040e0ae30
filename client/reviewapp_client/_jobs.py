"""Waiting on a server-side job (an evaluation run, a backfill) until it has ended."""

from __future__ import annotations

import time
from typing import Protocol, TypeVar

from .errors import ReviewAppError

ENDED = frozenset({"finished", "failed", "cancelled"})


class Job(Protocol):
    @property
    def status(self) -> str: ...

    def refresh(self) -> Job: ...


J = TypeVar("J", bound=Job)


def wait_until_ended(job: J, timeout: float, poll_seconds: float, what: str) -> J:
    """Refresh ``job`` every ``poll_seconds`` until its status is an ended one; ``DEADLINE_EXCEEDED``
    (a ``ReviewAppError``) after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while job.refresh().status not in ENDED:
        if time.monotonic() >= deadline:
            raise ReviewAppError("DEADLINE_EXCEEDED", f"The {what} had not ended after {timeout:g} s ({job.status}).")
        time.sleep(poll_seconds)
    return job
