"""Evaluation datasets in MLflow's shape: records of inputs, outputs, expectations, tags and a source."""

from __future__ import annotations

import hashlib
import uuid
from typing import Any

import orjson
from django.conf import settings
from django.db import models
from django.urls import reverse
from django.utils.text import slugify


class EvaluationDataset(models.Model):
    name = models.CharField(max_length=200, unique=True)
    description = models.TextField(blank=True, default="")
    tags = models.JSONField(default=dict, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-updated_at"]

    def __str__(self) -> str:
        return self.name

    def get_absolute_url(self) -> str:
        return reverse("evaluation:dataset_detail", args=[self.pk])

    @property
    def file_stem(self) -> str:
        """Download file name without extension: a slug of the name (names are user text, file names are not)."""
        return slugify(self.name) or f"dataset-{self.pk}"


class SourceType(models.TextChoices):
    TRACE = "TRACE", "Trace"
    HUMAN = "HUMAN", "Human"
    CODE = "CODE", "Code"
    DOCUMENT = "DOCUMENT", "Document"


def inputs_key(inputs: Any) -> str:
    """Records are keyed by their inputs: the hash of their canonical JSON."""
    return hashlib.sha256(orjson.dumps(inputs, option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS)).hexdigest()


class DatasetRecord(models.Model):
    dataset = models.ForeignKey(EvaluationDataset, on_delete=models.CASCADE, related_name="records")
    inputs_key = models.CharField(max_length=64)
    inputs = models.JSONField()
    outputs = models.JSONField(null=True, blank=True)
    expectations = models.JSONField(default=dict, blank=True)
    tags = models.JSONField(default=dict, blank=True)
    source_type = models.CharField(max_length=10, choices=SourceType.choices, default=SourceType.TRACE)
    source_data = models.JSONField(default=dict, blank=True)
    history = models.JSONField(default=list, blank=True, help_text="Earlier expectation values, newest last.")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["dataset", "id"]
        constraints = [models.UniqueConstraint(fields=["dataset", "inputs_key"], name="record_inputs_unique")]

    def __str__(self) -> str:
        return f"{self.dataset} #{self.pk}"

    def as_mlflow(self) -> dict[str, Any]:
        """The record as MLflow's ``merge_records`` / ``mlflow.genai.evaluate`` read it."""
        return {
            "inputs": self.inputs,
            "outputs": self.outputs,
            "expectations": self.expectations,
            "tags": self.tags,
            "source": {"source_type": self.source_type, "source_data": self.source_data},
        }


class RunSource(models.TextChoices):
    DATASET = "dataset", "Dataset"
    SESSION = "session", "Labeling session"
    FILTER = "filter", "Filter over an experiment"
    PREDICT = "predict", "Predict function over a dataset"
    MLFLOW = "mlflow", "Made by mlflow.genai.evaluate (imported)"


class RunStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    FINISHED = "finished", "Finished"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"


def new_run_id() -> str:
    """A run id as MLflow writes them: 32 hex characters."""
    return uuid.uuid4().hex


class ProgressJob(models.Model):
    """What a background job over many traces shows while it runs: done / total, when, and why it failed.

    Evaluation runs and backfills both have it; each adds its own status choices and what it covers.
    """

    progress_done = models.PositiveIntegerField(default=0)
    progress_total = models.PositiveIntegerField(default=0)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    error = models.TextField(blank=True, default="")

    class Meta:
        abstract = True

    @property
    def percent_done(self) -> int:
        """Whole percent done, 0 before the total is known, never above 100."""
        if not self.progress_total:
            return 0
        return min(100, int(100 * self.progress_done / self.progress_total))

    @property
    def duration_seconds(self) -> float | None:
        if self.started_at is None or self.finished_at is None:
            return None
        return (self.finished_at - self.started_at).total_seconds()


class EvaluationRun(ProgressJob):
    """Scorers run over a set of traces, with MLflow-style aggregate metrics (``<assessment name>/<agg>``).

    Its results are CODE Feedback assessments on the traces whose metadata
    ``mlflow.assessment.sourceRunId`` is ``run_id``; ``EvaluationRunTrace`` lists the traces it covers.
    """

    run_id = models.CharField(max_length=64, unique=True, default=new_run_id)
    name = models.CharField(max_length=200)
    source_kind = models.CharField(max_length=16, choices=RunSource.choices)
    dataset = models.ForeignKey(EvaluationDataset, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    session = models.ForeignKey(
        "labeling.LabelingSession", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    experiment = models.ForeignKey(
        "traces.Experiment", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    filter_string = models.TextField(blank=True, default="")
    predict_fn = models.CharField(max_length=300, blank=True, default="", help_text="module:function (predict runs).")
    source_label = models.CharField(max_length=300, blank=True, default="", help_text="What it ran on, as named then.")
    scorers = models.JSONField(default=list, help_text="[{name, digest, module}]: the scorer versions it ran.")
    app_version = models.CharField(max_length=255, blank=True, default="", help_text="Model id or version tag.")
    status = models.CharField(max_length=12, choices=RunStatus.choices, default=RunStatus.QUEUED)
    started_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    metrics = models.JSONField(default=dict, blank=True)
    judge_usage = models.JSONField(
        default=dict,
        blank=True,
        help_text="What its judges cost (judges.cost.JudgeUsage), recounted after each batch; {}: no judges.",
    )

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["status", "-created_at"], name="evalrun_status_created_idx")]

    def __str__(self) -> str:
        return self.name

    @property
    def scorer_names(self) -> list[str]:
        return [scorer["name"] for scorer in self.scorers]


class EvaluationRunTrace(models.Model):
    """A trace a run scores (and the dataset record it stands for, when there is one); ``scored`` once written.

    ``inputs_key`` is set when the trace is scored (or imported): two runs' traces with the same inputs
    are the same example, which is how ``evaluation.comparison`` pairs them.
    """

    run = models.ForeignKey(EvaluationRun, on_delete=models.CASCADE, related_name="run_traces")
    trace = models.ForeignKey("traces.Trace", on_delete=models.CASCADE, related_name="+")
    record = models.ForeignKey(DatasetRecord, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    scored = models.BooleanField(default=False)
    inputs_key = models.CharField(
        max_length=64,
        blank=True,
        default="",
        help_text="The trace's inputs hashed as its dataset record's; runs match on it. Blank: not known yet.",
    )

    class Meta:
        ordering = ["run", "id"]
        constraints = [models.UniqueConstraint(fields=["run", "trace"], name="evalrun_trace_unique")]
        indexes = [models.Index(fields=["run", "inputs_key"], name="evalrun_trace_inputs_idx")]

    def __str__(self) -> str:
        return f"{self.run} / {self.trace_id}"


class JudgeKind(models.TextChoices):
    GUIDELINES = "guidelines", "Guidelines judge (pass/fail guidelines)"
    PROMPT = "prompt", "Prompt judge (your instructions)"


class OutputKind(models.TextChoices):
    YES_NO = "yes_no", "Yes / no"
    CATEGORIES = "categories", "Named categories"
    SCALE = "scale", "Integer scale with a pass threshold"


JUDGE_DEFINITION_FIELDS = (
    "name",
    "description",
    "kind",
    "guidelines",
    "instructions",
    "output_kind",
    "categories",
    "scale_min",
    "scale_max",
    "pass_threshold",
    "examples",
)


class CustomJudge(models.Model):
    """An LLM judge defined in the app: MLflow's ``Guidelines`` judge, or ``make_judge`` over its instructions.

    Versioned like label schemas: an edit that changes the definition keeps the previous one as a
    ``CustomJudgeVersion`` and bumps ``version``; the digest a run records derives from the definition,
    so a changed judge is a new scorer version.
    """

    name = models.CharField(max_length=100, unique=True, help_text="The scorer and Feedback name, e.g. “formality”.")
    description = models.TextField(blank=True, default="")
    kind = models.CharField(max_length=12, choices=JudgeKind.choices)
    guidelines = models.JSONField(default=list, blank=True, help_text="Guidelines judges: the pass/fail guidelines.")
    instructions = models.TextField(blank=True, default="", help_text="Prompt judges: the instruction template.")
    output_kind = models.CharField(max_length=12, choices=OutputKind.choices, default=OutputKind.YES_NO)
    categories = models.JSONField(default=list, blank=True, help_text='[{"name": …, "value": number or null}]')
    scale_min = models.IntegerField(null=True, blank=True)
    scale_max = models.IntegerField(null=True, blank=True)
    pass_threshold = models.IntegerField(null=True, blank=True, help_text="A score at least this passes.")
    examples = models.JSONField(default=list, blank=True, help_text="[{inputs, outputs, verdict, rationale}]")
    version = models.PositiveIntegerField(default=1)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def get_absolute_url(self) -> str:
        return reverse("evaluation:custom_judge_edit", args=[self.pk])

    def snapshot(self) -> dict[str, Any]:
        return {field: getattr(self, field) for field in JUDGE_DEFINITION_FIELDS}


class CustomJudgeVersion(models.Model):
    """What a custom judge looked like before an edit."""

    judge = models.ForeignKey(CustomJudge, on_delete=models.CASCADE, related_name="versions")
    version = models.PositiveIntegerField()
    snapshot = models.JSONField()
    changed_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["judge", "-version"]
        constraints = [models.UniqueConstraint(fields=["judge", "version"], name="custom_judge_version_unique")]

    def __str__(self) -> str:
        return f"{self.judge} v{self.version}"


# monitoring's models live in their package; importing them here registers them with the app
from .monitoring.models import (  # noqa: E402, F401
    ArchivePolicy,
    BackfillJob,
    MonitoringResult,
    MonitoringRollup,
    MonitoringWork,
    PeriodicRun,
    RegisteredScorer,
    RegisteredScorerVersion,
)
