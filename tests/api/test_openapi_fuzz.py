"""Contract fuzz of the whole JSON API: every operation ``/api/openapi.json`` lists, against a live server.

Schemathesis reads the schema the running app serves (so routers added later are covered without
touching this file), then sends each operation its explicit examples, the "coverage" phase's
boundary and malformed values (wrong types, missing required fields, huge numbers and strings,
unknown ids) and hypothesis-generated valid and invalid requests, with an admin's API token over a
seeded database. Every answer must be a non-5xx that the schema documents (status and body).

Deterministic: hypothesis is derandomized and the seed fixed. The number of requests sent is
printed in pytest's summary ("OpenAPI fuzz: N requests").
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest
import schemathesis
from django.contrib.auth.models import User
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from schemathesis.checks import load_all_checks, not_a_server_error
from schemathesis.core.failures import FailureGroup
from schemathesis.pytest.lazy import get_all_tests
from schemathesis.specs.openapi.checks import response_schema_conformance, status_code_conformance

from labeling.models import InputType, LabelSchema
from labeling.services import save_label_schema, set_session_schemas
from tests.api.conftest import World
from tests.factories import make_trace
from traces.models import AssessmentKind, AssessmentSource
from traces.services import NewAssessment, log_assessment

MAX_EXAMPLES = 30
SEED = 20261202
CHECKS = [not_a_server_error, status_code_conformance, response_schema_conformance]
REQUESTS = {"sent": 0, "operations": 0}
STATUSES: Counter[int] = Counter()  # by class: 2 for 2xx, 4 for 4xx


def seed_data(world: World, admin: User) -> dict[str, list[str]]:
    """A few traces with feedback and expectations besides the world's session, a question in that
    session; the real ids the fuzzer mixes into generated path parameters, by the parameter's name,
    so operations reach their happy paths, not only 404s."""
    extra = [make_trace(experiment=world.experiment, name=f"fuzz-{i}", tags={"env": "dev"}) for i in range(3)]
    assessment_ids = []
    for trace in [*world.traces, *extra]:
        for kind, name, value in ((AssessmentKind.FEEDBACK, "correct", True), (AssessmentKind.EXPECTATION, "gt", "x")):
            source = {"source_type": AssessmentSource.HUMAN, "source_id": "admin"}
            new = NewAssessment(name=name, kind=kind, value=value, **source)
            assessment_ids.append(log_assessment(trace=trace, new=new).assessment_id)
    question = LabelSchema(name="correct", title="Is it correct?", input_type=InputType.PASS_FAIL)
    question = save_label_schema(schema=question, changed_by=admin)
    set_session_schemas(session=world.session, schemas=[question])
    return {
        "trace": [t.trace_id for t in [*world.traces, *extra]],
        "assessment": assessment_ids,
        "session": [str(world.session.pk)],
        "schema": [str(question.pk), question.name],
        "experiment": [str(world.experiment.pk), world.experiment.name],
    }


def known_ids(known: dict[str, list[str]], parameter: str) -> list[str]:
    """The seeded ids for a path parameter such as ``trace_id`` or ``label_schema_id`` (none if unknown)."""
    for kind in ("assessment", "trace", "session", "schema", "experiment"):  # most specific first
        if kind in parameter:
            return known[kind]
    return []


@pytest.fixture
def api_schema(live_server: Any, world: World, tokens: dict[str, str], admin_user: User) -> Any:
    known = seed_data(world, admin_user)
    config = schemathesis.Config.from_dict(
        {
            "seed": SEED,
            "base-url": live_server.url,
            "headers": {"Authorization": f"Bearer {tokens['admin']}"},
            "generation": {"mode": "all", "max-examples": MAX_EXAMPLES, "deterministic": True},
            "phases": {"examples": {"enabled": True}, "coverage": {"enabled": True}, "fuzzing": {"enabled": True}},
            "request-timeout": 30,
        }
    )
    schema = schemathesis.openapi.from_url(f"{live_server.url}/api/openapi.json", config=config)

    @schema.hook
    def flatmap_path_parameters(context: Any, path_parameters: dict[str, Any]) -> Any:
        """Half the time, the path's ids are ones that exist (generated ones are almost never)."""
        real = {name: st.sampled_from(ids) for name in path_parameters or {} if (ids := known_ids(known, name))}
        if not real:
            return st.just(path_parameters)
        return st.one_of(st.just(path_parameters), st.fixed_dictionaries(real).map(lambda r: {**path_parameters, **r}))

    return schema


def check_case(case: Any) -> None:
    response = case.call_and_validate(checks=CHECKS)
    REQUESTS["sent"] += 1
    STATUSES[response.status_code // 100] += 1


def test_every_operation_answers_as_documented(api_schema: Any) -> None:
    """Each operation in turn (schemathesis' pytest plugin predates pytest 9's node ids, so the
    per-operation hypothesis tests are built and run here); every failure is reported at the end."""
    load_all_checks()
    explicit = settings(
        max_examples=MAX_EXAMPLES,
        derandomize=True,
        database=None,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        print_blob=False,
    )
    failures, operations = [], []
    for result in get_all_tests(schema=api_schema, test_func=check_case, settings=explicit, given_kwargs=None):
        operation, test = result.ok()  # an operation the schema describes wrongly fails the test here
        operations.append(operation.label)
        try:
            test()
        except (Exception, FailureGroup) as exc:  # collected, reported together below
            failures.append(f"{operation.label}: {exc}")
    REQUESTS["operations"] = len(operations)
    assert len(operations) >= 8, operations  # the traces router alone has eight operations
    assert not failures, "\n\n".join(failures)
    assert STATUSES[2] > 0, STATUSES  # the seeded ids got the operations past their 404s
