"""A judge run's cost in a real browser: the run page's Judge cost card, the runs list, the confirmation step."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from evaluation.runs import execute_run, start_evaluation_run
from tests.evaluation.judges.conftest import API_KEY, failure, judge_env, judge_server, verdict  # noqa: F401
from tests.factories import make_experiment, make_trace

from .conftest import login

SHOTS = os.environ.get("JUDGE_COST_SHOTS", "")


def _shoot(page: Any, screenshot_dir: Path, name: str) -> None:
    for width, height in ((1366, 800), (1024, 700)):
        page.set_viewport_size({"width": width, "height": height})
        for folder in [screenshot_dir, *([Path(SHOTS)] if SHOTS else [])]:
            page.screenshot(path=str(folder / f"{name}_{width}.png"), full_page=True)


def test_judge_cost_on_the_run_page_the_list_and_the_confirmation(
    page: Any,
    live_server: Any,
    admin_user: Any,
    judge_server: Any,  # noqa: F811 (the imported fixture)
    settings: Any,
    screenshot_dir: Path,
) -> None:
    settings.SCORER_MODULES = ["tests.evaluation.scorer_modules.verdicts"]
    settings.JUDGE_CONFIRM_OVER = 5
    experiment = make_experiment("Support")
    for i in range(8):
        make_trace(experiment=experiment, question=f"Is physiotherapy covered, case {i}?", answer=f"Yes, case {i}.")

    def reply(request: Any) -> Any:
        if "case 3" in request.prompt:
            return failure(503, "overloaded")
        if "case 5" in request.prompt:
            return failure(404, f"model judge-model does not exist <script>alert(1)</script> {API_KEY}")
        return verdict("no" if "case 6" in request.prompt else "yes", "The answer <b>follows</b> the policy.")

    judge_server.default = reply
    judge_server.then(failure(429, "slow down"))
    run = start_evaluation_run(
        scorer_names=["Safety", "RelevanceToQuery", "is_short"],
        filter_string="",
        experiment="Support",
        name="Support answers · judges",
        enqueue=False,
        confirmed=True,
    )
    execute_run(run.pk)

    login(page, live_server, "admin", "admin-pass")
    page.goto(f"{live_server.url}/datasets/runs/{run.pk}/")
    card = page.inner_text("#judge-cost")
    assert "Judge calls" in card and "16" in card and "HTTP_503 2" in card and "HTTP_404 2" in card
    page.click("#results details.why >> nth=0")
    assert "<script>" not in page.inner_text("#judge-cost") and API_KEY not in page.content()
    _shoot(page, screenshot_dir, "judge_cost_run")

    page.goto(f"{live_server.url}/datasets/runs/")
    assert "4 failed" in page.inner_text("td.run-judges")
    _shoot(page, screenshot_dir, "judge_cost_runs_list")

    page.goto(f"{live_server.url}/datasets/runs/start/")
    page.check("input[name=source][value=filter]")
    page.select_option("#id_experiment", label="Support")
    page.check("input[name=scorers][value=Safety]")
    page.check("input[name=scorers][value=RelevanceToQuery]")
    page.click("button:has-text('Start the run')")
    page.wait_for_selector("#confirm-run")
    assert "8 traces × 2 judges = 16 judge calls" in page.inner_text("#confirm-run")
    _shoot(page, screenshot_dir, "judge_cost_confirm")
    page.click("button:has-text('Start anyway')")
    page.wait_for_selector("#status")
    assert "/datasets/runs/" in page.url
