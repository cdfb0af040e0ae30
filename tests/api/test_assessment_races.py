"""Two overrides of one assessment at once (PostgreSQL row locks): one wins, the other is told, nothing is lost."""

from __future__ import annotations

import threading

import pytest
from django.db import connection, connections

from tests.factories import make_assessment, make_trace
from traces.models import Assessment, AssessmentKind
from traces.services import AssessmentConflict, NewAssessment, override_assessment

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.mark.skipif(connection.vendor != "postgresql", reason="row locks need PostgreSQL")
def test_concurrent_overrides_leave_one_valid_successor() -> None:
    old = make_assessment(make_trace(n_spans=1), "correct", False)
    barrier = threading.Barrier(2)
    outcomes: list[str] = []

    def correct(value: bool) -> None:
        try:
            barrier.wait()
            override_assessment(old=old, new=NewAssessment(name="", kind=AssessmentKind.FEEDBACK, value=value))
            outcomes.append("stored")
        except AssessmentConflict:
            outcomes.append("conflict")
        finally:
            connections.close_all()

    threads = [threading.Thread(target=correct, args=(value,)) for value in (True, False)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == ["conflict", "stored"]
    assert Assessment.objects.filter(valid=True).count() == 1
    assert Assessment.objects.filter(overrides=old.assessment_id).count() == 1
