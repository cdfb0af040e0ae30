"""The trace list's "Load more" in a real browser: HTMX appends the next rows in place."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from django.contrib.auth.models import User
from playwright.sync_api import Page, expect

from tests.e2e.conftest import login
from tests.factories import make_experiment, make_trace


def test_load_more_appends_every_remaining_trace_once(transactional_db: None, live_server: Any, page: Page) -> None:
    User.objects.create_user("admin", password="admin-pass", is_staff=True, is_superuser=True)
    experiment = make_experiment()
    base = datetime(2026, 11, 1, tzinfo=UTC)
    for i in range(70):  # ties: two traces per second
        make_trace(experiment=experiment, n_spans=1, request_time=base + timedelta(seconds=i // 2))
    page.set_viewport_size({"width": 1366, "height": 800})
    login(page, live_server, "admin", "admin-pass")
    page.goto(f"{live_server.url}/traces/")
    rows = page.locator("td.trace-name a")
    expect(rows).to_have_count(50)
    link = page.locator("#load-more a")
    assert "after=" in (link.get_attribute("href") or "")  # a real link too, without JavaScript
    link.click()
    expect(rows).to_have_count(70)
    expect(page.locator("#load-more")).to_have_count(0)
    names = [href for href in rows.evaluate_all("links => links.map(a => a.getAttribute('href'))")]
    assert len(set(names)) == 70
    assert page.url.endswith("/traces/")  # appended in place, not a new page
