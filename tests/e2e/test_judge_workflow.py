"""A custom judge in a real browser: define a 1–5 prompt judge with two examples, preview it, run it once, save it,
check it against a labeling session, use a disagreement as an example and see the re-check (before → after)."""

from __future__ import annotations

from typing import Any

from labeling import services as labeling_services
from labeling.models import LabelSchema, ReviewItem
from tests.evaluation.judges.conftest import Reply, Request, judge_env, judge_server, verdict  # noqa: F401 (fixtures)
from tests.factories import make_assessment, make_experiment, make_trace

from .conftest import login

ANSWERS = (("Thanks! Open Settings, then Security.", True), ("Whatever.", False), ("Whatever, go away.", False))


def _judge(request: Request) -> Reply:
    """Gives every answer a 5 until the judge has a third example (the experts' one): then "Whatever" gets a 2."""
    judged = request.prompt.split("outputs:")[-1]
    low = "Example 3" in request.prompt and "Whatever" in judged
    return verdict("2" if low else "5", "Dismissive, like example 3." if low else "Answers the question.")


def _session() -> tuple[str, Any]:
    question = LabelSchema.objects.create(name="helpfulness", title="Is the answer helpful?", input_type="pass_fail")
    experiment = make_experiment("Support")
    traces = [make_trace(experiment=experiment, question=f"Question {i}", answer=a) for i, (a, _) in enumerate(ANSWERS)]
    session = labeling_services.create_labeling_session(name="Helpfulness review", schemas=[question])
    labeling_services.add_traces_to_session(session=session, trace_ids=[t.trace_id for t in traces])
    for item, (_, value) in zip(ReviewItem.objects.filter(session=session).order_by("position"), ANSWERS, strict=True):
        comment = "" if value else "Dismissive: no help at all."
        make_assessment(item.trace, "helpfulness", value, source_type="HUMAN", source_id="alice", rationale=comment)
    return traces[0].trace_id, session


def _shots(page: Any, directory: Any, name: str) -> None:
    for width, height in ((1366, 800), (1024, 768)):
        page.set_viewport_size({"width": width, "height": height})
        page.screenshot(path=str(directory / f"{name}_{width}.png"), full_page=True)
    page.set_viewport_size({"width": 1366, "height": 800})


def test_define_preview_run_check_teach_and_recheck(
    page: Any,
    live_server: Any,
    admin_user: Any,
    judge_server: Any,  # noqa: F811 (the imported fixture)
    screenshot_dir: Any,
) -> None:
    judge_server.default = _judge
    trace_id, session = _session()
    login(page, live_server, "admin", "admin-pass")
    page.goto(f"{live_server.url}/datasets/judges/")
    page.click("text=Custom judges")
    page.click("text=New judge")

    page.fill("#id_name", "Helpfulness")
    page.fill("#id_instructions", "Rate {{ answer }}.")
    page.select_option("#id_output_kind", "scale")
    page.click("button:has-text('Save judge')")
    errors = page.inner_text("#judge-form")
    assert "Unknown template variable {{ answer }}" in errors and "Use lower-case letters" in errors
    assert "Give the lowest and the highest score" in errors
    _shots(page, screenshot_dir, "custom_judge_errors")

    page.fill("#id_name", "helpfulness")
    page.fill("#id_instructions", "Rate how helpful the answer {{ outputs }} is for the question {{ inputs }}.")
    page.fill("#id_scale_min", "1")
    page.fill("#id_scale_max", "5")
    page.fill("#id_pass_threshold", "4")
    for index, (inputs, outputs, verdict_, why) in enumerate(
        (("What is 2+2?", "4", "5", "Direct and correct."), ("Capital of France?", "I like trains.", "1", "Off topic."))
    ):
        page.fill(f"#id_example_{index}_inputs", inputs)
        page.fill(f"#id_example_{index}_outputs", outputs)
        page.fill(f"#id_example_{index}_verdict", verdict_)
        page.fill(f"#id_example_{index}_rationale", why)
    page.fill("input[name=trace_id]", trace_id)

    page.click("button:has-text('Preview prompt')")
    page.wait_for_selector("#judge-trial .trial-head:has-text('The exact prompt')")
    trial = page.inner_text("#judge-trial")
    assert "Example 2\nInput: Capital of France?" in trial and "Question 0" in trial
    assert judge_server.judged() == []  # a preview sends nothing
    _shots(page, screenshot_dir, "custom_judge_preview")

    page.click("button:has-text('Run once')")
    page.wait_for_selector("#judge-trial .trial-head:has-text('Ran once')")
    trial = page.inner_text("#judge-trial")
    assert "helpfulness_pass" in trial and "Answers the question." in trial
    _shots(page, screenshot_dir, "custom_judge_run_once")

    page.click("button:has-text('Save judge')")
    page.wait_for_selector("text=Saved judge “helpfulness” (version 1).")
    page.click("text=Check this judge against experts")
    page.select_option("#pick-session", str(session.pk))
    page.click("button:has-text('Show')")
    page.click("button:has-text('Run helpfulness on the session')")
    page.wait_for_selector(".stat-percent")
    assert page.inner_text(".stat-percent").startswith("33%")
    assert page.locator("tr.disagreement").count() == 2
    assert "Dismissive: no help at all." in page.inner_text(".disagreements")
    _shots(page, screenshot_dir, "judge_agreement")

    page.locator("tr.disagreement").first.locator("button:has-text('Use as example')").click()
    page.wait_for_selector("text=now version 2")
    page.click("button:has-text('Re-check with v2')")
    page.wait_for_selector(".before-after")
    assert "Agreement 33% → 100%" in page.inner_text(".before-after")
    assert page.locator("tr.disagreement").count() == 0
    _shots(page, screenshot_dir, "judge_agreement_recheck")

    page.goto(f"{live_server.url}/datasets/judges/custom/")
    assert "v2" in page.inner_text("table")
    _shots(page, screenshot_dir, "custom_judge_list")
