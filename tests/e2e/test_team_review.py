"""Two reviewers in two browsers label the same session (2 reviewers per item); a lead settles a disagreement."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.contrib.auth.models import User
from playwright.sync_api import Browser, Page, expect

from labeling import services
from labeling.models import LabelSchema
from tests.e2e.conftest import login
from tests.factories import make_trace
from traces.models import Assessment


def answer_all(page: Page, live_server: Any, session_pk: int, keys: list[str]) -> list[int]:
    """Open the session and answer each item handed out with one key + Ctrl+Enter; return item ids."""
    page.goto(f"{live_server.url}/review/{session_pk}/")
    seen = []
    for key in keys:
        main = page.locator("#review-main")
        item = main.get_attribute("data-item")
        seen.append(int(item))
        page.keyboard.press(key)
        page.keyboard.press("Control+Enter")
        expect(main).not_to_have_attribute("data-item", item)
    return seen


def test_two_reviewers_disagree_and_the_lead_adjudicates(
    transactional_db: None, live_server: Any, browser: Browser, screenshot_dir: Path
) -> None:
    ann = User.objects.create_user("dr_ann", password="ann-pass-123")
    ben = User.objects.create_user("dr_ben", password="ben-pass-123")
    User.objects.create_user("lead", password="lead-pass-123")
    schema = services.save_label_schema(
        schema=LabelSchema(name="correct", type="feedback", title="Is the answer correct?", input_type="pass_fail")
    )
    session = services.create_labeling_session(name="Oncology", schemas=[schema], reviewers=[ann, ben])
    session.reviewers_per_item = 2
    session.save()
    services.set_session_leads(session=session, leads=[User.objects.get(username="lead")])
    traces = [make_trace(question=f"Is chemo plan {i} covered?") for i in range(2)]
    services.add_traces_to_session(session=session, trace_ids=[t.trace_id for t in traces])
    first, second = session.items.order_by("position")

    ann_page = browser.new_context().new_page()
    ben_page = browser.new_context().new_page()
    login(ann_page, live_server, "dr_ann", "ann-pass-123")
    login(ben_page, live_server, "dr_ben", "ben-pass-123")
    # Both open the session at the same time: with two slots per item, both get item 1.
    ann_page.goto(f"{live_server.url}/review/{session.pk}/")
    ben_page.goto(f"{live_server.url}/review/{session.pk}/")
    for page in (ann_page, ben_page):
        expect(page.locator("#review-main")).to_have_attribute("data-item", str(first.pk))
    ann_page.screenshot(path=str(screenshot_dir / "team_reviewer_ann.png"), full_page=True)

    # Ann: pass, pass. Ben: fail on item 1 (disagreement), pass on item 2.
    assert answer_all(ann_page, live_server, session.pk, ["1", "1"]) == [first.pk, second.pk]
    expect(ann_page.get_by_text("Nothing left for you right now")).to_be_visible()  # Ben still has to answer
    assert answer_all(ben_page, live_server, session.pk, ["2", "1"]) == [first.pk, second.pk]
    expect(ben_page.get_by_text("All done")).to_be_visible()

    # The lead sees the disagreement and settles it.
    lead_page = browser.new_context().new_page()
    login(lead_page, live_server, "lead", "lead-pass-123")
    lead_page.goto(f"{live_server.url}{session.get_absolute_url()}")
    expect(lead_page.locator("#progress")).to_contain_text("2 of 2 items complete")
    lead_page.click("text=Disagreements")
    expect(lead_page.locator("table")).to_contain_text("Item 1")
    expect(lead_page.locator("table")).not_to_contain_text("Item 2")
    lead_page.click("text=Item 1")
    answers = lead_page.locator(".reviewer-answers")
    expect(answers).to_contain_text("dr_ann")
    expect(answers).to_contain_text("dr_ben")
    lead_page.screenshot(path=str(screenshot_dir / "adjudicate_item.png"), full_page=True)
    lead_page.locator("input[name=q-correct][value=fail]").check()
    lead_page.fill("textarea[name=rationale]", "The plan excludes this drug.")
    lead_page.click("text=Save final answers")
    expect(lead_page.get_by_text("Final answer saved for item 1")).to_be_visible()
    expect(lead_page.locator("table")).to_contain_text("Settled")

    final = Assessment.objects.get(trace=first.trace, metadata__adjudicated=True, valid=True)
    assert final.value is False and final.source_id == "lead" and final.rationale == "The plan excludes this drug."
    reviewers = Assessment.objects.filter(trace=first.trace, source_id__in=["dr_ann", "dr_ben"], valid=True)
    assert sorted(a.value for a in reviewers) == [False, True]  # kept, not overwritten
    assert set(final.metadata["overrides_all"]) == {a.assessment_id for a in reviewers}
    first.refresh_from_db()
    assert first.submitted_count == 2
