"""Shared fixtures: fixed personas (admin, reviewer, outsider) and small factories."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import User

from traces.ingest import read_trace_file, store_traces
from traces.models import Trace

DATA_DIR = Path(__file__).parent / "data"


@pytest.fixture(autouse=True)
def immediate_tasks(settings: Any) -> None:
    """Background tasks run at once, in the test's own transaction (a real db_worker is tested apart)."""
    settings.TASKS = {"default": {"BACKEND": "django_tasks.backends.immediate.ImmediateBackend"}}


@pytest.fixture
def data_dir() -> Path:
    return DATA_DIR


@pytest.fixture
def admin_user(db: None) -> User:
    return User.objects.create_user("admin", "admin@example.com", "admin-pass", is_staff=True, is_superuser=True)


@pytest.fixture
def reviewer(db: None) -> User:
    return User.objects.create_user("reviewer", "reviewer@example.com", "reviewer-pass")


@pytest.fixture
def outsider(db: None) -> User:
    return User.objects.create_user("outsider", "outsider@example.com", "outsider-pass")


@pytest.fixture
def import_sample(db: None) -> Callable[..., Trace]:
    """Import one of the MLflow sample files from tests/data and return its (first) trace."""

    def load(name: str, **kwargs: Any) -> Trace:
        records = read_trace_file(DATA_DIR / name)
        store_traces(records, **kwargs)
        return Trace.objects.get(trace_id=records[0].trace_id)

    return load
