"""Evaluation datasets in MLflow's shape: records of inputs, outputs, expectations, tags and a source."""

from __future__ import annotations

import hashlib
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
