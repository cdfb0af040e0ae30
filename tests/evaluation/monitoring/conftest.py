"""Monitoring tests: traces completed as ingest completes them (the ON_TRACES_COMPLETED hook, then its commit)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tests.evaluation.judges.conftest import judge_env, judge_server  # noqa: F401  (the fake judge endpoint)
from tests.factories import make_trace
from traces.completion import traces_completed
from traces.models import Trace


@pytest.fixture
def complete(django_capture_on_commit_callbacks: Any) -> Callable[..., Trace]:
    """Make a trace and complete it: the hook queues its work, and the commit runs the (immediate) worker task."""

    def made(**fields: Any) -> Trace:
        with django_capture_on_commit_callbacks(execute=True):
            trace = make_trace(**fields)
            traces_completed([trace.pk])
        return trace

    return made
