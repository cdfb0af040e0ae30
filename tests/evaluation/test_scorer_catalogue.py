"""The scorer catalogue: every Scorer of SCORER_MODULES by name, with what a run and a page need to know."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from evaluation.scorers.catalogue import ScorerModuleError, UnknownScorerError, load_catalogue

pytestmark = pytest.mark.django_db  # the catalogue lists the custom judges stored in the database

ROOT = Path(__file__).resolve().parents[2]
SHAPES = "tests.evaluation.scorer_modules.shapes"


def test_example_module_is_the_default_and_lists_its_four_scorers() -> None:
    catalogue = load_catalogue()
    assert set(catalogue.scorers) == {
        "response_length",
        "has_retrieved_documents",
        "mentions_expected_fact",
        "latency_under_threshold",
    }
    fact = catalogue.get("mentions_expected_fact")
    assert fact.module == "evaluation.example_scorers"
    assert fact.arguments == ("outputs", "expectations")
    assert "expected fact" in fact.docstring
    assert catalogue.get("response_length").aggregations == ("mean", "min", "max", "median")
    assert catalogue.get("has_retrieved_documents").takes_trace


def test_functions_and_scorer_instances_are_found_with_signature_and_docstring() -> None:
    catalogue = load_catalogue([SHAPES])
    assert catalogue.get("exact_answer").arguments == ("outputs", "expectations")
    assert catalogue.get("exact_answer").docstring == "True when the response is the expected response."
    assert catalogue.get("several").arguments == ("inputs", "outputs")
    assert catalogue.get("answer_chars").aggregations == ("mean", "spread")
    keyword = catalogue.get("keyword")
    assert keyword.arguments == ("outputs",) and "keyword" in keyword.docstring
    assert all(info.digest.startswith("sha256:") for info in catalogue.scorers.values())
    assert len({info.digest for info in catalogue.scorers.values()}) == len(catalogue.scorers)


def test_a_changed_scorer_gets_a_new_digest(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(tmp_path))
    module = tmp_path / "my_changing_scorers.py"
    body = (
        "from mlflow.genai.scorers import scorer\n\n"
        "@scorer\ndef short(outputs) -> bool:\n    return len(outputs) < {}\n"
    )
    module.write_text(body.format(100))
    first = load_catalogue(["my_changing_scorers"]).get("short").digest
    assert load_catalogue(["my_changing_scorers"]).get("short").digest == first
    sys.modules.pop("my_changing_scorers")
    module.write_text(body.format(50))
    assert load_catalogue(["my_changing_scorers"]).get("short").digest != first


def test_a_module_that_fails_to_import_is_a_clear_error_naming_it() -> None:
    catalogue = load_catalogue(["tests.evaluation.scorer_modules.broken", SHAPES, "no_such_scorer_module"])
    assert "exact_answer" in catalogue.scorers
    broken, missing = catalogue.errors
    assert isinstance(broken, ScorerModuleError)
    assert broken.module == "tests.evaluation.scorer_modules.broken"
    assert broken.reason == "RuntimeError: missing API key for the scorer service"
    assert missing.reason == "ModuleNotFoundError: No module named 'no_such_scorer_module'"
    with pytest.raises(ScorerModuleError):
        catalogue.get("not_here")


def test_unknown_scorer_lists_the_known_ones() -> None:
    with pytest.raises(UnknownScorerError, match=r"unknown scorer 'nope'; known scorers: .*exact_answer"):
        load_catalogue([SHAPES]).get("nope")


def test_manage_py_check_does_not_import_mlflow() -> None:
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "manage.py", "check"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    imported = {line.split("|")[-1].strip() for line in result.stderr.splitlines() if line.startswith("import time:")}
    assert "django" in imported
    assert not [name for name in imported if name == "mlflow" or name.startswith("mlflow.")]


def test_the_app_process_turns_mlflow_telemetry_off(settings: Any) -> None:
    import os

    assert os.environ["MLFLOW_DISABLE_TELEMETRY"] == "true"
    assert os.environ["MLFLOW_MODEL_CATALOG_URI"] == ""
