"""The API tokens page in a real browser: make a token, see it once, revoke it."""

from __future__ import annotations

from typing import Any

from traces.models import ApiToken
from traces.tokens import hash_token

from .conftest import login


def test_make_copy_and_revoke_a_token(page: Any, live_server: Any, reviewer: Any, screenshot_dir: Any) -> None:
    login(page, live_server, "reviewer", "reviewer-pass")
    page.click("text=API tokens")
    page.fill("#id_name", "laptop exporter")
    page.click("button:has-text('Create token')")
    secret = page.input_value("input.token-value")
    assert ApiToken.objects.get(user=reviewer).token_hash == hash_token(secret)
    assert page.is_visible("text=shown only once")
    for width, height in ((1366, 800), (1024, 700)):
        page.set_viewport_size({"width": width, "height": height})
        page.screenshot(path=str(screenshot_dir / f"api_tokens_{width}.png"), full_page=True)
    page.goto(f"{live_server.url}/account/tokens/")
    assert secret not in page.content()
    page.click("button:has-text('Revoke')")
    assert page.is_visible("text=is revoked")
    assert ApiToken.objects.get(user=reviewer).revoked_at is not None
