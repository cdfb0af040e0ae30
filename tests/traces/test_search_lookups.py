"""The index-friendly search methods of TraceQuerySet: span content, text, name, feedback, tags.

Each runs on SQLite and on PostgreSQL (where span content goes through the per-trace search
documents that triggers on traces_span keep); the answers must be the same.
"""

from __future__ import annotations

import pytest
from django.db import connection

from tests.factories import make_assessment, make_trace
from traces.ingest import read_trace_file, store_traces
from traces.models import Span, Trace, TraceSearchDocument, escape_like
from traces.search import search_traces

pytestmark = pytest.mark.django_db
postgres_only = pytest.mark.skipif(connection.vendor != "postgresql", reason="search documents are PostgreSQL's")


def ids(queryset) -> set[str]:
    return set(queryset.values_list("trace_id", flat=True))


def add_span(trace: Trace, span_id: str, inputs, outputs=None, name: str = "step") -> Span:
    return Span.objects.create(
        trace=trace, span_id=span_id, name=name, start_time_ns=1, inputs=inputs, outputs=outputs, attributes={}
    )


def test_span_content_matches_some_span_of_the_trace() -> None:
    hit = make_trace(n_spans=1, trace_id="tr-hit")
    add_span(hit, "s2", {"q": "Where is the Heliotrope Hotel?"})
    miss = make_trace(n_spans=1, trace_id="tr-miss")
    add_span(miss, "s2", {"q": "where is the station"})
    assert ids(Trace.objects.with_span_content("%heliotrope%")) == {"tr-hit"}
    assert ids(Trace.objects.with_span_content("%heliotrope%", case_sensitive=True)) == set()
    assert ids(Trace.objects.with_span_content("%Heliotrope Hotel%", case_sensitive=True)) == {"tr-hit"}
    assert ids(Trace.objects.with_span_content("%where is the%")) == {"tr-hit", "tr-miss"}


def test_case_sensitive_span_content_with_many_candidates_pages_in_list_order(monkeypatch) -> None:
    """More candidate documents than SPAN_CHECKS_UP_TO: PostgreSQL walks the list order and checks
    the spans of the candidates it meets. Same answers, and every page of them in order."""
    from traces import models
    from traces.pagination import NEWEST_FIRST, keyset_page

    monkeypatch.setattr(models, "SPAN_CHECKS_UP_TO", 2)
    for i in range(7):  # every one a candidate for the lowercased documents; odd ones match by case
        trace = make_trace(n_spans=1, trace_id=f"tr-case-{i}")
        add_span(trace, "s2", {"q": "Heliotrope Hotel" if i % 2 else "heliotrope hotel"})
    make_trace(n_spans=1, trace_id="tr-case-none")
    found = Trace.objects.with_span_content("%Heliotrope%", case_sensitive=True)
    assert ids(found) == {"tr-case-1", "tr-case-3", "tr-case-5"}
    seen, cursor = [], None
    while True:
        page = keyset_page(found, NEWEST_FIRST, cursor, 2)
        seen += [t.trace_id for t in page.rows]
        if not (cursor := page.next_cursor):
            break
    assert seen == list(NEWEST_FIRST.apply(found).values_list("trace_id", flat=True))
    assert sorted(seen) == ["tr-case-1", "tr-case-3", "tr-case-5"]


def test_a_pattern_must_match_within_one_span_not_across_two() -> None:
    trace = make_trace(n_spans=1, trace_id="tr-split")
    add_span(trace, "s2", {"q": "alpha only"})
    add_span(trace, "s3", {"q": "omega only"})
    both = make_trace(n_spans=1, trace_id="tr-both")
    add_span(both, "s2", {"q": "alpha then omega"})
    assert ids(Trace.objects.with_span_content("%alpha%omega%")) == {"tr-both"}
    assert ids(Trace.objects.with_span_content("%alpha_then%")) == {"tr-both"}


def test_span_content_sees_outputs_and_attributes_and_later_changes() -> None:
    trace = make_trace(n_spans=1, trace_id="tr-change")
    span = add_span(trace, "s2", {"q": "first"}, outputs={"answer": "zanzibar"}, name="lookup_zebra")
    Span.objects.filter(pk=span.pk).update(attributes={"model": "gpt-kestrel"})
    span.refresh_from_db()
    assert ids(Trace.objects.with_span_content("%zanzibar%")) == {"tr-change"}
    assert ids(Trace.objects.with_span_content("%kestrel%")) == {"tr-change"}
    assert ids(Trace.objects.with_span_content("%lookup_zebra%")) == set()  # the name is not content
    span.outputs = {"answer": "mombasa"}
    span.save()
    assert ids(Trace.objects.with_span_content("%zanzibar%")) == set()
    assert ids(Trace.objects.with_span_content("%mombasa%")) == {"tr-change"}
    span.delete()
    assert ids(Trace.objects.with_span_content("%mombasa%")) == set()


