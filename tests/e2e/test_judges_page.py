"""The judges page in a real browser: the endpoint, Test connection (htmx) with its latency, then its error."""

from __future__ import annotations

from typing import Any

from tests.evaluation.judges.conftest import API_KEY, failure, judge_env, judge_server  # noqa: F401 (fixtures)

from .conftest import login


def test_test_connection_shows_latency_then_the_exact_error(
    page: Any,
    live_server: Any,
    admin_user: Any,
    judge_server: Any,  # noqa: F811 (the imported fixture)
    settings: Any,
    screenshot_dir: Any,
) -> None:
    settings.JUDGE_GUIDELINES = {
        "concise_communication": ["The response must be concise."],
        "follows_instructions": ["The response must answer the question asked.", "It must cite a document."],
    }
    login(page, live_server, "admin", "admin-pass")
    page.goto(f"{live_server.url}/datasets/scorers/")
    page.click("text=Judges")
    page.click("button:has-text('Test connection')")
    page.wait_for_selector("#judge-check .notice.ok")
    assert "judge-model-2026-01 answered in" in page.inner_text("#judge-check")
    assert page.url.endswith("/datasets/judges/")  # htmx swapped the result in place
    for width, height in ((1366, 800), (1024, 700)):
        page.set_viewport_size({"width": width, "height": height})
        page.screenshot(path=str(screenshot_dir / f"judges_{width}.png"), full_page=True)
    judge_server.default = failure(401, f"Incorrect API key provided: {API_KEY}")
    page.click("button:has-text('Test connection')")
    page.wait_for_selector("#judge-check .error")
    assert "HTTP 401 from the judge endpoint: Incorrect API key provided: [redacted]" in page.inner_text("#judge-check")
    assert API_KEY not in page.content()
    page.screenshot(path=str(screenshot_dir / "judges_error_1024.png"), full_page=True)


def test_not_configured(
    page: Any,
    live_server: Any,
    admin_user: Any,
    judge_env: Any,  # noqa: F811 (the imported fixture)
    screenshot_dir: Any,
) -> None:
    login(page, live_server, "admin", "admin-pass")
    page.goto(f"{live_server.url}/datasets/judges/")
    assert page.is_visible("text=No judge endpoint is configured, so judges cannot be started.")
    page.set_viewport_size({"width": 1366, "height": 800})
    page.screenshot(path=str(screenshot_dir / "judges_not_configured_1366.png"), full_page=True)
