"""The Databricks Review App notebook flow, against our app: the real MLflow SDK and our Python client.

Two versions of ``traced_app.py`` (each under ``mlflow.set_active_model``, a RETRIEVER and a
CHAT_MODEL span) export over OTLP to a live app server. Then, as a notebook would with
``mlflow.genai.label_schemas`` and ``mlflow.genai.labeling``, the client creates the questions
(again with ``overwrite``), a session for one reviewer, adds the traces of the newer version found
by ``search_traces(model_id=...)``, and a reviewer answers through the HTTP review screen. The labels
come back with ``search_traces(run_id=session.mlflow_run_id)``, ``sync`` puts them in a dataset,
and real ``mlflow.genai.evaluate`` scores that dataset.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import mlflow
import pytest
import requests
import traced_app
from app_server import REVIEWER, AppServer, app_server
from mlflow.entities import Assessment
from mlflow.genai.scorers import scorer
from test_otlp_export import EXPERIMENT, export_with_mlflow

import reviewapp_client
from reviewapp_client import ReviewAppError, datasets, label_schemas, labeling, search_traces

FACTS = ["refunds are accepted for 30 days", "return shipping is free"]


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AppServer]:
    with app_server(tmp_path_factory.mktemp("app")) as server:
        reviewapp_client.configure(url=server.url, token=server.token)
        yield server


def answer_every_item(browser: requests.Session, start_url: str, answers: dict[str, str]) -> int:
    """Open the session's review screen and submit ``answers`` on each item it gives; how many."""
    page = browser.get(start_url, timeout=20)
    submitted = 0
    while (match := re.search(r'action="(/review/\d+/items/\d+/submit/)"', page.text)) is not None:
        csrf = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text)
        assert csrf, "no CSRF token on the review screen"
        page = browser.post(
            requests.compat.urljoin(page.url, match.group(1)),
            data={"csrfmiddlewaretoken": csrf.group(1), **answers},
            headers={"Referer": page.url},
            timeout=20,
        )
        assert page.ok, page.text[-2000:]
        submitted += 1
        assert submitted <= 10, "the review screen kept giving items"
    return submitted


def test_the_review_app_notebook_flow(app: AppServer, tmp_path: Path) -> None:
    export_with_mlflow(app, tmp_path, TRACED_APP_MODEL="support-bot-v1", TRACED_APP_RUNS="2")
    export_with_mlflow(app, tmp_path, TRACED_APP_MODEL="support-bot-v2", TRACED_APP_RUNS="3")
    everything = search_traces(experiment_ids=[EXPERIMENT])
    models = everything["trace_metadata"].map(lambda metadata: metadata.get("mlflow.modelId"))
    assert models.nunique() == 2 and models.notna().all(), everything["trace_metadata"].tolist()
    newer = models.value_counts().idxmax()  # support-bot-v2 answered three times, v1 twice

    # The questions, as mlflow.genai.label_schemas: a second create with overwrite replaces the first.
    label_schemas.create_label_schema(
        "correct", type="feedback", title="Is it correct?", input=label_schemas.InputCategorical(options=["yes", "no"])
    )
    label_schemas.create_label_schema(
        "correct",
        type="feedback",
        title="Is the answer correct?",
        input=label_schemas.InputCategorical(options=["yes", "no"]),
        enable_comment=True,
        overwrite=True,
    )
    with pytest.raises(ReviewAppError) as refused:
        label_schemas.create_label_schema(
            "correct", type="feedback", title="Again", input=label_schemas.InputCategorical(options=["yes", "no"])
        )
    assert refused.value.error_code == "RESOURCE_ALREADY_EXISTS"
    assert label_schemas.get_label_schema("correct").title == "Is the answer correct?"
    label_schemas.create_label_schema(
        label_schemas.EXPECTED_FACTS,
        type="expectation",
        title="Which facts must the answer state?",
        input=label_schemas.InputTextList(),
        overwrite=True,
    )

    # A session for one reviewer with the traces of the newer version.
    session = labeling.create_labeling_session(
        "support-bot-v2 review", assigned_users=[REVIEWER], label_schemas=["correct", label_schemas.EXPECTED_FACTS]
    )
    version_traces = search_traces(model_id=newer)
    assert len(version_traces) == 3
    session.add_traces(version_traces)
    assert session.url.startswith(app.url)

    answers = {"q-correct": "yes", f"q-{label_schemas.EXPECTED_FACTS}": "\n".join(FACTS)}
    assert answer_every_item(app.login(REVIEWER), session.url, answers) == 3

    # The labels, back as a DataFrame with MLflow's columns.
    labelled = search_traces(run_id=session.mlflow_run_id)
    assert len(labelled) == 3
    for row in labelled["assessments"]:  # as mlflow's: Assessment.to_dictionary() of each
        assessments = [Assessment.from_dictionary(a) for a in row]
        human = {a.name: a for a in assessments if a.source.source_type == "HUMAN"}
        assert human["correct"].value == "yes" and human["correct"].source.source_id == REVIEWER
        assert human[label_schemas.EXPECTED_FACTS].value == FACTS

    # Into a dataset, and scored by the real mlflow.genai.evaluate.
    dataset = datasets.create_dataset("support-bot-v2 expectations")
    session.sync(to_dataset=dataset.name)
    records = datasets.get_dataset(name=dataset.name).to_df()
    assert len(records) == 1  # the three traces asked the same question: one record
    assert records["expectations"][0] == {label_schemas.EXPECTED_FACTS: FACTS}

    @scorer
    def states_the_facts(outputs: str, expectations: dict) -> bool:
        return all(fact.lower() in outputs.lower() for fact in expectations[label_schemas.EXPECTED_FACTS])

    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    mlflow.set_experiment("notebook-flow")
    result = mlflow.genai.evaluate(
        data=records[["inputs", "expectations"]],
        predict_fn=lambda question: traced_app.support_agent(question),
        scorers=[states_the_facts],
    )
    assert result.metrics["states_the_facts/mean"] == 1.0
