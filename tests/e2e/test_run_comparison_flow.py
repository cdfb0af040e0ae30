"""A developer's loop in the browser: a run's page → the comparison with the previous version → its regressions
→ those traces sent to a labeling session for the experts.

The two runs are the demo's (two versions of the demo assistant called on the same 20 questions and scored).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import User
from playwright.sync_api import Page, expect

from evaluation.demo import seed_evaluation_demo
from labeling import services as labeling_services
from labeling.models import LabelingSession, ReviewItem
from tests.e2e.conftest import login

SIZES = [(1366, 800), (1024, 768)]


@pytest.fixture
def demo(transactional_db: None) -> LabelingSession:
    User.objects.create_user("admin", password="admin-pass", is_staff=True)
    seed_evaluation_demo()
    return labeling_services.create_labeling_session(name="Check the regressions")


@pytest.mark.parametrize(("width", "height"), SIZES)
def test_run_to_comparison_to_regressions_to_a_session(
    demo: LabelingSession, live_server: Any, page: Page, screenshot_dir: Path, width: int, height: int
) -> None:
    page.set_viewport_size({"width": width, "height": height})
    login(page, live_server, "admin", "admin-pass")
    page.goto(f"{live_server.url}/datasets/runs/")
    expect(page.locator("table.runs tbody tr")).to_have_count(2)
    page.get_by_role("link", name="Demo v2: concise answers").click()
    expect(page.locator("h1")).to_have_text("Demo v2: concise answers")
    expect(page.locator(".metric-card").first).to_be_visible()
    page.screenshot(path=str(screenshot_dir / f"run-detail-{width}.png"), full_page=False)

    page.get_by_role("link", name="Compare with Demo v1: full answers").click()
    expect(page.locator("h1")).to_have_text("Compare evaluation runs")
    metrics = page.locator("table", has_text="mentions_expected_fact/mean")
    expect(metrics.locator("tr", has_text="mentions_expected_fact/mean")).to_contain_text("better")
    page.screenshot(path=str(screenshot_dir / f"run-compare-{width}.png"), full_page=False)

    page.locator(".scorer-filter").get_by_role("link", name="mentions_expected_fact").click()  # htmx swap
    expect(page).to_have_url(re.compile(r"/datasets/runs/compare/\?a=\d+&b=\d+&scorer=mentions_expected_fact$"))
    regressions = page.locator("article.example.has-regression")
    expect(regressions).to_have_count(3)
    first = regressions.first
    expect(first.locator(".change-row")).to_contain_text("yes → no")
    expect(first.locator(".change-row .rationale").last).to_contain_text("Missing:")  # B's rationale
    expect(page.locator("article.example:not(.has-regression)")).to_have_count(4)  # the improvements, after them
    page.screenshot(path=str(screenshot_dir / f"run-compare-regressions-{width}.png"), full_page=False)

    page.select_option("#compare-add-session", label="Check the regressions")
    page.get_by_role("button", name="Add to session").click()
    expect(page.locator(".messages")).to_contain_text(
        "Added 3 regressed traces of “Demo v2: concise answers” to “Check the regressions”"
    )
    items = ReviewItem.objects.filter(session=demo).select_related("trace")
    assert [item.trace.model_id for item in items] == ["demo-v2"] * 3  # copies of B's traces, for the experts
