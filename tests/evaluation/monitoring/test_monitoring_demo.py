"""The monitoring demo: two registered scorers and a week of verdicts, seeded once, topped up later."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from evaluation.monitoring.dashboard import WINDOWS, quality_over_time
from evaluation.monitoring.demo import TRACES_PER_HOUR, seed_monitoring_demo
from evaluation.monitoring.models import MonitoringResult
from traces.models import Assessment, Trace

pytestmark = pytest.mark.django_db


def test_the_demo_fills_a_week_for_two_scorers_and_seeding_again_adds_only_new_hours(client: Client, admin_user):
    now = timezone.now()
    demo = seed_monitoring_demo(now=now)
    assert [r.name for r in demo.registrations] == ["fast_enough", "answer_length"]
    assert 7 * 24 * TRACES_PER_HOUR <= demo.traces_created <= 8 * 24 * TRACES_PER_HOUR
    results = MonitoringResult.objects.count()
    assert Assessment.objects.filter(name__in=["fast_enough", "answer_length"]).count() == results
    again = seed_monitoring_demo(now=now)
    assert again.traces_created == 0 and MonitoringResult.objects.count() == results
    later = seed_monitoring_demo(now=now + timedelta(hours=2))
    assert later.traces_created == 2 * TRACES_PER_HOUR and Trace.objects.count() == demo.traces_created + 8
    length, fast = quality_over_time(demo.experiment, WINDOWS["7d"], now=now)
    assert length.registration.name == "answer_length" and length.numeric and length.totals.mean > 0
    assert not fast.numeric and 0.6 < fast.totals.pass_rate < 0.98 and fast.totals.errors > 0
    assert all(b.total for b in fast.buckets)  # every day of the week has traffic
    client.force_login(admin_user)
    html = client.get(reverse("evaluation:monitoring", args=[demo.experiment.pk])).content.decode()
    assert html.count("<svg") == 2 and "(threshold 2000 ms)" in html
