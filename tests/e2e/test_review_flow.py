"""The labeling flow in a real browser: a reviewer labels three items with the keyboard only, then edits one."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.contrib.auth.models import User
from playwright.sync_api import Page, expect

from labeling import services
from labeling.models import LabelingSession, LabelSchema
from tests.e2e.conftest import login
from tests.factories import make_trace
from traces.models import Assessment


def admin_sets_up_session(page: Page, live_server: Any, screenshot_dir: Path) -> LabelingSession:
    """In the UI: create the pass/fail question and the session, then add traces from a filter."""
    login(page, live_server, "admin", "admin-pass")
    page.goto(f"{live_server.url}/manage/schemas/new/")
    page.fill("#id_title", "Is the answer correct?")
    page.fill("#id_name", "correct")
    page.select_option("#id_input_type", "pass_fail")
    expect(page.locator("#id_options")).to_be_hidden()  # only the chosen kind's settings show
    page.fill("#id_pass_label", "Pass")
    page.fill("#id_fail_label", "Fail")
    page.screenshot(path=str(screenshot_dir / "schema_form.png"), full_page=True)
    page.click("text=Save question")
    expect(page.get_by_text("Saved the question")).to_be_visible()

    page.goto(f"{live_server.url}/manage/sessions/new/")
    page.fill("#id_name", "Cardiology")
    for name, order in (("correct", "1"), ("helpfulness", "2"), ("groundedness", "3")):
        schema = LabelSchema.objects.get(name=name)
        page.fill(f"#id_schema_{schema.pk}", order)
    page.locator("#id_reviewers label", has_text="dr_lee").locator("input").check()
    page.click("text=Save session")
    expect(page.get_by_role("heading", name="Cardiology")).to_be_visible()
    session = LabelingSession.objects.get(name="Cardiology")
    assert list(session.reviewers.values_list("username", flat=True)) == ["dr_lee"]

    page.goto(f"{live_server.url}/traces/")
    page.locator("#id_name").press_sequentially("aspirin")  # HTMX swaps the table as you type
    expect(page.locator("#trace-table p.count")).to_have_text("3 traces")
    page.click("text=Add these 3 traces to a labeling session…")
    page.click("text=Cardiology")
    expect(page.locator("#preview")).to_contain_text("3 will be added")
    page.screenshot(path=str(screenshot_dir / "add_traces.png"), full_page=True)
    page.click("text=Add all 3 traces")
    expect(page.get_by_text("Added 3 traces (0 were already there)")).to_be_visible()
    page.screenshot(path=str(screenshot_dir / "session_dashboard.png"), full_page=True)
    page.click("text=Sign out")
    return session


def human_answers(item: Any) -> dict[str, Any]:
    return {a.name: a.value for a in Assessment.objects.filter(trace=item.trace, source_type="HUMAN", valid=True)}


def test_admin_sets_up_and_reviewer_labels_three_items_with_the_keyboard(
    transactional_db: None, live_server: Any, page: Page, screenshot_dir: Path
) -> None:
    User.objects.create_user("admin", password="admin-pass", is_staff=True)
    User.objects.create_user("dr_lee", password="reviewer-pass")
    for spec in (
        {
            "name": "helpfulness",
            "title": "How helpful is it?",
            "input_type": "categorical",
            "options": ["very", "somewhat", "not"],
            "enable_comment": True,
        },
        {
            "name": "groundedness",
            "title": "Grounded in the documents (1-5)?",
            "input_type": "numeric",
            "min_value": 1,
            "max_value": 5,
            "integer": True,
        },
    ):
        services.save_label_schema(schema=LabelSchema(type="feedback", **spec))
    for i in range(3):
        make_trace(name=f"aspirin_{i}", question=f"Can I take aspirin with drug {i}?")
    make_trace(name="unrelated", question="Where is my invoice?")
    session = admin_sets_up_session(page, live_server, screenshot_dir)
    assert session.items.count() == 3 and session.ordered_schemas()[0].name == "correct"
    items = list(session.items.order_by("position"))
    main = page.locator("#review-main")

    login(page, live_server, "dr_lee", "reviewer-pass")
    page.goto(f"{live_server.url}/review/")
    page.get_by_role("link", name="Start").click()
    expect(main).to_have_attribute("data-item", str(items[0].pk))
    expect(page.locator("#documents li.doc").first).to_be_visible()  # documents visible with no click
    expect(page.get_by_text("3 of 3 left")).to_be_visible()
    page.screenshot(path=str(screenshot_dir / "review_item.png"), full_page=True)

    # Item 1: two keys — "1" picks Pass, Ctrl+Enter submits and shows the next item.
    page.keyboard.press("1")
    page.keyboard.press("Control+Enter")
    expect(main).to_have_attribute("data-item", str(items[1].pk))
    expect(page.get_by_text("2 of 3 left")).to_be_visible()

    # Item 2: Fail, "somewhat", groundedness 4, a comment typed in its box, Ctrl+Enter from inside the box.
    page.keyboard.press("2")  # correct: Fail → moves to the next question
    page.keyboard.press("2")  # helpfulness: somewhat
    page.locator("textarea[name=c-helpfulness]").focus()
    page.keyboard.type("Misses the dose")
    page.keyboard.press("Escape")
    page.keyboard.press("4")  # groundedness: focuses the number box with 4
    page.screenshot(path=str(screenshot_dir / "review_answering.png"), full_page=True)
    page.keyboard.press("Control+Enter")
    expect(main).to_have_attribute("data-item", str(items[2].pk))

    # Item 3: Pass.
    page.keyboard.press("1")
    page.keyboard.press("Control+Enter")
    expect(page.get_by_text("All done")).to_be_visible()

    # Back to item 2 with k-navigation is covered elsewhere; here open it and change Fail → Pass.
    page.goto(f"{live_server.url}{items[1].get_absolute_url()}")
    expect(page.get_by_text("You answered this item")).to_be_visible()
    expect(page.locator("input[name=q-correct][value=fail]")).to_be_checked()
    page.keyboard.press("1")
    page.keyboard.press("Control+Enter")
    expect(page.get_by_text("All done")).to_be_visible()

    # j / k move between items, ? shows the shortcut list.
    page.goto(f"{live_server.url}{items[0].get_absolute_url()}")
    page.keyboard.press("j")
    expect(main).to_have_attribute("data-item", str(items[1].pk))
    page.keyboard.press("k")
    expect(main).to_have_attribute("data-item", str(items[0].pk))
    page.keyboard.press("?")
    expect(page.locator("#shortcut-help")).to_be_visible()
    page.screenshot(path=str(screenshot_dir / "review_shortcuts.png"))

    assert human_answers(items[0]) == {"correct": True}
    assert human_answers(items[1]) == {"correct": True, "helpfulness": "somewhat", "groundedness": 4}
    assert human_answers(items[2]) == {"correct": True}
    comment = Assessment.objects.get(trace=items[1].trace, name="helpfulness", valid=True).rationale
    assert comment == "Misses the dose"
    history = list(Assessment.objects.filter(trace=items[1].trace, name="correct").order_by("create_time", "id"))
    assert [a.value for a in history] == [False, True]
    assert history[0].valid is False and history[1].overrides == history[0].assessment_id