@postgres_only
def test_imported_traces_get_search_documents(data_dir) -> None:
    records = read_trace_file(data_dir / "demo_rag_pipeline.json")
    store_traces(records)  # the COPY path: the statement trigger fills the document
    trace = Trace.objects.get(trace_id=records[0].trace_id)
    document = TraceSearchDocument.objects.get(trace=trace)
    assert document.content.count("\n") == 3 * trace.spans.count() - 1  # inputs, outputs, attributes
    trace.delete()  # spans go, and their document with them
    assert not TraceSearchDocument.objects.filter(trace_id=trace.pk).exists()


def test_text_searches_request_and_response() -> None:
    make_trace(trace_id="tr-q", question="How do refunds work?", answer="Within 30 days.")
    make_trace(trace_id="tr-a", question="Shipping times?", answer="Refunds are separate.")
    make_trace(trace_id="tr-none", question="Hello", answer="Hi")
    assert ids(Trace.objects.with_text("%refund%")) == {"tr-q", "tr-a"}
    assert ids(Trace.objects.with_text("%Refunds are%", case_sensitive=True)) == {"tr-a"}


def test_name_containing_is_literal_and_ignores_case() -> None:
    make_trace(trace_id="tr-1", name="Plan_Trip")
    make_trace(trace_id="tr-2", name="planXtrip")
    make_trace(trace_id="tr-3", name="100% done")
    assert ids(Trace.objects.with_name_containing("plan_trip")) == {"tr-1"}  # _ is not a wildcard
    assert ids(Trace.objects.with_name_containing("0%")) == {"tr-3"}
    assert ids(Trace.objects.with_name_like("plan_trip")) == {"tr-1", "tr-2"}  # a LIKE pattern: it is


def test_feedback_lookup_uses_valid_assessments_only() -> None:
    yes = make_trace(trace_id="tr-yes")
    make_assessment(yes, "correctness", "yes")
    corrected = make_trace(trace_id="tr-corrected")
    make_assessment(corrected, "correctness", "yes", valid=False)
    make_assessment(corrected, "correctness", "no")
    numeric = make_trace(trace_id="tr-num")
    make_assessment(numeric, "helpfulness", 4)
    long = make_trace(trace_id="tr-long")
    make_assessment(long, "correctness", "y" * 5000)  # longer than a btree entry: still found
    assert ids(Trace.objects.with_feedback("correctness", "yes")) == {"tr-yes"}
    assert ids(Trace.objects.with_feedback("correctness", "no")) == {"tr-corrected"}
    assert ids(Trace.objects.with_feedback("helpfulness", 4)) == {"tr-num"}
    assert ids(Trace.objects.with_feedback("correctness", "y" * 5000)) == {"tr-long"}
    assert ids(Trace.objects.with_expectation("correctness", "yes")) == set()


def test_tag_and_metadata_lookups() -> None:
    make_trace(trace_id="tr-t", tags={"env": "prod"}, trace_metadata={"mlflow.modelId": "m-1"})
    make_trace(trace_id="tr-u", tags={"env": "dev"}, trace_metadata={})
    assert ids(Trace.objects.with_tag("env", "prod")) == {"tr-t"}
    assert ids(Trace.objects.with_tag("env")) == {"tr-t", "tr-u"}
    assert ids(Trace.objects.with_metadata("mlflow.modelId", "m-1")) == {"tr-t"}
    assert ids(Trace.objects.with_metadata("mlflow.modelId")) == {"tr-t"}


def test_escape_like() -> None:
    assert escape_like("50%_off\\") == "50\\%\\_off\\\\"


def test_filter_strings_use_the_same_answers() -> None:
    hit = make_trace(n_spans=1, trace_id="tr-fs-hit", question="Is the kiosk open?")
    add_span(hit, "s2", {"q": "alpha beta"})
    make_assessment(hit, "correctness", "yes")
    miss = make_trace(n_spans=1, trace_id="tr-fs-miss")
    make_assessment(miss, "correctness", "no")
    make_assessment(miss, "helpfulness", 4)

    def found(filter_string: str) -> set[str]:
        return ids(search_traces(Trace.objects.all(), filter_string))

    assert found("span.content ILIKE '%ALPHA%'") == {"tr-fs-hit"}
    assert found("span.content LIKE '%alpha%beta%'") == {"tr-fs-hit"}
    assert found("text ILIKE '%kiosk%'") == {"tr-fs-hit"}
    assert found("text LIKE '%alpha b%'") == {"tr-fs-hit"}  # in a span, not in a preview
    assert found("feedback.correctness = 'yes'") == {"tr-fs-hit"}
    assert found("feedback.helpfulness = 4") == {"tr-fs-miss"}
    assert found("feedback.helpfulness = '4'") == {"tr-fs-miss"}  # MLflow compares the text
