"""The demo trace page in a real browser: documents, span tree, span details."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.core.management import call_command
from django.test import override_settings
from playwright.sync_api import Page, expect

from tests.conftest import DATA_DIR
from tests.e2e.conftest import login
from tests.factories import make_trace
from traces.ingest import read_trace_file, store_traces
from traces.models import Span, Trace


@pytest.fixture
def demo(transactional_db: None) -> None:
    # The local demo (`make run`, DEBUG on) with its admin/admin login; with DEBUG off seed_demo refuses that.
    with override_settings(DEBUG=True):
        call_command("seed_demo", stdout=io.StringIO())


def test_demo_trace_page_shows_documents_and_span_tree(
    demo: None, live_server: Any, page: Page, screenshot_dir: Path
) -> None:
    rag_span = Span.objects.filter(span_type="RETRIEVER", trace__experiment__name__startswith="Demo").first()
    assert rag_span is not None, "the demo has RAG traces"
    trace = Trace.objects.get(pk=rag_span.trace_id)
    first_doc = rag_span.outputs[0] if isinstance(rag_span.outputs, list) else rag_span.outputs["documents"][0]

    login(page, live_server, "admin", "admin")
    page.goto(f"{live_server.url}/traces/")
    expect(page.locator("table.traces")).to_be_visible()
    page.screenshot(path=str(screenshot_dir / "trace_list.png"), full_page=True)

    page.goto(f"{live_server.url}{trace.get_absolute_url()}")
    documents = page.locator("#documents")
    expect(documents).to_be_visible()
    expect(documents.locator("li.doc").first).to_be_visible()
    expect(documents).to_contain_text(first_doc["page_content"][:40])
    tree = page.locator("#span-tree")
    expect(tree).to_be_visible()
    expect(tree.locator(".span-link")).to_have_count(trace.spans.count())
    expect(page.locator("#conversation .bubble").first).to_be_visible()

    # Clicking a span swaps its inputs/outputs into the side panel (HTMX), without a reload.
    tree.locator(f'.span-link[data-span="{rag_span.span_id}"]').click()
    expect(page.locator("#span-detail h2")).to_contain_text(rag_span.name)
    expect(page.locator("#span-detail")).to_contain_text("Outputs")
    page.screenshot(path=str(screenshot_dir / "trace_detail.png"), full_page=True)


SIZES = {"desktop": {"width": 1366, "height": 800}, "small": {"width": 1024, "height": 768}}


@pytest.fixture
def admin_in_browser(transactional_db: None, live_server: Any, page: Page) -> Page:
    User.objects.create_user("lead-admin", password="admin-pass", is_staff=True, is_superuser=True)
    login(page, live_server, "lead-admin", "admin-pass")
    return page


def test_multi_turn_trace_with_a_wrapper_root_shows_the_chat(
    admin_in_browser: Page, live_server: Any, screenshot_dir: Path
) -> None:
    page = admin_in_browser
    records = read_trace_file(DATA_DIR / "multi_turn_wrapper_root.json")
    store_traces(records)
    trace = Trace.objects.get(trace_id=records[0].trace_id)
    agent = Span.objects.get(trace=trace, name="chat_agent")
    for size, viewport in SIZES.items():
        page.set_viewport_size(viewport)
        page.goto(f"{live_server.url}{trace.get_absolute_url()}")
        conversation = page.locator("#conversation")
        expect(conversation.locator(".bubble")).to_have_count(4)
        expect(conversation.locator(".bubble.user").last).to_contain_text("Yes, I want to deploy to Kubernetes")
        expect(conversation.locator(".bubble.assistant").last).to_contain_text("Here's the K8s deployment workflow")
        expect(conversation).not_to_contain_text("no recorded request or response.")
        source = conversation.locator(".conversation-source")
        expect(source).to_contain_text("From span AGENT\xa0chat_agent")
        expect(source).to_contain_text("the root span handle_chat_request recorded no request or response")
        page.screenshot(path=str(screenshot_dir / f"trace_multi_turn_{size}.png"), full_page=True)
    # The source span's name opens that span in the side panel.
    source.locator("a.source-link").click()
    expect(page.locator("#span-detail h2")).to_contain_text("chat_agent")
    expect(page.locator("#span-detail")).to_contain_text(agent.inputs["messages"][0]["content"][:40])


def test_huge_input_is_cut_on_the_page_and_show_all_opens_all_of_it(
    admin_in_browser: Page, live_server: Any, screenshot_dir: Path
) -> None:
    page = admin_in_browser
    trace = make_trace(n_spans=4, question="What do the two letters say?")
    root = Span.objects.get(trace=trace, parent_id="")
    letter = "Dear colleague, the patient was seen again today and the dose was changed. " * 40_000
    root.inputs = {"messages": [{"role": "user", "content": letter + "THE END"}]}
    root.save()
    for size, viewport in SIZES.items():
        page.set_viewport_size(viewport)
        response = page.goto(f"{live_server.url}{trace.get_absolute_url()}")
        assert response is not None and len(response.body()) < 200_000  # the value is 3 MB
        note = page.locator("#conversation .shortened").first
        expect(note).to_contain_text("Only the beginning of this value is shown. Show all (2.9")
        expect(page.locator("#conversation")).not_to_contain_text("THE END")
        page.screenshot(path=str(screenshot_dir / f"trace_huge_input_{size}.png"), full_page=False)
    with page.expect_popup() as popup:
        note.get_by_role("link", name="Show all").click()
    value = popup.value
    value.wait_for_load_state()
    assert value.url.endswith(f"?span={root.span_id}&value=inputs")
    assert "THE END" in value.content()
    with page.expect_download() as download:
        note.get_by_role("link", name="Download").click()
    assert download.value.suggested_filename == f"{trace.trace_id}-{root.span_id}-inputs.json"
