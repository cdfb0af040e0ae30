"""The explorer's MLflow filter-string search box in a real browser: examples, results, errors."""

from __future__ import annotations

import io
import re
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from django.test import override_settings
from playwright.sync_api import Page, expect

from tests.e2e.conftest import login

SIZES = {"desktop": {"width": 1366, "height": 800}, "small": {"width": 1024, "height": 768}}


@pytest.fixture
def demo(transactional_db: None) -> None:
    with override_settings(DEBUG=True):
        call_command("seed_demo", stdout=io.StringIO())


@pytest.mark.parametrize("size", list(SIZES))
def test_search_box_examples_results_and_errors(
    demo: None, live_server: Any, page: Page, screenshot_dir: Path, size: str
) -> None:
    page.set_viewport_size(SIZES[size])
    login(page, live_server, "admin", "admin")
    page.goto(f"{live_server.url}/traces/")
    rows = page.locator("table.traces tbody tr")
    expect(rows.first).to_be_visible()
    expect(page.locator("table.traces th", has_text="Version")).to_be_visible()

    # The help opens without JavaScript (a <details>), over the filters, and its examples are links.
    page.click(".filter-help > summary")
    help_body = page.locator(".filter-help-body")
    expect(help_body).to_be_visible()
    box = help_body.bounding_box()
    assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= SIZES[size]["width"]
    page.screenshot(path=str(screenshot_dir / f"trace_search_help_{size}.png"))

    # Typing a filter and pressing Enter swaps the table (HTMX) and keeps it in the URL.
    page.click(".filter-help > summary")
    page.fill("#id_filter_string", "tags.app_version = '1.4.0' AND feedback.correct = false")
    page.press("#id_filter_string", "Enter")
    expect(page).to_have_url(re.compile(r"filter_string=tags\.app_version"))
    expect(page.locator("#trace-table .count")).to_contain_text("trace")
    for version in page.locator("td.version span[title]").all_inner_texts():
        assert version.startswith("m-")
    page.screenshot(path=str(screenshot_dir / f"trace_search_results_{size}.png"))

    # A bad filter is said inline, at its position, and the table shows nothing.
    page.fill("#id_filter_string", "tags.env 'prod'")
    page.press("#id_filter_string", "Enter")
    error = page.locator("#filter-error")
    expect(error).to_contain_text("position 10: expected a comparator")
    expect(error.locator("mark")).to_have_text("'")
    expect(page.locator("#trace-table")).to_contain_text("No traces match")
    page.screenshot(path=str(screenshot_dir / f"trace_search_error_{size}.png"))

    # The README's picture of the list: a search with several rows and their versions.
    page.fill("#id_filter_string", "feedback.correct = false")
    page.press("#id_filter_string", "Enter")
    expect(page.locator("#filter-error")).to_be_empty()
    expect(page.locator("td.version span[title]").first).to_be_visible()
    page.screenshot(path=str(screenshot_dir / f"trace_list_search_{size}.png"))
