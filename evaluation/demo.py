"""The evaluation part of the demo: a dataset of 20 questions, two app versions run and scored on it.

``seed_demo`` calls ``seed_evaluation_demo``: the runs call ``evaluation.demo_app``'s two versions on
the same 20 inputs (predict runs), score them with the example scorers, and their comparison shows
regressions and improvements. Seeding again reuses the finished runs.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.contrib.auth.models import AbstractBaseUser

from . import services
from .models import EvaluationDataset, EvaluationRun, RunStatus
from .runs import execute_run, start_evaluation_run

DEMO_DATASET = "Demo: policy questions"
DEMO_RUN_EXPERIMENT = "Demo: evaluation runs"
DEMO_SCORERS = ["response_length", "has_retrieved_documents", "mentions_expected_fact", "latency_under_threshold"]
DEMO_VERSIONS = [
    ("Demo v1: full answers", "evaluation.demo_app:answer_v1", "demo-v1"),
    ("Demo v2: concise answers", "evaluation.demo_app:answer_v2", "demo-v2"),
]


@dataclass
class EvaluationDemo:
    dataset: EvaluationDataset
    runs: list[EvaluationRun]


def _demo_run(name: str, predict: str, version: str, started_by: AbstractBaseUser | None) -> EvaluationRun:
    existing = EvaluationRun.objects.filter(name=name, status=RunStatus.FINISHED).order_by("-created_at").first()
    if existing is not None:
        return existing
    run = start_evaluation_run(
        scorer_names=DEMO_SCORERS,
        name=name,
        dataset=DEMO_DATASET,
        predict_fn=predict,
        experiment=DEMO_RUN_EXPERIMENT,
        app_version=version,
        started_by=started_by,
        enqueue=False,
    )
    finished = execute_run(run.pk)
    assert finished is not None
    return finished


def seed_evaluation_demo(*, started_by: AbstractBaseUser | None = None) -> EvaluationDemo:
    """The demo dataset (merged, so re-seeding changes nothing) and a finished run per app version."""
    from .demo_app import demo_records  # imports mlflow: only when seeding

    dataset, _ = EvaluationDataset.objects.get_or_create(
        name=DEMO_DATASET, defaults={"description": "Twenty member questions with the fact experts expect."}
    )
    services.merge_records(dataset=dataset, records=demo_records())
    runs = [_demo_run(name, predict, version, started_by) for name, predict, version in DEMO_VERSIONS]
    return EvaluationDemo(dataset, runs)
