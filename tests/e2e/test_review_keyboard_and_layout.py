"""The review screen by keyboard and on small screens (issue 9, items 15, 16, 17 and 22).

An item with a long trace and questions of several kinds, the first one "pick several".
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import User
from playwright.sync_api import Page, expect

from labeling import services
from labeling.models import LabelingSession, LabelSchema, ReviewItem
from tests.e2e.conftest import login
from tests.factories import make_trace

SIZES = [(1366, 800), (1024, 768)]
QUESTIONS = [
    {
        "name": "problems",
        "title": "What is wrong with the answer?",
        "input_type": "categorical_list",
        "options": ["outdated", "wrong dose", "missing caveat"],
    },
    {"name": "correct", "title": "Is the answer correct?", "input_type": "pass_fail", "enable_comment": True},
    {"name": "tone", "title": "How is the tone?", "input_type": "categorical", "options": ["kind", "neutral", "rude"]},
    {"name": "grounded", "title": "Grounded (1-5)?", "input_type": "numeric", "min_value": 1, "max_value": 5},
    {"name": "better_answer", "title": "What should it have said?", "input_type": "text", "type": "expectation"},
]


@pytest.fixture
def item(transactional_db: None) -> ReviewItem:
    """One item with a long trace (60 spans, 12 documents, a long answer) and five questions."""
    reviewer = User.objects.create_user("dr_kim", password="reviewer-pass")
    schemas = [services.save_label_schema(schema=LabelSchema(**{"type": "feedback", **spec})) for spec in QUESTIONS]
    session = services.create_labeling_session(
        name="Cardiology", schemas=schemas, reviewers=[reviewer], instructions="Check the **documents**."
    )
    answer = "Take 81 mg of aspirin a day with food, unless your doctor said otherwise. " * 30
    trace = make_trace(n_spans=60, n_documents=12, question="Can I take aspirin with warfarin?", answer=answer)
    services.add_traces_to_session(session=session, trace_ids=[trace.trace_id])
    return session.items.get()


def open_item(page: Page, live_server: Any, session: LabelingSession) -> None:
    login(page, live_server, "dr_kim", "reviewer-pass")
    page.goto(f"{live_server.url}/review/{session.pk}/")
    expect(page.locator("#review-main")).to_be_visible()


def question(page: Page, index: int) -> Any:
    return page.locator("#answer-form fieldset.question").nth(index)


def focused_question(page: Page) -> int:
    """Index of the question holding the keyboard focus, -1 when the focus is elsewhere."""
    return page.evaluate(
        """() => {
            const q = document.activeElement && document.activeElement.closest("fieldset.question");
            return q ? Array.from(document.querySelectorAll("#answer-form fieldset.question")).indexOf(q) : -1;
        }"""
    )


def tabs_to_reach(page: Page, index: int, most: int) -> int | None:
    """Press Tab until the focus is in question ``index``; how many presses it took (None: not within ``most``)."""
    for presses in range(1, most + 1):
        page.keyboard.press("Tab")
        if focused_question(page) == index:
            return presses
    return None


def test_esc_moves_on_from_a_pick_several_question(item: ReviewItem, live_server: Any, page: Page) -> None:
    open_item(page, live_server, item.session)
    expect(question(page, 0)).to_have_class("question active")
    page.keyboard.press("1")  # ticks "outdated" and stays: more boxes may apply
    page.keyboard.press("3")  # ticks "missing caveat"
    expect(question(page, 0).locator("input[value=outdated]")).to_be_checked()
    expect(question(page, 0).locator("input[value='missing caveat']")).to_be_checked()
    expect(question(page, 0)).to_have_class("question active")

    page.keyboard.press("Escape")  # the documented key: on to the next question
    expect(question(page, 1)).to_have_class("question active")
    assert focused_question(page) == 1
    page.keyboard.press("2")  # Fail, and on by itself to the next question
    expect(question(page, 1).locator("input[value=fail]")).to_be_checked()
    expect(question(page, 2)).to_have_class("question active")
    page.keyboard.press("Shift+Escape")  # and back
    expect(question(page, 1)).to_have_class("question active")

    # From a text box Esc moves on too; after the last question it lands on Submit.
    question(page, 4).locator("textarea").focus()
    page.keyboard.type("Do not combine them without asking your doctor.")
    page.keyboard.press("Escape")
    expect(page.locator("button[type=submit][form=answer-form]")).to_be_focused()

    # The shortcut list says so.
    page.keyboard.press("?")
    help_dialog = page.locator("#shortcut-help")
    expect(help_dialog).to_be_visible()
    expect(help_dialog.locator("tr", has_text="Esc").first).to_contain_text("go to the next one")


def test_tab_from_the_last_option_of_question_1_reaches_question_2(
    item: ReviewItem, live_server: Any, page: Page
) -> None:
    open_item(page, live_server, item.session)
    page.keyboard.press("3")  # the last option of question 1, by keyboard
    presses = tabs_to_reach(page, 1, most=3)
    assert presses is not None and presses <= 2, "Tab from question 1 did not reach question 2 in 3 presses"

    # With the mouse in the last option, too.
    page.reload()
    question(page, 0).locator("input[value='missing caveat']").click()
    assert tabs_to_reach(page, 1, most=3) is not None


def test_tab_runs_through_the_questions_before_the_trace(item: ReviewItem, live_server: Any, page: Page) -> None:
    open_item(page, live_server, item.session)
    assert tabs_to_reach(page, 0, most=1) == 1  # nothing focused yet: Tab starts at the highlighted question
    page.locator("[data-show-help]").focus()  # the last item link above the answers
    presses = tabs_to_reach(page, 0, most=3)
    assert presses is not None, "Tab went into the trace before the questions"
    in_trace = page.evaluate("() => !!document.activeElement.closest('.review-trace')")
    assert not in_trace


@pytest.mark.parametrize(("width", "height"), SIZES)
def test_submit_and_items_left_stay_in_view(
    item: ReviewItem, live_server: Any, page: Page, screenshot_dir: Path, width: int, height: int
) -> None:
    page.set_viewport_size({"width": width, "height": height})
    open_item(page, live_server, item.session)
    submit = page.get_by_role("button", name="Submit and go to next")
    left = page.locator(".left-count")
    expect(left).to_have_text("1 of 1 left")
    page_height = page.evaluate("() => document.documentElement.scrollHeight")
    assert page_height > 2 * height, "the trace is long enough to scroll"

    def assert_in_view(where: str) -> None:
        for element in (submit, left):
            box = element.bounding_box()
            assert box is not None
            assert 0 <= box["y"] <= height - box["height"], f"{where}: {box} outside 0..{height}"
            assert 0 <= box["x"] <= width - box["width"], f"{where}: {box} outside 0..{width}"

    assert_in_view("page top")
    page.screenshot(path=str(screenshot_dir / f"review_{width}x{height}.png"))
    page.evaluate("() => window.scrollTo(0, document.documentElement.scrollHeight)")
    expect(page.locator("#span-tree")).to_be_in_viewport()
    assert_in_view("page bottom")
    page.locator(".answer-scroll").evaluate("el => el.scrollTo(0, el.scrollHeight)")  # the questions' own scroll
    assert_in_view("questions scrolled")
    page.screenshot(path=str(screenshot_dir / f"review_{width}x{height}_scrolled.png"))


def test_span_tree_is_open_and_folds_on_the_review_screen(item: ReviewItem, live_server: Any, page: Page) -> None:
    open_item(page, live_server, item.session)
    tree = page.locator("#span-tree")
    root = tree.locator("details.span-node").first
    child_link = root.locator(".span-children .span-link").first
    expect(tree.locator("summary.span-row").first).to_be_visible()
    expect(child_link).to_be_visible()  # open as on the trace page: not one row
    expect(tree.locator(".span-link:visible")).not_to_have_count(1)

    summary = root.locator("> summary")
    summary.click(position={"x": 6, "y": 10})  # the expander at the start of the row
    expect(child_link).to_be_hidden()
    summary.click(position={"x": 6, "y": 10})
    expect(child_link).to_be_visible()


def test_picking_an_option_does_not_move_it(item: ReviewItem, live_server: Any, page: Page) -> None:
    open_item(page, live_server, item.session)
    options = question(page, 2).locator("label.option")
    before = [options.nth(i).bounding_box() for i in range(3)]
    options.nth(0).click()
    expect(options.nth(0).locator("input")).to_be_checked()
    after = [options.nth(i).bounding_box() for i in range(3)]
    assert after == before


def test_pages_ask_for_no_missing_file(item: ReviewItem, live_server: Any, page: Page) -> None:
    """No favicon 404 (each one a debug page) or other missing file on the review screen."""
    missing: list[str] = []
    page.on("response", lambda response: missing.append(response.url) if response.status == 404 else None)
    open_item(page, live_server, item.session)
    page.keyboard.press("1")
    page.keyboard.press("Control+Enter")
    expect(page.get_by_text("All done")).to_be_visible()
    icon = page.evaluate("() => document.querySelector('link[rel=icon]').href")
    assert page.request.get(icon).ok
    assert missing == []
