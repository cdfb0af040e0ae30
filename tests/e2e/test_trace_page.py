"""The demo trace page in a real browser: documents, span tree, span details."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from django.test import override_settings
from playwright.sync_api import Page, expect

from tests.e2e.conftest import login
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
