"""The demo set-up: demo traces, an admin and a reviewer, questions, and a labeling session."""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from typing import Literal

from django.conf import settings
from django.contrib.auth.hashers import check_password
from django.contrib.auth.models import User
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.db import transaction

from traces.demo import DEMO_EXPERIMENT, demo_documents
from traces.ingest import parse_document, resolve_experiment, store_traces
from traces.models import Trace

from . import services
from .models import LabelingSession, LabelSchema

DEMO_SESSION = "Demo: are the policy answers right?"
DEMO_SCHEMAS = [
    {
        "name": "correct",
        "type": "feedback",
        "title": "Is the answer correct?",
        "instruction": "Compare the answer with the **retrieved policy documents**. Any claim not in them makes it incorrect.",
        "input_type": "pass_fail",
        "pass_label": "Correct",
        "fail_label": "Incorrect",
        "enable_comment": True,
    },
    {
        "name": "helpfulness",
        "type": "feedback",
        "title": "How helpful is the answer for the member?",
        "input_type": "categorical",
        "options": ["very helpful", "somewhat helpful", "not helpful"],
    },
    {
        "name": "groundedness",
        "type": "feedback",
        "title": "How well is the answer grounded in the documents? (1 = not at all, 5 = fully)",
        "input_type": "numeric",
        "min_value": 1,
        "max_value": 5,
        "integer": True,
    },
]


PasswordSource = Literal["demo", "environment", "generated", "existing"]


class DemoSetupError(ValueError):
    """The demo cannot be set up as asked (for example a weak password in the environment); nothing was written."""


@dataclass(frozen=True)
class DemoLogin:
    """A demo user and how its password was chosen; ``password`` is set only when the user was given one now."""

    username: str
    staff: bool
    source: PasswordSource
    password: str | None = None
    env_name: str = ""
    replaced_demo_password: bool = False


@dataclass
class DemoResult:
    traces_created: int
    traces_updated: int
    session: LabelingSession
    items_added: int
    logins: list[DemoLogin]


# (username, staff, environment variable); with DEBUG on and no variable set, the password is the username.
DEMO_USERS = [("admin", True, "DEMO_ADMIN_PASSWORD"), ("reviewer", False, "DEMO_REVIEWER_PASSWORD")]


def _choose_login(username: str, *, staff: bool, env_name: str, debug: bool) -> DemoLogin:
    """Decide a demo user's password without writing anything.

    An existing user keeps theirs, except on a production server (DEBUG off) where one still having the
    well-known demo password gets a new one. A password from the environment must pass Django's password
    validators; with DEBUG off and none given, a strong random one is generated (printed once by the command).
    """
    existing = User.objects.filter(username=username).first()
    still_demo = existing is not None and not debug and check_password(username, existing.password)
    if existing is not None and not still_demo:
        return DemoLogin(username, staff, "existing")
    from_env = os.environ.get(env_name, "")
    if from_env:
        try:
            validate_password(from_env, User(username=username, email=f"{username}@example.com"))
        except ValidationError as exc:
            raise DemoSetupError(f"{env_name} is not accepted: {' '.join(exc.messages)}") from None
        return DemoLogin(username, staff, "environment", from_env, env_name, still_demo)
    if debug:
        return DemoLogin(username, staff, "demo", username, env_name)
    return DemoLogin(username, staff, "generated", secrets.token_urlsafe(18), env_name, still_demo)


def _apply_login(login: DemoLogin) -> User:
    user = User.objects.filter(username=login.username).first()
    if user is None:
        assert login.password is not None
        return User.objects.create_user(
            login.username,
            f"{login.username}@example.com",
            login.password,
            is_staff=login.staff,
            is_superuser=login.staff,
        )
    if login.password is not None:
        user.set_password(login.password)
        user.save(update_fields=["password"])
    return user


def _schema(spec: dict) -> LabelSchema:
    existing = LabelSchema.objects.filter(name=spec["name"]).first()
    return existing or services.save_label_schema(schema=LabelSchema(**spec))


def seed_demo() -> DemoResult:
    """Load the demo; raises DemoSetupError (having written nothing) when a demo password is refused."""
    logins = [
        _choose_login(username, staff=staff, env_name=env_name, debug=settings.DEBUG)
        for username, staff, env_name in DEMO_USERS
    ]
    records = [record for document in demo_documents() for record in parse_document(document)]
    with transaction.atomic():
        stored = store_traces(records, experiment=resolve_experiment(DEMO_EXPERIMENT))
        admin, reviewer = [_apply_login(login) for login in logins]
        custom = [_schema(spec) for spec in DEMO_SCHEMAS]
        builtin = list(LabelSchema.objects.filter(name__in=["expected_response", "expected_facts", "guidelines"]))
        session = LabelingSession.objects.filter(name=DEMO_SESSION).first()
        if session is None:
            session = services.create_labeling_session(
                name=DEMO_SESSION,
                schemas=[*custom, *sorted(builtin, key=lambda s: s.name)],
                reviewers=[reviewer],
                instructions="Read the member's question, the policy documents the assistant found, and its answer. "
                "Then answer the questions on the right. Press **?** for keyboard shortcuts.",
                created_by=admin,
            )
        demo_rag = Trace.objects.filter(experiment__name=DEMO_EXPERIMENT, name="support_rag").order_by("request_time")
        first_30 = list(demo_rag.values_list("pk", flat=True)[:30])
        added = services.add_traces_to_session(session=session, traces=Trace.objects.filter(pk__in=first_30))
    return DemoResult(stored.created, stored.updated, session, added.added, logins)
