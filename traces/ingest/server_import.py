"""Import the traces of one experiment of a running MLflow server, resumably.

A page of search results is compared with what is stored (state, request time, duration, tags,
metadata, each assessment's last update), and only new or changed traces have their spans fetched
(:class:`.mlflow_server.MlflowServerClient`) and are stored, one transaction per page: an
interrupted run keeps the pages it finished, and a re-run fetches only what is still missing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from traces.models import Assessment, Experiment, Trace

from .mlflow_json import parse_trace
from .mlflow_server import PAGE_SIZE, MlflowServerClient, MlflowServerError
from .records import TraceFormatError, TraceRecord
from .store import StoreResult, experiment_for_mlflow, resolve_experiment, store_traces


@dataclass(slots=True)
class MlflowImportResult:
    stored: StoreResult = field(default_factory=StoreResult)
    seen: int = 0
    unchanged: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)  # (trace id, why it was skipped)


def since_filter(raw: str) -> str:
    """``--since`` (a date, or an ISO time; UTC unless it says otherwise) as a filter clause."""
    try:
        when = datetime.fromisoformat(raw.strip())
    except ValueError:
        raise MlflowServerError(
            f"--since must be a date (2026-11-01) or an ISO time (2026-11-01T08:00:00Z), got {raw!r}"
        ) from None
    if when.tzinfo is None:  # a bare date is its first moment
        when = when.replace(tzinfo=UTC)
    return f"attributes.timestamp_ms >= {int(when.timestamp() * 1000)}"


def combined_filter(filter_string: str | None, since: str | None) -> str:
    clauses = [c for c in ((filter_string or "").strip(), since_filter(since) if since is not None else "") if c]
    return " AND ".join(clauses)


def import_from_mlflow(
    client: MlflowServerClient,
    *,
    experiment_id: str,
    filter_string: str = "",
    experiment_name: str | None = None,
    page_size: int = PAGE_SIZE,
    result: MlflowImportResult | None = None,
    on_page: Callable[[MlflowImportResult, int], None] | None = None,
) -> MlflowImportResult:
    """Store the new and changed traces of one MLflow experiment, one transaction per page.

    They go into ``experiment_name`` if given, else into the experiment mapped to the MLflow
    experiment id. ``result`` (filled as pages are stored) tells what was done when a later page fails.
    """
    remote = client.get_experiment(experiment_id)
    result = result if result is not None else MlflowImportResult()
    target: Experiment | None = None
    for infos in client.search_pages(experiment_id, filter_string, page_size):
        if target is None:  # made once the server has accepted the search, so a refused filter writes nothing
            target = (
                resolve_experiment(experiment_name)
                if experiment_name
                else experiment_for_mlflow(experiment_id, remote["name"])
            )
        unique = {i["trace_id"]: i for i in infos if isinstance(i.get("trace_id"), str) and i["trace_id"]}
        nameless = sum(1 for i in infos if not isinstance(i.get("trace_id"), str) or not i["trace_id"])
        if nameless:
            result.failed.append(("(no trace_id)", f"{nameless} search results without a trace_id, skipped"))
        result.seen += len(unique)
        changed = _changed_infos(unique, target)
        result.unchanged += len(unique) - len(changed)
        records: list[TraceRecord] = []
        if changed:
            for trace_id, trace in client.fetch_traces(changed).items():
                if isinstance(trace, str):
                    result.failed.append((trace_id, trace))
                    continue
                try:
                    records.append(parse_trace(trace))
                except TraceFormatError as exc:
                    result.failed.append((trace_id, str(exc)))
        if records:
            result.stored.add(store_traces(records, experiment=target))
        if on_page is not None:
            on_page(result, len(infos))
    return result


def _changed_infos(infos: dict[str, dict[str, Any]], experiment: Experiment) -> list[dict[str, Any]]:
    """The infos whose trace is not stored as the server describes it (the spans are not fetched for the rest)."""
    summaries: dict[str, TraceRecord] = {}
    changed: list[dict[str, Any]] = []
    for trace_id, info in infos.items():
        try:
            summaries[trace_id] = parse_trace({"trace_info": info, "spans": []})
        except TraceFormatError:
            changed.append(info)  # fetched and parsed whole, where the error is reported
    stored = {
        row["trace_id"]: row
        for row in Trace.objects.filter(trace_id__in=list(summaries)).values(
            "trace_id", "experiment_id", "state", "request_time", "execution_duration_ms", "tags", "trace_metadata"
        )
    }
    updates = dict(
        Assessment.objects.filter(trace__trace_id__in=list(stored)).values_list("assessment_id", "last_update_time")
    )
    for trace_id, summary in summaries.items():
        row = stored.get(trace_id)
        if row is None or not _same(summary, row, experiment, updates):
            changed.append(infos[trace_id])
    return changed


def _same(summary: TraceRecord, row: dict[str, Any], experiment: Experiment, updates: dict[str, datetime]) -> bool:
    return (
        row["experiment_id"] == experiment.pk
        and row["state"] == summary.state
        and row["request_time"] == summary.request_time
        and (summary.execution_duration_ms is None or row["execution_duration_ms"] == summary.execution_duration_ms)
        and row["tags"] == summary.tags
        and row["trace_metadata"] == summary.trace_metadata
        and all(updates.get(a.assessment_id) == a.last_update_time for a in summary.assessments)
    )
