"""Monitoring state: registrations and their versions, the work queue, the results ledger, backfills, archival."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.urls import reverse
from django.utils import timezone

from ..models import ProgressJob

MAX_ACTIVE_PER_EXPERIMENT = 20


class RegistrationStatus(models.TextChoices):
    REGISTERED = "registered", "Registered (not sampling)"
    ACTIVE = "active", "Active"
    STOPPED = "stopped", "Stopped"
    DELETED = "deleted", "Deleted"


class RegistrationAction(models.TextChoices):
    REGISTER = "register", "Registered"
    START = "start", "Started"
    UPDATE = "update", "Updated"
    STOP = "stop", "Stopped"
    RESTART = "restart", "Restarted"
    DELETE = "delete", "Deleted"


class RegisteredScorerQuerySet(models.QuerySet["RegisteredScorer"]):
    def live(self) -> RegisteredScorerQuerySet:
        """Not deleted."""
        return self.exclude(status=RegistrationStatus.DELETED)

    def active(self) -> RegisteredScorerQuerySet:
        return self.filter(status=RegistrationStatus.ACTIVE, sample_rate__gt=0)


class RegisteredScorer(models.Model):
    """A catalogue scorer (code scorer, built-in judge or custom judge) watching one experiment's traffic.

    The fields are its current configuration; every change is also a ``RegisteredScorerVersion``
    (``version`` is the latest), so each verdict names the configuration that produced it.
    """

    experiment = models.ForeignKey("traces.Experiment", on_delete=models.CASCADE, related_name="+")
    name = models.CharField(max_length=100, help_text="Unique in its experiment; the verdicts' assessment name.")
    scorer_name = models.CharField(max_length=200, help_text="The catalogue's scorer or judge.")
    sample_rate = models.FloatField(default=0.0)
    filter_string = models.TextField(blank=True, default="")
    status = models.CharField(max_length=12, choices=RegistrationStatus.choices, default=RegistrationStatus.REGISTERED)
    version = models.PositiveIntegerField(default=1)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)

    objects = RegisteredScorerQuerySet.as_manager()

    class Meta:
        ordering = ["experiment", "name", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["experiment", "name"], condition=~Q(status="deleted"), name="registered_scorer_name_unique"
            )
        ]
        indexes = [models.Index(fields=["experiment", "status"], name="registered_scorer_status_idx")]

    def __str__(self) -> str:
        return f"{self.name} ({self.scorer_name})"

    def get_absolute_url(self) -> str:
        return reverse("evaluation:monitoring", args=[self.experiment_id])

    @property
    def is_active(self) -> bool:
        return self.status == RegistrationStatus.ACTIVE and self.sample_rate > 0


class RegisteredScorerVersion(models.Model):
    """One immutable configuration of a registration: what it was after a change, who made it and when."""

    registration = models.ForeignKey(RegisteredScorer, on_delete=models.CASCADE, related_name="versions")
    version = models.PositiveIntegerField()
    action = models.CharField(max_length=10, choices=RegistrationAction.choices)
    status = models.CharField(max_length=12, choices=RegistrationStatus.choices)
    scorer_name = models.CharField(max_length=200)
    scorer_digest = models.CharField(max_length=100, blank=True, default="", help_text="The scorer's definition then.")
    pinned_judge = models.JSONField(
        default=dict,
        blank=True,
        help_text="A custom judge's version as it was when this version was made ({custom_judge, version, "
        "definition}); it scores with that definition, whatever edits the judge gets later. {}: not a custom judge.",
    )
    sample_rate = models.FloatField()
    filter_string = models.TextField(blank=True, default="")
    changed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["registration", "-version"]
        constraints = [
            models.UniqueConstraint(fields=["registration", "version"], name="registered_scorer_version_unique")
        ]

    def __str__(self) -> str:
        return f"{self.registration.name} v{self.version}"


class BackfillStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    FINISHED = "finished", "Finished"
    CANCELLED = "cancelled", "Cancelled"
    FAILED = "failed", "Failed"


def new_job_id() -> str:
    return uuid.uuid4().hex


class BackfillJob(ProgressJob):
    """Re-scoring history: registered scorers (each at its rate or an override) over traces in a time range."""

    job_id = models.CharField(max_length=32, unique=True, default=new_job_id)
    experiment = models.ForeignKey("traces.Experiment", on_delete=models.CASCADE, related_name="+")
    scorers = models.JSONField(default=list, help_text="[{registration, name, version, sample_rate}]")
    start_time = models.DateTimeField(null=True, blank=True)
    end_time = models.DateTimeField(null=True, blank=True, help_text="Blank: when the job was created.")
    status = models.CharField(max_length=12, choices=BackfillStatus.choices, default=BackfillStatus.QUEUED)
    planned_through = models.BigIntegerField(default=0, help_text="Trace pk up to which work has been queued.")
    planned = models.BooleanField(default=False, help_text="All its work is queued: progress_total is final.")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"backfill {self.job_id}"

    def get_absolute_url(self) -> str:
        return reverse("evaluation:backfill_detail", args=[self.job_id])


class MonitoringWork(models.Model):
    """One trace waiting for one registration version's verdict; deleted when its result is written.

    Workers claim rows with ``SELECT … FOR UPDATE SKIP LOCKED`` and hold them until their results
    commit, so a killed worker's rows are claimable again and nothing is scored twice.
    Live work (``priority`` 0) goes before backfill work (1).
    """

    trace = models.ForeignKey("traces.Trace", on_delete=models.CASCADE, related_name="+")
    registration_version = models.ForeignKey(RegisteredScorerVersion, on_delete=models.CASCADE, related_name="+")
    backfill = models.ForeignKey(BackfillJob, null=True, blank=True, on_delete=models.CASCADE, related_name="work")
    priority = models.PositiveSmallIntegerField(default=0)
    queued_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["trace", "registration_version"], name="monitoring_work_unique")]
        indexes = [models.Index(fields=["priority", "id"], name="monitoring_work_claim_idx")]

    def __str__(self) -> str:
        return f"work {self.trace_id} × {self.registration_version_id}"


class Verdict(models.TextChoices):
    PASSED = "passed", "Passed"
    FAILED = "failed", "Failed"
    NUMBER = "number", "Number"
    OTHER = "other", "Other"
    ERROR = "error", "Error"


class MonitoringResult(models.Model):
    """The ledger: one row per trace × registration version once its Feedback is written (what the dashboard counts).

    ``value`` is 1/0 for pass/fail and the number for numeric scorers; ``verdict`` follows ``evaluation.outcomes``
    (a failed or erroring Feedback among a scorer's results makes the trace fail).
    """

    trace = models.ForeignKey("traces.Trace", on_delete=models.CASCADE, related_name="+")
    registration = models.ForeignKey(RegisteredScorer, on_delete=models.CASCADE, related_name="results")
    registration_version = models.ForeignKey(RegisteredScorerVersion, on_delete=models.CASCADE, related_name="+")
    backfill = models.ForeignKey(BackfillJob, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    request_time = models.DateTimeField(help_text="The trace's request time: the dashboard's time axis.")
    queued_at = models.DateTimeField()
    scored_at = models.DateTimeField()
    verdict = models.CharField(max_length=8, choices=Verdict.choices)
    value = models.FloatField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["trace", "registration_version"], name="monitoring_result_unique")
        ]
        indexes = [
            models.Index(fields=["registration", "request_time"], name="monitoring_result_time_idx"),
            models.Index(fields=["registration", "verdict", "-request_time"], name="monitoring_result_fail_idx"),
            # a backfill's progress and its rate over the last minute, polled while it runs
            models.Index(fields=["backfill", "scored_at"], name="monitoring_result_backfill_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.registration_id} on {self.trace_id}: {self.verdict}"


class ArchivePolicy(models.Model):
    """An experiment's "archive traces older than N days" setting, run by the workers' schedule."""

    experiment = models.OneToOneField("traces.Experiment", on_delete=models.CASCADE, related_name="+")
    older_than_days = models.PositiveIntegerField(null=True, blank=True, help_text="Blank: never archived.")
    path = models.CharField(max_length=1000, help_text="The Delta table: a directory or an object-store URI.")
    delete_after = models.BooleanField(default=False, help_text="Remove archived traces from the database.")
    last_run_at = models.DateTimeField(null=True, blank=True)
    last_result = models.JSONField(default=dict, blank=True)
    updated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    updated_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return f"archive {self.experiment_id} → {self.path}"


class PeriodicRun(models.Model):
    """When a periodic job (``monitoring.schedule``) last ran: the row the workers' schedulers claim, so each
    period's run happens once however many workers there are."""

    name = models.CharField(max_length=100, unique=True)
    last_run_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"{self.name} at {self.last_run_at}"


class MonitoringRollup(models.Model):
    """One registration's verdict counts in one hour (UTC) of request time: what the dashboard charts.

    Kept with the ledger, in the transaction that writes its rows (``monitoring.rollups``), so a
    chart reads a few hundred rows whatever the traffic; ``rebuild_rollups`` recounts from the ledger.
    """

    registration = models.ForeignKey(RegisteredScorer, on_delete=models.CASCADE, related_name="rollups")
    hour = models.DateTimeField()
    total = models.PositiveIntegerField(default=0)
    passed = models.PositiveIntegerField(default=0)
    failed = models.PositiveIntegerField(default=0)
    errors = models.PositiveIntegerField(default=0)
    numbers = models.PositiveIntegerField(default=0)
    value_sum = models.FloatField(default=0.0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["registration", "hour"], name="monitoring_rollup_unique")]

    def __str__(self) -> str:
        return f"{self.registration_id} at {self.hour:%Y-%m-%d %H}:00"
