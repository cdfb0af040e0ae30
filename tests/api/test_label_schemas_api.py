"""Label schemas over the API: admins create, edit and delete them; everyone with a token reads them."""

from __future__ import annotations

from typing import Any

import pytest

from labeling.models import LabelSchema, LabelSchemaVersion
from labeling.services import create_labeling_session
from tests.api.conftest import ApiClient, assert_error

pytestmark = pytest.mark.django_db

URL = "/api/label-schemas/"


def body(**overrides: Any) -> dict[str, Any]:
    data = {
        "name": "tone",
        "type": "feedback",
        "title": "Is the tone right?",
        "input": {"type": "categorical", "options": ["good", "bad"]},
        "instruction": "Look at the **last** answer.",
        "enable_comment": True,
    }
    return {**data, **overrides}


def test_admin_creates_and_reads_a_schema(as_admin: ApiClient, as_reviewer: ApiClient) -> None:
    response = as_admin.post(URL, body())
    assert response.status_code == 201, response.content
    created = response.json()
    assert created["name"] == "tone" and created["version"] == 1 and created["builtin"] is False
    assert created["input"] == {"type": "categorical", "options": ["good", "bad"]}
    assert created["enable_comment"] is True
    got = as_reviewer.get(URL + "tone")
    assert got.status_code == 200 and got.json() == created


def test_every_input_kind_round_trips(as_admin: ApiClient) -> None:
    kinds = {
        "a": {"type": "categorical_list", "options": ["x", "y"]},
        "b": {"type": "text", "max_length": 200},
        "c": {"type": "text_list", "max_length": 50, "max_count": 3},
        "d": {"type": "numeric", "min_value": 1.0, "max_value": 5.0, "integer": True},
        "e": {"type": "pass_fail", "pass_label": "Yes", "fail_label": "No"},
    }
    for name, spec in kinds.items():
        response = as_admin.post(URL, body(name=name, input=spec, type="expectation"))
        assert response.status_code == 201, response.content
        assert response.json()["input"] == spec


def test_an_existing_name_is_a_409_unless_overwrite(as_admin: ApiClient) -> None:
    as_admin.post(URL, body())
    assert_error(as_admin.post(URL, body(title="Other")), 409, "RESOURCE_ALREADY_EXISTS", "tone", "overwrite")
    assert LabelSchema.objects.get(name="tone").title == "Is the tone right?"
    response = as_admin.post(URL, body(title="Other", overwrite=True))
    assert response.status_code == 201 and response.json()["version"] == 2
    assert LabelSchemaVersion.objects.filter(schema__name="tone", version=1).count() == 1


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"name": "not a slug!"}, "name"),
        ({"input": {"type": "categorical", "options": []}}, "options"),
        ({"input": {"type": "numeric", "min_value": 5, "max_value": 1}}, "max_value"),
        ({"input": {"type": "text", "options": ["a"]}}, "input.options"),
        ({"input": {"type": "slider"}}, "input.type"),
        ({"type": "opinion"}, "type"),
        ({"title": ""}, "title"),
        ({"title": "bad\x00"}, "title"),
    ],
)
def test_bad_input_is_a_400_naming_the_field(as_admin: ApiClient, change: dict[str, Any], field: str) -> None:
    assert_error(as_admin.post(URL, body(**change)), 400, "INVALID_PARAMETER_VALUE", field)
    assert not LabelSchema.objects.filter(name="tone").exists()


def test_patch_changes_only_what_is_sent(as_admin: ApiClient) -> None:
    as_admin.post(URL, body())
    response = as_admin.patch(URL + "tone", {"title": "Tone OK?"})
    assert response.status_code == 200, response.content
    assert response.json()["title"] == "Tone OK?" and response.json()["version"] == 2
    assert response.json()["input"]["options"] == ["good", "bad"]
    assert_error(
        as_admin.patch(URL + "tone", {"input": {"type": "numeric", "min_value": 3, "max_value": 1}}),
        400,
        "INVALID_PARAMETER_VALUE",
    )
    assert LabelSchema.objects.get(name="tone").input_type == "categorical"


def test_delete_and_refusal_while_in_use(as_admin: ApiClient, admin_user: Any) -> None:
    as_admin.post(URL, body())
    as_admin.post(URL, body(name="used"))
    create_labeling_session(name="S", schemas=[LabelSchema.objects.get(name="used")], created_by=admin_user)
    assert as_admin.delete(URL + "tone").status_code == 204
    assert_error(as_admin.get(URL + "tone"), 404, "RESOURCE_DOES_NOT_EXIST", "tone")
    assert_error(as_admin.delete(URL + "used"), 400, "INVALID_PARAMETER_VALUE", "used by 1 session")
    assert LabelSchema.objects.filter(name="used").exists()


def test_access_rules(as_admin: ApiClient, as_reviewer: ApiClient, as_lead: ApiClient, anonymous: ApiClient) -> None:
    as_admin.post(URL, body())
    for client, status in ((anonymous, 401), (as_reviewer, 403), (as_lead, 403)):
        assert as_admin is not client
        assert client.post(URL, body(name="x")).status_code == status
        assert client.patch(URL + "tone", {"title": "Hacked"}).status_code == status
        assert client.delete(URL + "tone").status_code == status
    assert anonymous.get(URL).status_code == 401
    assert LabelSchema.objects.get(name="tone").title == "Is the tone right?"
    assert not LabelSchema.objects.filter(name="x").exists()


def test_list_is_paginated_in_constant_queries(as_admin: ApiClient, django_assert_max_num_queries: Any) -> None:
    for i in range(7):
        LabelSchema.objects.create(name=f"q{i}", title=f"Q{i}", input_type="text")
    seen: list[str] = []
    token = None
    while True:
        params = {"max_results": 3, **({"page_token": token} if token else {})}
        with django_assert_max_num_queries(4):
            page = as_admin.get(URL, params).json()
        seen += [s["name"] for s in page["label_schemas"]]
        token = page.get("next_page_token")
        if not token:
            break
    assert [n for n in seen if n.startswith("q")] == [f"q{i}" for i in range(7)]
    assert len(seen) == len(set(seen)) == LabelSchema.objects.count()
    assert_error(as_admin.get(URL, {"page_token": "junk"}), 400, "INVALID_PARAMETER_VALUE", "page_token")
