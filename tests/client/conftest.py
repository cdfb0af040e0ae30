"""The Python client (``client/reviewapp_client``) against a live server: real HTTP to pytest-django's
``live_server`` (a threaded Django server on the test database), tokens made the app's way.

``admin_client`` is the module-level client configured with an admin's token, as a notebook would
(``reviewapp_client.configure(url=..., token=...)``).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.db import DEFAULT_DB_ALIAS, connections

import reviewapp_client
from reviewapp_client import _http
from tests.factories import make_experiment, make_trace
from traces.models import Experiment, Trace
from traces.tokens import create_api_token


@pytest.fixture(autouse=True, scope="session")
def live_server_closes_its_connections() -> None:
    """The live server answers each request in a new thread; with CONN_MAX_AGE those threads' connections
    outlive the tests and PostgreSQL refuses to drop the test database. Requests here close theirs."""
    connections.settings[DEFAULT_DB_ALIAS]["CONN_MAX_AGE"] = 0


@pytest.fixture(autouse=True)
def fast_password_hashing(settings: Any) -> None:
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(autouse=True)
def fresh_configuration(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Each test configures the client itself; nothing leaks from the environment or another test."""
    monkeypatch.delenv(_http.URL_ENV, raising=False)
    monkeypatch.delenv(_http.TOKEN_ENV, raising=False)
    _http.reset()
    yield
    _http.reset()


@pytest.fixture
def admin_token(admin_user: User) -> str:
    return create_api_token(user=admin_user, name="notebook")[1]


@pytest.fixture
def reviewer_token(reviewer: User) -> str:
    return create_api_token(user=reviewer, name="notebook")[1]


@pytest.fixture
def admin_client(live_server: Any, admin_token: str) -> reviewapp_client.ApiClient:
    return reviewapp_client.configure(url=live_server.url, token=admin_token)


@dataclass
class Shop:
    experiment: Experiment
    traces: list[Trace]  # t0..t3; v2 are t1 and t3; t0 is in run-1


@pytest.fixture
def shop(transactional_db: None) -> Shop:
    experiment = make_experiment("shop-bot")
    experiment.mlflow_experiment_id = "17"
    experiment.save()
    traces = [make_trace(experiment=experiment, name=f"t{i}", model_id="v2" if i % 2 else "v1") for i in range(4)]
    traces[0].trace_metadata = {"mlflow.sourceRun": "run-1", "mlflow.trace.user": "ana"}
    traces[0].tags = {"topic": "returns"}
    traces[0].save()
    return Shop(experiment, traces)
