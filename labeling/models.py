"""Label schemas (the questions), labeling sessions, and review items (frozen trace copies)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Count, Q
from django.urls import reverse
from django.utils import timezone

from traces.models import Experiment, Trace

# Keys in an assessment's metadata that say where a human assessment came from.
COPIED_KEY = "copied_from"  # copied with its trace into a session (not an answer given there)
ADJUDICATION_KEY = "adjudicated"  # a lead's final answer that settles a disagreement
LATE_KEY = "late"  # given after the reviewer's lease ran out and others had filled the item: kept, not counted


class SchemaType(models.TextChoices):
    FEEDBACK = "feedback", "Feedback (a judgement of quality)"
    EXPECTATION = "expectation", "Expectation (the ground truth)"


class InputType(models.TextChoices):
    CATEGORICAL = "categorical", "Pick one option"
    CATEGORICAL_LIST = "categorical_list", "Pick several options"
    TEXT = "text", "Free text"
    TEXT_LIST = "text_list", "List of texts"
    NUMERIC = "numeric", "Number"
    PASS_FAIL = "pass_fail", "Pass / fail"


# Which configuration fields belong to each input kind (the form shows only these).
INPUT_FIELDS: dict[str, tuple[str, ...]] = {
    InputType.CATEGORICAL: ("options",),
    InputType.CATEGORICAL_LIST: ("options",),
    InputType.TEXT: ("max_length",),
    InputType.TEXT_LIST: ("max_length", "max_count"),
    InputType.NUMERIC: ("min_value", "max_value", "integer"),
    InputType.PASS_FAIL: ("pass_label", "fail_label"),
}
CONFIG_FIELDS = ("options", "max_length", "max_count", "min_value", "max_value", "integer", "pass_label", "fail_label")


class LabelSchema(models.Model):
    """A question shown to reviewers, with one input kind and its constraints (MLflow's ``LabelSchema``)."""

    name = models.SlugField(max_length=100, unique=True, help_text="Stored as the assessment name, e.g. “correct”.")
    type = models.CharField(max_length=12, choices=SchemaType.choices, default=SchemaType.FEEDBACK)
    title = models.CharField(max_length=255, help_text="The question as reviewers read it.")
    instruction = models.TextField(blank=True, default="", help_text="Guidance for reviewers (Markdown).")
    enable_comment = models.BooleanField(default=False, help_text="Let reviewers add a comment (the rationale).")
    input_type = models.CharField(max_length=20, choices=InputType.choices)
    options = models.JSONField(default=list, blank=True)
    max_length = models.PositiveIntegerField(null=True, blank=True)
    max_count = models.PositiveIntegerField(null=True, blank=True)
    min_value = models.FloatField(null=True, blank=True)
    max_value = models.FloatField(null=True, blank=True)
    integer = models.BooleanField(default=False)
    pass_label = models.CharField(max_length=60, blank=True, default="")
    fail_label = models.CharField(max_length=60, blank=True, default="")
    builtin = models.BooleanField(default=False)
    version = models.PositiveIntegerField(default=1)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def get_absolute_url(self) -> str:
        return reverse("labeling:schema_edit", args=[self.pk])

    @property
    def is_feedback(self) -> bool:
        return self.type == SchemaType.FEEDBACK

    @property
    def choices(self) -> list[tuple[str, str]]:
        """(value, label) pairs for option-like inputs, in the order digits pick them."""
        if self.input_type == InputType.PASS_FAIL:
            return [("pass", self.pass_label or "Pass"), ("fail", self.fail_label or "Fail")]
        if self.input_type in (InputType.CATEGORICAL, InputType.CATEGORICAL_LIST):
            return [(str(option), str(option)) for option in self.options]
        return []

    def config(self) -> dict[str, Any]:
        return {field: getattr(self, field) for field in INPUT_FIELDS[self.input_type]}

    def snapshot(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "type": self.type,
            "title": self.title,
            "instruction": self.instruction,
            "enable_comment": self.enable_comment,
            "input_type": self.input_type,
            **{field: getattr(self, field) for field in CONFIG_FIELDS},
        }


class LabelSchemaVersion(models.Model):
    """What a schema looked like before an edit, so old answers stay interpretable."""

    schema = models.ForeignKey(LabelSchema, on_delete=models.CASCADE, related_name="versions")
    version = models.PositiveIntegerField()
    snapshot = models.JSONField()
    changed_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["schema", "-version"]
        constraints = [models.UniqueConstraint(fields=["schema", "version"], name="schema_version_unique")]

    def __str__(self) -> str:
        return f"{self.schema} v{self.version}"


class SessionStatus(models.TextChoices):
    ACTIVE = "active", "Active"
    COMPLETED = "completed", "Completed"
    ARCHIVED = "archived", "Archived"


class LabelingSessionQuerySet(models.QuerySet["LabelingSession"]):
    def for_reviewer(self, user: Any) -> LabelingSessionQuerySet:
        return self.filter(reviewers=user)


class LabelingSession(models.Model):
    """A review campaign: questions, reviewers, and frozen copies of the traces to label."""

    name = models.CharField(max_length=200, unique=True)
    instructions = models.TextField(blank=True, default="", help_text="Shown to reviewers on every item (Markdown).")
    status = models.CharField(max_length=12, choices=SessionStatus.choices, default=SessionStatus.ACTIVE)
    experiment = models.OneToOneField(
        Experiment, on_delete=models.PROTECT, related_name="labeling_session", help_text="Holds the trace copies."
    )
    schemas = models.ManyToManyField(LabelSchema, through="SessionSchema", related_name="sessions")
    reviewers = models.ManyToManyField(settings.AUTH_USER_MODEL, related_name="labeling_sessions", blank=True)
    leads = models.ManyToManyField(
        settings.AUTH_USER_MODEL,
        related_name="led_sessions",
        blank=True,
        help_text="Session leads manage this session and settle disagreements.",
    )
    reviewers_per_item = models.PositiveSmallIntegerField(
        default=1,
        validators=[MinValueValidator(1), MaxValueValidator(10)],
        help_text="How many different reviewers answer each item (1-10).",
    )
    lease_minutes = models.PositiveSmallIntegerField(
        default=10,
        validators=[MinValueValidator(1), MaxValueValidator(24 * 60)],
        help_text="How long an item stays reserved for the reviewer who opened it.",
    )
    blind = models.BooleanField(
        default=False,
        help_text="Reviewers never see other reviewers' answers nor judge/code assessments before submitting.",
    )
    assignment_mode = models.CharField(
        max_length=10,
        choices=[("pool", "Shared pool: next free item"), ("assigned", "Assigned: each reviewer sees their items")],
        default="pool",
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = LabelingSessionQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return self.name

    def get_absolute_url(self) -> str:
        return reverse("labeling:session_dashboard", args=[self.pk])

    def get_review_url(self) -> str:
        return reverse("labeling:review_start", args=[self.pk])

    @property
    def accepts_answers(self) -> bool:
        return self.status != SessionStatus.ARCHIVED

    def ordered_schemas(self) -> list[LabelSchema]:
        return [link.schema for link in self.schema_links.select_related("schema").order_by("position")]


class SessionSchema(models.Model):
    session = models.ForeignKey(LabelingSession, on_delete=models.CASCADE, related_name="schema_links")
    schema = models.ForeignKey(LabelSchema, on_delete=models.PROTECT, related_name="session_links")
    position = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["position"]
        constraints = [models.UniqueConstraint(fields=["session", "schema"], name="session_schema_unique")]

    def __str__(self) -> str:
        return f"{self.session} #{self.position}: {self.schema}"


class ReviewItemQuerySet(models.QuerySet["ReviewItem"]):
    def with_progress(self) -> ReviewItemQuerySet:
        return self.annotate(submitted_reviews=Count("reviews", filter=Q(reviews__status=ReviewStatus.SUBMITTED)))

    def unfinished_for(self, user: Any) -> ReviewItemQuerySet:
        return self.exclude(reviews__reviewer=user, reviews__status=ReviewStatus.SUBMITTED)


class ReviewItem(models.Model):
    """A trace copied into a session; ``trace`` is the frozen copy, ``source_trace`` the original."""

    session = models.ForeignKey(LabelingSession, on_delete=models.CASCADE, related_name="items")
    trace = models.OneToOneField(Trace, on_delete=models.CASCADE, related_name="review_item")
    source_trace = models.ForeignKey(Trace, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    source_trace_id_text = models.CharField(max_length=64, help_text="trace_id of the original, kept if it is deleted.")
    position = models.PositiveIntegerField()
    submitted_count = models.PositiveSmallIntegerField(default=0, help_text="Reviewers who submitted answers.")
    assignees = models.ManyToManyField(
        settings.AUTH_USER_MODEL, through="ItemAssignment", related_name="assigned_items", blank=True
    )
    created_at = models.DateTimeField(auto_now_add=True)

    objects = ReviewItemQuerySet.as_manager()

    class Meta:
        ordering = ["session", "position"]
        constraints = [
            models.UniqueConstraint(fields=["session", "source_trace_id_text"], name="item_source_unique"),
            models.UniqueConstraint(fields=["session", "position"], name="item_position_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.session} #{self.position}"

    def get_absolute_url(self) -> str:
        return reverse("labeling:review_item", args=[self.session_id, self.pk])


class ReviewStatus(models.TextChoices):
    CLAIMED = "claimed", "In progress"
    SUBMITTED = "submitted", "Submitted"
    SKIPPED = "skipped", "Skipped"


class ItemAssignment(models.Model):
    """An item given explicitly to a reviewer (sessions in ``assigned`` mode)."""

    item = models.ForeignKey(ReviewItem, on_delete=models.CASCADE, related_name="assignments")
    reviewer = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")

    class Meta:
        constraints = [models.UniqueConstraint(fields=["item", "reviewer"], name="item_assignment_unique")]

    def __str__(self) -> str:
        return f"{self.item} → {self.reviewer}"


class ItemReview(models.Model):
    """One reviewer's progress on one item."""

    item = models.ForeignKey(ReviewItem, on_delete=models.CASCADE, related_name="reviews")
    reviewer = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="item_reviews")
    status = models.CharField(max_length=12, choices=ReviewStatus.choices)
    skip_reason = models.CharField(max_length=500, blank=True, default="")
    claimed_at = models.DateTimeField(null=True, blank=True)
    lease_expires_at = models.DateTimeField(null=True, blank=True)
    submitted_at = models.DateTimeField(null=True, blank=True)
    flagged = models.BooleanField(default=False)
    late = models.BooleanField(
        default=False,
        help_text="Submitted after the lease ran out and others had filled the item: kept, not counted.",
    )
    flag_note = models.CharField(max_length=1000, blank=True, default="")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["item", "reviewer"], name="item_review_unique")]
        indexes = [
            models.Index(fields=["reviewer", "status"], name="item_review_reviewer_idx"),
            models.Index(fields=["item", "status", "lease_expires_at"], name="item_review_lease_idx"),
            # The dashboard's flagged list: the few flagged reviews without scanning every session's reviews.
            models.Index(fields=["item"], condition=Q(flagged=True), name="item_review_flagged_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.reviewer} on {self.item}: {self.status}"

    @property
    def seconds_spent(self) -> float | None:
        if self.claimed_at and self.submitted_at:
            return (self.submitted_at - self.claimed_at).total_seconds()
        return None


class Adjudication(models.Model):
    """A lead's final answer for one question of one item; stored also as an authoritative assessment."""

    item = models.ForeignKey(ReviewItem, on_delete=models.CASCADE, related_name="adjudications")
    schema = models.ForeignKey(LabelSchema, on_delete=models.PROTECT, related_name="+")
    assessment = models.ForeignKey("traces.Assessment", on_delete=models.PROTECT, related_name="+")
    decided_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["item", "schema", "-created_at"]

    def __str__(self) -> str:
        return f"{self.item} / {self.schema}"


class JobState(models.TextChoices):
    QUEUED = "queued", "Waiting for a worker"
    RUNNING = "running", "Copying"
    DONE = "done", "Done"
    FAILED = "failed", "Failed"


class TraceAddJob(models.Model):
    """A large add of traces to a session, copied in the background in batches.

    The selection is resolved to source trace ids when the add is requested, so what the job
    copies is exactly what the page showed; ``done`` is how many of them were handled, in order,
    so a job interrupted between batches resumes where it stopped.
    """

    session = models.ForeignKey(LabelingSession, on_delete=models.CASCADE, related_name="add_jobs")
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    source_ids = models.JSONField(default=list, help_text="Primary keys of the source traces, in copy order.")
    total = models.PositiveIntegerField(default=0)
    done = models.PositiveIntegerField(default=0, help_text="Source traces handled so far (added or skipped).")
    added = models.PositiveIntegerField(default=0)
    skipped = models.PositiveIntegerField(default=0, help_text="Already in the session.")
    missing = models.PositiveIntegerField(default=0, help_text="Deleted after the add was requested.")
    state = models.CharField(max_length=10, choices=JobState.choices, default=JobState.QUEUED)
    error = models.TextField(blank=True, default="")
    attempts = models.PositiveSmallIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["session", "-created_at"], name="trace_add_job_session_idx")]

    def __str__(self) -> str:
        return f"{self.session}: {self.done}/{self.total} ({self.state})"

    @property
    def percent(self) -> int:
        return 100 if not self.total else min(100, round(100 * self.done / self.total))

    @property
    def is_active(self) -> bool:
        return self.state in (JobState.QUEUED, JobState.RUNNING)

    @property
    def is_stalled(self) -> bool:
        """Queued or running with no batch finished for a while: its worker was stopped or never started."""
        quiet = timezone.now() - self.updated_at
        return self.is_active and quiet > timedelta(seconds=settings.TRACE_ADD_STALLED_SECONDS)

    @property
    def can_retry(self) -> bool:
        return self.state == JobState.FAILED or self.is_stalled
