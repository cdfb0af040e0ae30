"""What a ``db_worker`` does with the monitoring queue: claim a batch, score it, write each verdict once.

A batch is claimed with ``SELECT … FOR UPDATE SKIP LOCKED`` (live work first, then backfills) and
held until its results commit in the same transaction as the deletion of its rows: another worker
skips the locked rows, and a worker killed mid-batch rolls back, leaving them to be claimed again.
Results are written once per trace × registration version: assessment ids derive from that pair
(and the Feedback's name and position), and the ``MonitoringResult`` ledger is unique on it, so a
batch that runs twice (SQLite has no row locks) adds nothing the second time.

A scorer that raises, times out or cannot be loaded gives an error Feedback, never a stuck queue.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from traces.models import MONITORING_REGISTRATION_KEY, MONITORING_VERSION_KEY, Assessment, AssessmentSource, Trace

from ..outcomes import Verdict as Outcome
from ..outcomes import verdict as outcome_of
from ..scorers.catalogue import Catalogue, ScorerError, ScorerInfo, load_catalogue
from ..scorers.runner import SOURCE_RUN_KEY, FeedbackResult, ScoringItem, assessment_rows, build_items, score_items
from .models import BackfillJob, MonitoringResult, MonitoringWork, RegisteredScorerVersion, Verdict
from .rollups import add_to_rollups

REGISTRATION_KEY = MONITORING_REGISTRATION_KEY
REGISTRATION_VERSION_KEY = MONITORING_VERSION_KEY
BACKFILL_KEY = "reviewapp.monitoring.backfillJob"
logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Claimed:
    """One claimed work row."""

    pk: int
    trace_pk: int
    version_pk: int
    backfill_pk: int | None
    queued_at: datetime


def _claim(limit: int) -> list[Claimed]:
    work = MonitoringWork.objects.order_by("priority", "id")
    if connection.features.has_select_for_update_skip_locked:
        work = work.select_for_update(skip_locked=True)
    rows = work.values_list("pk", "trace_id", "registration_version_id", "backfill_id", "queued_at")[:limit]
    return [Claimed(*row) for row in rows]


def _pseudo_run_id(version: RegisteredScorerVersion) -> str:
    """What assessment ids derive from: the registration and its version (one result per trace × version)."""
    return f"monitor:{version.registration_id}:v{version.version}"


def _unavailable(error: ScorerError, info_name: str, item: ScoringItem, judge: bool) -> list[FeedbackResult]:
    source = AssessmentSource.LLM_JUDGE if judge else AssessmentSource.CODE
    return [
        FeedbackResult(
            scorer=info_name,
            digest="",
            name=info_name,
            value=None,
            rationale="",
            error={"error_code": "SCORER_UNAVAILABLE", "error_message": str(error)[:2000]},
            metadata={},
            span_id=item.root_span_id,
            source_type=source,
            source_id=info_name,
        )
    ]


def _renamed(results: list[FeedbackResult], info: ScorerInfo | None, registration_name: str) -> list[FeedbackResult]:
    """A scorer's own Feedback name becomes the registration's (two registrations of one scorer stay apart)."""
    own = info.feedback_name if info is not None else None
    return [replace(r, name=registration_name) if r.name in (own, r.scorer) else r for r in results]


def _combined(results: list[FeedbackResult]) -> tuple[str, float | None]:
    """The ledger's verdict for a scorer's results on one trace (``evaluation.outcomes``' rule)."""
    if any(r.error for r in results):
        return Verdict.ERROR, None
    outcomes = [outcome_of(r.value) for r in results]
    if Outcome.FAILED in outcomes:
        return Verdict.FAILED, 0.0
    if outcomes and all(o is Outcome.PASSED for o in outcomes):
        return Verdict.PASSED, 1.0
    if len(outcomes) == 1 and outcomes[0] is Outcome.NUMBER:
        return Verdict.NUMBER, float(results[0].value)
    return Verdict.OTHER, None


def _metadata(result: FeedbackResult, version: RegisteredScorerVersion, backfill_job: str | None) -> dict[str, Any]:
    found = {k: v for k, v in result.metadata.items() if k != SOURCE_RUN_KEY}
    found[REGISTRATION_KEY] = version.registration.name
    found[REGISTRATION_VERSION_KEY] = str(version.version)
    if backfill_job is not None:
        found[BACKFILL_KEY] = backfill_job  # the job id its page and backfill_scorers show
    return found


def _items(
    by_version: dict[int, list[Claimed]], infos: dict[int, ScorerInfo | ScorerError]
) -> tuple[dict[int, ScoringItem], dict[int, ScoringItem]]:
    """Scorer arguments of the batch's traces; with an MLflow ``Trace`` (costly) only for scorers that read it."""
    everything = sorted({c.trace_pk for rows in by_version.values() for c in rows})
    traced = sorted(
        {
            c.trace_pk
            for pk, rows in by_version.items()
            if isinstance(infos[pk], ScorerInfo) and infos[pk].takes_trace
            for c in rows
        }
    )
    plain = {item.trace_pk: item for item in build_items(everything, with_trace=False)}
    full = {item.trace_pk: item for item in build_items(traced, with_trace=True)} if traced else {}
    return plain, full


class BatchScorer:
    """Scores claimed work; keeps the catalogue and the scoring pool across batches of one task."""

    def __init__(self) -> None:
        from ..scorers.runner import new_pool

        self.pool = new_pool()
        self._catalogue: Catalogue | None = None

    def close(self) -> None:
        self.pool.close()

    @property
    def catalogue(self) -> Catalogue:
        if self._catalogue is None:
            self._catalogue = load_catalogue()
        return self._catalogue

    def info(self, version: RegisteredScorerVersion) -> ScorerInfo | ScorerError:
        """The version's scorer: its pinned custom judge definition, else the catalogue's scorer of that name."""
        try:
            if version.pinned_judge:
                from ..judges.custom import pinned_judge
                from ..scorers.catalogue import UnavailableScorerError

                info = pinned_judge(version.pinned_judge)
                if not info.available:
                    raise UnavailableScorerError(info.name, info.unavailable)
                return info
            return self.catalogue.get(version.scorer_name)
        except ScorerError as error:
            return error

    def score(self, claimed: list[Claimed]) -> tuple[list[Assessment], list[MonitoringResult]]:
        versions = RegisteredScorerVersion.objects.select_related("registration").in_bulk(
            {c.version_pk for c in claimed}
        )
        by_version: dict[int, list[Claimed]] = defaultdict(list)
        for c in claimed:
            by_version[c.version_pk].append(c)
        infos = {pk: self.info(version) for pk, version in versions.items()}
        items = _items(by_version, infos)
        request_times = dict(Trace.objects.filter(pk__in=list(items[0])).values_list("pk", "request_time"))
        assessments: list[Assessment] = []
        ledger: list[MonitoringResult] = []
        backfills = {c.backfill_pk for c in claimed if c.backfill_pk is not None}
        jobs = dict(BackfillJob.objects.filter(pk__in=backfills).values_list("pk", "job_id")) if backfills else {}
        for version_pk, rows in by_version.items():
            version, info = versions[version_pk], infos[version_pk]
            takes_trace = isinstance(info, ScorerInfo) and info.takes_trace
            built = items[1] if takes_trace else items[0]
            rows = [c for c in rows if c.trace_pk in built]
            batch = [built[c.trace_pk] for c in rows]
            if isinstance(info, ScorerInfo):
                results = score_items(batch, [info], run_id=_pseudo_run_id(version), pool=self.pool)
            else:
                judge = bool(version.pinned_judge) or version.scorer_name in self.catalogue.judges
                results = {i.trace_pk: _unavailable(info, version.scorer_name, i, judge) for i in batch}
            now = timezone.now()  # the verdicts' time: when their scorer returned
            for c in rows:
                found = _renamed(results.get(c.trace_pk, []), info if isinstance(info, ScorerInfo) else None,
                                 version.registration.name)  # fmt: skip
                found = [replace(r, metadata=_metadata(r, version, jobs.get(c.backfill_pk))) for r in found]
                results[c.trace_pk] = found
                verdict, value = _combined(found)
                ledger.append(
                    MonitoringResult(
                        trace_id=c.trace_pk,
                        registration_id=version.registration_id,
                        registration_version_id=version.pk,
                        backfill_id=c.backfill_pk,
                        request_time=request_times[c.trace_pk],
                        queued_at=c.queued_at,
                        scored_at=now,
                        verdict=verdict,
                        value=value,
                    )
                )
            assessments.extend(assessment_rows(batch, results, run_id=_pseudo_run_id(version)))
        return assessments, ledger


def score_next_batch(scorer: BatchScorer, *, limit: int | None = None) -> int:
    """Claim, score and write one batch; how many work rows it took off the queue (0: none to claim)."""
    with transaction.atomic():
        claimed = _claim(limit or settings.MONITORING_BATCH_SIZE)
        if not claimed:
            return 0
        done = set(
            MonitoringResult.objects.filter(
                trace_id__in={c.trace_pk for c in claimed},
                registration_version_id__in={c.version_pk for c in claimed},
            ).values_list("trace_id", "registration_version_id")
        )
        todo = [c for c in claimed if (c.trace_pk, c.version_pk) not in done]
        if todo:
            assessments, ledger = scorer.score(todo)
            Assessment.objects.bulk_create(assessments, batch_size=2000, ignore_conflicts=True)
            MonitoringResult.objects.bulk_create(ledger, batch_size=2000, ignore_conflicts=True)
            add_to_rollups(ledger)  # new rows: none had a result under this claim
        MonitoringWork.objects.filter(pk__in=[c.pk for c in claimed]).delete()
        backfills = {c.backfill_pk for c in claimed if c.backfill_pk is not None}
        if backfills:
            from .backfill import count_progress

            count_progress(backfills)
    return len(claimed)


def drain_queue(*, max_batches: int | None = None) -> int:
    """Score queued work until none is left to claim (what the ``score_monitoring_queue`` task runs)."""
    total, batches = 0, 0
    scorer = BatchScorer()
    try:
        while max_batches is None or batches < max_batches:
            taken = score_next_batch(scorer)
            if not taken:
                break
            total += taken
            batches += 1
    finally:
        scorer.close()
    return total


def wake_workers() -> None:
    """Enqueue a ``score_monitoring_queue`` task unless one is already waiting to start (it will see this work)."""
    from django_tasks_db.backend import DatabaseBackend
    from django_tasks_db.models import DBTaskResult

    from ..tasks import score_monitoring_queue

    if isinstance(score_monitoring_queue.get_backend(), DatabaseBackend):
        waiting = DBTaskResult.objects.ready().filter(task_path=score_monitoring_queue.module_path)
        if waiting.exists():
            return
    score_monitoring_queue.enqueue()


def sweep() -> dict[str, int]:
    """The periodic sweep: queued work and no task waiting (its worker was killed, or a wake-up raced) gets one."""
    queued = MonitoringWork.objects.count()
    if queued:
        wake_workers()
    return {"queued": queued}
