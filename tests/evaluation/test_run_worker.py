"""End to end: a run queued by the app is executed by a real ``db_worker`` process (django-tasks-db)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

QUEUE = """
import django, json
django.setup()
from evaluation.runs import start_evaluation_run
from tests.factories import make_experiment, make_trace
exp = make_experiment("Worker")
for i in range(3):
    make_trace(experiment=exp, answer="x " * (i + 1))
run = start_evaluation_run(scorer_names=["response_length", "has_retrieved_documents"], filter_string="",
                           experiment="Worker", name="queued")
from evaluation import services
from evaluation.demo_app import demo_records
from evaluation.models import EvaluationDataset
dataset = EvaluationDataset.objects.create(name="golden")
services.merge_records(dataset=dataset, records=demo_records()[:4])
predict = start_evaluation_run(scorer_names=["mentions_expected_fact"], dataset="golden", name="queued predict",
                               predict_fn="evaluation.demo_app:answer_v1", app_version="v1")
print(json.dumps({"status": run.status, "predict": predict.status}))
"""

READ = """
import django, json
django.setup()
from evaluation.models import EvaluationRun
from traces.models import Trace
run = EvaluationRun.objects.get(name="queued")
predict = EvaluationRun.objects.get(name="queued predict")
print(json.dumps({"status": run.status, "done": run.progress_done, "metrics": run.metrics,
                  "predict": [predict.status, predict.progress_done, predict.metrics],
                  "v1_traces": Trace.objects.filter(model_id="v1", experiment__name="Evaluation runs").count()}))
"""


def _python(code: str, env: dict[str, str]) -> dict:
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_queued_runs_are_finished_by_a_db_worker(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "DATABASE_URL": f"sqlite:///{tmp_path / 'worker.sqlite3'}",
        "DJANGO_SETTINGS_MODULE": "reviewapp.settings",
        "TASKS_BACKEND": "django_tasks_db.DatabaseBackend",
    }
    manage = [sys.executable, "manage.py"]
    subprocess.run([*manage, "migrate", "-v0"], cwd=ROOT, env=env, check=True, timeout=300)
    assert _python(QUEUE, env) == {"status": "queued", "predict": "queued"}
    worker = subprocess.run(
        [*manage, "db_worker", "--batch", "--no-startup-delay"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert worker.returncode == 0, worker.stderr[-3000:]
    state = _python(READ, env)
    assert state["status"] == "finished" and state["done"] == 3
    assert state["metrics"]["has_retrieved_documents/mean"] == 1.0
    assert state["metrics"]["response_length/mean"] > 0
    # the worker called the demo app on the 4 records (the 4th is one v1 dodges) and scored what it traced
    assert state["predict"] == ["finished", 4, {"mentions_expected_fact/mean": 0.75}]
    assert state["v1_traces"] == 4
