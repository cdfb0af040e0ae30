"""The session form, the question form and the add-traces page at laptop sizes (issue 9, item 22)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import User
from playwright.sync_api import Page, expect

from labeling import services
from labeling.models import LabelingSession, LabelSchema
from tests.e2e.conftest import login
from tests.factories import make_trace

SIZES = [(1366, 800), (1024, 768)]

# Room left for the text of a drop-down's longest option: its inner width minus the arrow.
SELECT_FITS = """(select) => {
    const style = getComputedStyle(select);
    const ctx = document.createElement("canvas").getContext("2d");
    ctx.font = `${style.fontWeight} ${style.fontSize} ${style.fontFamily}`;
    const longest = Math.max(...Array.from(select.options).map((o) => ctx.measureText(o.text).width));
    const room = select.clientWidth - parseFloat(style.paddingLeft) - parseFloat(style.paddingRight) - 20;
    return {longest, room};
}"""


@pytest.fixture
def session(transactional_db: None) -> LabelingSession:
    User.objects.create_user("admin", password="admin-pass", is_staff=True)
    reviewers = [User.objects.create_user(name, password="pw-123456") for name in ("dr_lee", "dr_kim")]
    schemas = [
        services.save_label_schema(schema=LabelSchema(name=name, type="feedback", title=title, input_type="pass_fail"))
        for name, title in (("correct", "Is the answer correct?"), ("safe", "Is the advice safe?"))
    ]
    session = services.create_labeling_session(name="Cardiology", schemas=schemas[::-1], reviewers=reviewers[:1])
    traces = [make_trace(name="aspirin") for _ in range(2)]
    services.add_traces_to_session(session=session, trace_ids=[t.trace_id for t in traces])
    return session


def fits(page: Page, selector: str) -> None:
    measured = page.locator(selector).evaluate(SELECT_FITS)
    assert measured["longest"] <= measured["room"], f"{selector} cuts its text off: {measured}"


@pytest.mark.parametrize(("width", "height"), SIZES)
def test_manage_forms_at_laptop_sizes(
    session: LabelingSession, live_server: Any, page: Page, screenshot_dir: Path, width: int, height: int
) -> None:
    page.set_viewport_size({"width": width, "height": height})
    login(page, live_server, "admin", "admin-pass")

    page.goto(f"{live_server.url}/manage/sessions/{session.pk}/edit/")
    reviewers = page.locator("fieldset.choice-list", has_text="Reviewers")
    legend, first_box = reviewers.locator("legend"), reviewers.locator("label").first
    assert legend.bounding_box()["y"] < first_box.bounding_box()["y"]  # the label sits above its list
    assert legend.bounding_box()["x"] <= first_box.bounding_box()["x"]
    rows = page.locator("table.schema-order tr")
    expect(rows.nth(0)).to_contain_text("Is the advice safe?")  # the session's order, numbered 1, 2 from the top
    expect(rows.nth(0).locator("input")).to_have_value("1")
    expect(rows.nth(1).locator("input")).to_have_value("2")
    fits(page, "#id_assignment_mode")
    fits(page, "#id_status")
    page.screenshot(path=str(screenshot_dir / f"session_form_{width}x{height}.png"), full_page=True)

    page.goto(f"{live_server.url}/manage/schemas/new/")
    fits(page, "#id_type")
    fits(page, "#id_input_type")
    page.select_option("#id_input_type", "categorical")
    options = page.locator("#id_options")
    expect(options).to_be_visible()
    expect(options).to_have_attribute("placeholder", "Type one option per line")
    page.screenshot(path=str(screenshot_dir / f"schema_form_{width}x{height}.png"), full_page=True)

    page.goto(f"{live_server.url}/manage/sessions/{session.pk}/add-traces/?name=aspirin")
    expect(page.locator("#preview")).to_contain_text("Nothing to add: every matching trace is already in this session.")
    expect(page.locator("#preview button")).to_have_count(0)
    page.screenshot(path=str(screenshot_dir / f"add_traces_{width}x{height}.png"), full_page=True)
