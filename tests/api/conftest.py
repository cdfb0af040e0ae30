"""The API's world: the fixed personas with API tokens, a trace experiment, and a session whose
frozen copies one reviewer was given.

``api`` is a client bound to one persona's token: ``api.get("/api/traces/")``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client

from labeling import claims, services
from labeling.models import LabelingSession
from tests.factories import make_experiment, make_trace
from traces.models import Experiment, Trace
from traces.tokens import create_api_token


class ApiClient:
    """A Django test client that sends a bearer token (or none) and JSON bodies."""

    def __init__(self, token: str | None) -> None:
        self.client = Client()
        self.headers = {"Authorization": f"Bearer {token}"} if token else {}

    def request(self, method: str, path: str, body: Any = None, **kwargs: Any) -> Any:
        send = getattr(self.client, method.lower())
        headers = {**self.headers, **kwargs.pop("headers", {})}
        if body is not None and method.upper() != "GET":
            data = body if isinstance(body, (str, bytes)) else __import__("json").dumps(body)
            return send(path, data=data, content_type="application/json", headers=headers, **kwargs)
        return send(path, body, headers=headers, **kwargs) if method.upper() == "GET" else send(path, headers=headers)

    def get(self, path: str, params: Any = None, **kwargs: Any) -> Any:
        return self.request("GET", path, params, **kwargs)

    def post(self, path: str, body: Any = None, **kwargs: Any) -> Any:
        return self.request("POST", path, body, **kwargs)

    def patch(self, path: str, body: Any = None, **kwargs: Any) -> Any:
        return self.request("PATCH", path, body, **kwargs)

    def delete(self, path: str, **kwargs: Any) -> Any:
        return self.request("DELETE", path, **kwargs)


@pytest.fixture(autouse=True)
def fast_password_hashing(settings: Any) -> None:
    """The personas log in with tokens here, never passwords: hashing theirs slowly buys nothing."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@dataclass
class World:
    experiment: Experiment
    traces: list[Trace]
    session: LabelingSession
    given_copy: Trace  # the copy the reviewer took up
    other_copy: Trace  # a copy of the same session nobody gave the reviewer
    lead: User


@pytest.fixture
def lead(db: None) -> User:
    return User.objects.create_user("lead", "lead@example.com", "lead-pass")


@pytest.fixture
def world(admin_user: User, reviewer: User, lead: User) -> World:
    experiment = make_experiment("shop-bot")
    traces = [make_trace(experiment=experiment, name=f"t{i}", model_id="v2" if i % 2 else "v1") for i in range(4)]
    session = services.create_labeling_session(name="Week 48", reviewers=[reviewer], created_by=admin_user)
    session.leads.add(lead)
    services.add_traces_to_session(session=session, trace_ids=[traces[0].trace_id, traces[1].trace_id])
    item = claims.claim_next_item(session=session, reviewer=reviewer)
    assert item is not None
    other = session.items.exclude(pk=item.pk).get()
    return World(experiment, traces, session, item.trace, other.trace, lead)


@pytest.fixture
def tokens(admin_user: User, reviewer: User, outsider: User, lead: User) -> dict[str, str]:
    people = (admin_user, reviewer, outsider, lead)
    return {user.username: create_api_token(user=user, name="tests")[1] for user in people}


@pytest.fixture
def as_admin(tokens: dict[str, str]) -> ApiClient:
    return ApiClient(tokens["admin"])


@pytest.fixture
def as_lead(tokens: dict[str, str]) -> ApiClient:
    return ApiClient(tokens["lead"])


@pytest.fixture
def as_reviewer(tokens: dict[str, str]) -> ApiClient:
    return ApiClient(tokens["reviewer"])


@pytest.fixture
def as_outsider(tokens: dict[str, str]) -> ApiClient:
    return ApiClient(tokens["outsider"])


@pytest.fixture
def anonymous() -> ApiClient:
    return ApiClient(None)


def assert_error(response: Any, status: int, code: str, *words: str) -> dict[str, Any]:
    """The API's one error shape, with the status, MLflow code and message words expected."""
    assert response.status_code == status, response.content[:500]
    assert response["Content-Type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"error_code", "message"}, body
    assert body["error_code"] == code, body
    for word in words:
        assert word in body["message"], body
    assert "Traceback" not in body["message"]
    return body


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """How many requests the OpenAPI fuzz sent (when it ran), for the record."""
    import sys

    fuzz = sys.modules.get("tests.api.test_openapi_fuzz")
    if fuzz is not None and fuzz.REQUESTS["sent"]:
        by_class = ", ".join(f"{n} {k}xx" for k, n in sorted(fuzz.STATUSES.items()))
        sent, operations = fuzz.REQUESTS["sent"], fuzz.REQUESTS["operations"]
        terminalreporter.write_line(f"OpenAPI fuzz: {sent} requests to {operations} operations ({by_class})")
