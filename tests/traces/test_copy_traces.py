"""Frozen copies keep their originals' order: traces, spans and assessments (what "the older one" means)."""

from __future__ import annotations

import pytest
from django.db import connection, transaction
from django.utils import timezone

from tests.factories import make_experiment, make_trace
from traces.ingest.store import copy_traces
from traces.models import Assessment, Span

pytestmark = pytest.mark.django_db
KEY = "test.copiedFrom"


def _hash_joins() -> None:
    """Make PostgreSQL join as it may on a big table: a plan that does not follow the originals' order."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SET LOCAL enable_nestloop = off")
            cursor.execute("SET LOCAL enable_mergejoin = off")


def test_copies_are_made_in_the_originals_order_whatever_the_join_plan() -> None:
    experiment, target = make_experiment("Source"), make_experiment("Copies")
    sources = [make_trace(experiment=experiment) for _ in range(5)]
    now = timezone.now()
    for trace in sources:
        for n in range(12):  # same create_time: only the id orders them
            Assessment.objects.create(
                trace=trace,
                assessment_id=f"a-{trace.pk}-{n}",
                name="correct",
                kind="feedback",
                value=n % 2 == 0,
                create_time=now,
                last_update_time=now,
            )
    with transaction.atomic():
        _hash_joins()
        copy_of = copy_traces(source_ids=[t.pk for t in reversed(sources)], experiment=target, provenance_key=KEY)
    assert sorted(copy_of.values()) == [copy_of[t.pk] for t in sources]  # copy ids follow the originals'
    for trace in sources:
        copied = Assessment.objects.filter(trace_id=copy_of[trace.pk]).order_by("id")
        assert [a.metadata[KEY] for a in copied] == [f"a-{trace.pk}-{n}" for n in range(12)]
        spans = Span.objects.filter(trace_id=copy_of[trace.pk]).order_by("id").values_list("span_id", flat=True)
        assert list(spans) == list(Span.objects.filter(trace=trace).order_by("id").values_list("span_id", flat=True))
