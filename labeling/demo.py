"""The demo set-up: demo traces, an admin and a reviewer, questions, and a labeling session."""

from __future__ import annotations

import os
from dataclasses import dataclass

from django.contrib.auth.models import User
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


@dataclass
class DemoResult:
    traces_created: int
    traces_updated: int
    session: LabelingSession
    items_added: int
    admin_password: str | None
    reviewer_password: str | None


def _user(username: str, *, staff: bool, password_env: str, default: str) -> str | None:
    """Create the user with a known password; an existing user keeps theirs (None is returned)."""
    if User.objects.filter(username=username).exists():
        return None
    password = os.environ.get(password_env) or default
    User.objects.create_user(username, f"{username}@example.com", password, is_staff=staff, is_superuser=staff)
    return password


def _schema(spec: dict) -> LabelSchema:
    existing = LabelSchema.objects.filter(name=spec["name"]).first()
    return existing or services.save_label_schema(schema=LabelSchema(**spec))


def seed_demo() -> DemoResult:
    records = [record for document in demo_documents() for record in parse_document(document)]
    with transaction.atomic():
        stored = store_traces(records, experiment=resolve_experiment(DEMO_EXPERIMENT))
        admin_password = _user("admin", staff=True, password_env="DEMO_ADMIN_PASSWORD", default="admin")
        reviewer_password = _user("reviewer", staff=False, password_env="DEMO_REVIEWER_PASSWORD", default="reviewer")
        admin, reviewer = User.objects.get(username="admin"), User.objects.get(username="reviewer")
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
    return DemoResult(stored.created, stored.updated, session, added.added, admin_password, reviewer_password)
