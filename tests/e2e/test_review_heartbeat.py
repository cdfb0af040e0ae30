"""The open review page renews its lease, and says so when another reviewer took the item (issue 9, item 13).

The heartbeat interval is a setting, so the page beats every second here; the test waits for the
heartbeat requests themselves (``expect_response``), never for a fixed time.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.contrib.auth.models import User
from django.db import transaction
from django.utils import timezone
from playwright.sync_api import Page, Response, expect

from labeling import claims, services, submissions
from labeling.models import ItemReview, LabelSchema, ReviewItem
from tests.e2e.conftest import login
from tests.factories import make_trace

WAIT_MS = 15_000


def is_heartbeat(response: Response) -> bool:
    return response.url.endswith("/heartbeat/") and response.request.method == "POST"


def next_heartbeat(page: Page) -> Response:
    with page.expect_response(is_heartbeat, timeout=WAIT_MS) as info:
        pass
    return info.value


def test_review_page_sends_heartbeats_and_warns_when_the_item_was_taken(
    transactional_db: None, live_server: Any, page: Page, settings: Any
) -> None:
    settings.REVIEW_HEARTBEAT_MIN_SECONDS = settings.REVIEW_HEARTBEAT_MAX_SECONDS = 1
    schema = services.save_label_schema(
        schema=LabelSchema(name="correct", type="feedback", title="Is it correct?", input_type="pass_fail")
    )
    ann = User.objects.create_user("dr_ann", password="reviewer-pass")
    ben = User.objects.create_user("dr_ben", password="reviewer-pass")
    session = services.create_labeling_session(name="Heartbeat", schemas=[schema], reviewers=[ann, ben])
    session.reviewers_per_item, session.lease_minutes = 1, 10
    session.save()
    services.add_traces_to_session(session=session, trace_ids=[make_trace().trace_id])
    item = session.items.get()

    login(page, live_server, "dr_ann", "reviewer-pass")
    page.goto(f"{live_server.url}/review/{session.pk}/")
    main = page.locator("#review-main")
    expect(main).to_have_attribute("data-item", str(item.pk))
    expect(main).to_have_attribute("data-heartbeat-seconds", "1")
    warning = page.locator("#lease-warning")
    expect(warning).to_be_hidden()

    # Ann reads: the page renews her lease.
    leased_until = ItemReview.objects.get(item=item, reviewer=ann).lease_expires_at
    beat = next_heartbeat(page)
    assert beat.ok and beat.json() == {"lease": "held"}
    assert beat.request.headers.get("x-csrftoken")
    assert ItemReview.objects.get(item=item, reviewer=ann).lease_expires_at > leased_until
    expect(warning).to_be_hidden()

    # Her lease runs out (the laptop slept) and Ben takes and answers the item. One transaction with
    # the item row locked, so a heartbeat cannot slip in between and take the item back.
    with transaction.atomic():
        ReviewItem.objects.select_for_update().get(pk=item.pk)
        ItemReview.objects.filter(item=item, reviewer=ann).update(lease_expires_at=timezone.now() - timedelta(1))
        assert claims.claim_next_item(session=session, reviewer=ben) == item
        submissions.submit_review(item=item, reviewer=ben, raw_answers={"correct": "pass"})

    # The next heartbeats answer "lost" (one sent before Ben's answer may still say "held").
    states = [next_heartbeat(page).json()["lease"] for _ in range(2)]
    assert states[-1] == "lost" and set(states) <= {"held", "lost"}
    expect(warning).to_be_visible()
    expect(warning).to_contain_text("Others answered this item while you were away")
    box = warning.bounding_box()
    assert box is not None and box["y"] + box["height"] <= page.viewport_size["height"]  # in the footer, on screen
