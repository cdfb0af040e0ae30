"""A large add of traces shows a progress bar on the session page that fills, then the outcome.

The task runs in the test's process, one batch at a time, so every state the page shows is
reached deterministically: waiting for a worker, part-way, done.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import User
from playwright.sync_api import Page, expect

from labeling import services
from labeling.models import JobState, LabelingSession, TraceAddJob
from tests.e2e.conftest import login
from tests.factories import make_experiment, make_trace

SIZES = [(1366, 800), (1024, 768)]
N_TRACES = 30


@pytest.fixture
def session(transactional_db: None, settings: Any, monkeypatch: pytest.MonkeyPatch) -> LabelingSession:
    settings.TASKS = {"default": {"BACKEND": "django_tasks.backends.dummy.DummyBackend"}}  # queued, not run
    settings.TRACE_ADD_BACKGROUND_THRESHOLD = 20
    monkeypatch.setattr(services, "COPY_BATCH", 10)
    User.objects.create_user("admin", password="admin-pass", is_staff=True)
    experiment = make_experiment("Production")
    for _ in range(N_TRACES):
        make_trace(name="checkout", experiment=experiment)
    return services.create_labeling_session(name="Checkout review")


@pytest.mark.parametrize(("width", "height"), SIZES)
def test_a_large_add_shows_a_progress_bar_then_the_result(
    session: LabelingSession, live_server: Any, page: Page, screenshot_dir: Path, width: int, height: int
) -> None:
    page.set_viewport_size({"width": width, "height": height})
    login(page, live_server, "admin", "admin-pass")
    page.goto(f"{live_server.url}/manage/sessions/{session.pk}/add-traces/?name=checkout")
    page.get_by_role("button", name=f"Add all {N_TRACES} traces").click()
    page.wait_for_url(f"{live_server.url}/manage/sessions/{session.pk}/")
    card = page.locator(".add-job")
    expect(page.locator(".messages")).to_contain_text(f"Adding {N_TRACES} traces in the background")
    expect(card).to_contain_text("Waiting for a background worker")
    expect(card.locator("progress")).to_have_attribute("value", "0")

    job = TraceAddJob.objects.get()
    TraceAddJob.objects.filter(pk=job.pk).update(state=JobState.RUNNING, attempts=1)
    assert services.copy_next_batch(job_id=job.pk)  # the worker's first batch
    expect(card).to_contain_text("10 of 30 · 33%", timeout=10_000)  # HTMX polling, no reload
    expect(card.locator("progress")).to_have_attribute("value", "10")
    box = card.locator("progress").bounding_box()
    assert box is not None and box["width"] > width * 0.5  # a bar across the card, not a sliver
    page.screenshot(path=str(screenshot_dir / f"trace-add-progress-{width}.png"), full_page=False)

    services.run_trace_add_job(job_id=job.pk)  # the rest
    expect(card).to_contain_text("Added 30 traces", timeout=10_000)
    expect(card).to_contain_text("0 were already in this session")
    expect(card.locator("progress")).to_have_count(0)
    expect(page.locator("#progress")).to_contain_text(f"0 of {N_TRACES} items complete")  # refreshed with it
    page.screenshot(path=str(screenshot_dir / f"trace-add-done-{width}.png"), full_page=False)
    assert session.items.count() == N_TRACES
