"""The API's frame: token auth on every endpoint, one JSON error shape for every refusal, OpenAPI and docs."""

from __future__ import annotations

import json
import re

import pytest
from django.contrib.auth.models import User
from django.test import Client

from tests.api.conftest import ApiClient, World, assert_error
from traces.models import ApiToken, Assessment, Trace
from traces.tokens import create_api_token, revoke_api_token

pytestmark = pytest.mark.django_db

# (method, path, body) of every endpoint; {trace} and {assessment} are filled in.
ENDPOINTS = [
    ("GET", "/api/traces/", None),
    ("GET", "/api/traces/{trace}", None),
    ("PATCH", "/api/traces/{trace}/tags", {"key": "k", "value": "v"}),
    ("POST", "/api/traces/{trace}/tags", {"key": "k", "value": "v"}),
    ("DELETE", "/api/traces/{trace}/tags?key=k", None),
    ("GET", "/api/traces/{trace}/assessments", None),
    ("POST", "/api/traces/{trace}/feedback", {"name": "ok", "value": True}),
    ("POST", "/api/traces/{trace}/expectations", {"name": "facts", "value": ["a"]}),
    ("POST", "/api/traces/{trace}/assessments/{assessment}/override", {"value": False}),
]


def _path(template: str, world: World) -> str:
    trace = world.traces[0]
    assessment, _ = Assessment.objects.get_or_create(
        assessment_id="a-fixed",
        defaults={
            "trace": trace,
            "name": "ok",
            "kind": "feedback",
            "value": True,
            "create_time": trace.request_time,
            "last_update_time": trace.request_time,
        },
    )
    return template.format(trace=trace.trace_id, assessment=assessment.assessment_id)


@pytest.mark.parametrize(("method", "template", "body"), ENDPOINTS)
def test_every_endpoint_needs_a_working_token(world: World, admin_user: User, method, template, body) -> None:
    path = _path(template, world)
    token, secret = create_api_token(user=admin_user, name="soon revoked")
    tags_before = Trace.objects.get(pk=world.traces[0].pk).tags
    cases = [
        (None, "needs an API token"),
        ("Bearer rvw_not-a-real-token", "not a valid API token"),
        ("Token abc", "Use 'Authorization: Bearer"),
    ]
    for header, words in cases:
        client = ApiClient(None)
        headers = {"Authorization": header} if header else {}
        response = client.request(method, path, body, headers=headers)
        assert_error(response, 401, "UNAUTHENTICATED", words)
        assert response["WWW-Authenticate"].startswith("Bearer")
    revoke_api_token(token=token)
    assert_error(ApiClient(secret).request(method, path, body), 401, "UNAUTHENTICATED", "revoked")
    admin_user.is_active = False
    admin_user.save()
    _, other = create_api_token(user=admin_user, name="owner deactivated")
    assert_error(ApiClient(other).request(method, path, body), 401, "UNAUTHENTICATED", "deactivated")
    assert Trace.objects.get(pk=world.traces[0].pk).tags == tags_before
    assert Assessment.objects.count() == 1


def test_a_browser_session_alone_is_not_enough(client: Client, admin_user: User, world: World) -> None:
    """Cookies do not authenticate the API, so a page cannot be tricked into calling it (no CSRF needed)."""
    client.force_login(admin_user)
    assert_error(client.get("/api/traces/"), 401, "UNAUTHENTICATED")


def test_token_auth_needs_no_csrf_token(tokens: dict[str, str], world: World) -> None:
    client = Client(enforce_csrf_checks=True)
    response = client.post(
        f"/api/traces/{world.traces[0].trace_id}/feedback",
        data=json.dumps({"name": "ok", "value": True}),
        content_type="application/json",
        headers={"Authorization": f"Bearer {tokens['admin']}"},
    )
    assert response.status_code == 201


def test_basic_auth_with_the_token_as_password_works(tokens: dict[str, str], world: World) -> None:
    import base64

    credentials = base64.b64encode(f"me:{tokens['admin']}".encode()).decode()
    response = Client().get("/api/traces/", headers={"Authorization": f"Basic {credentials}"})
    assert response.status_code == 200


def test_using_a_token_records_when_it_was_last_used(as_admin: ApiClient, world: World) -> None:
    as_admin.get("/api/traces/")
    assert ApiToken.objects.get(user__username="admin").last_used_at is not None


def test_unknown_paths_and_methods_get_the_error_shape(as_admin: ApiClient, world: World) -> None:
    assert_error(as_admin.get("/api/nothing-here/"), 404, "RESOURCE_DOES_NOT_EXIST", "/api/nothing-here/")
    response = as_admin.request("PUT", f"/api/traces/{world.traces[0].trace_id}")
    assert_error(response, 405, "METHOD_NOT_ALLOWED", "PUT")
    assert response["Allow"] == "GET"


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ("{not json", ["not valid JSON"]),
        ("[1, 2", ["not valid JSON"]),
        ("9" * 5000, ["not valid JSON"]),  # beyond what Python parses as an integer
        ("[" * 100_000 + "]" * 100_000, ["not valid JSON"]),  # deeper than the parser recurses
        ([], ["Field required"]),
        ({"value": True}, ["name: Field required"]),
        ({"name": 3, "value": True}, ["name: Input should be a valid string"]),
        ({"name": "ok", "value": True, "source": {"source_type": "ROBOT"}}, ["source.source_type"]),
        ({"name": "ok", "value": True, "metadata": {"a": 1}}, ["metadata.a"]),
        ({"name": "x" * 256, "value": True}, ["name: String should have at most 255 characters"]),
    ],
)
def test_bad_bodies_are_400_naming_the_field(as_admin: ApiClient, world: World, body, words) -> None:
    response = as_admin.post(f"/api/traces/{world.traces[0].trace_id}/feedback", body)
    assert_error(response, 400, "INVALID_PARAMETER_VALUE", *words)
    assert not Assessment.objects.exists()


def test_an_unexpected_error_is_a_500_without_a_traceback(
    as_admin: ApiClient, world: World, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(pks):
        raise RuntimeError("secret internals")

    monkeypatch.setattr("traces.api.trace_dicts", broken)
    response = as_admin.get(f"/api/traces/{world.traces[0].trace_id}")
    body = assert_error(response, 500, "INTERNAL_ERROR", "logged")
    assert "secret internals" not in body["message"]
    assert "secret internals" in caplog.text  # but the operator finds it in the log


def test_openapi_schema_is_served_and_describes_every_endpoint(anonymous: ApiClient) -> None:
    response = anonymous.get("/api/openapi.json")
    assert response.status_code == 200
    schema = json.loads(response.content)
    assert schema["openapi"].startswith("3.")
    assert schema["info"]["title"] == "Review app API"
    paths = schema["paths"]
    expected = {
        "/api/traces/": {"get"},
        "/api/traces/{trace_id}": {"get"},
        "/api/traces/{trace_id}/tags": {"patch", "post", "delete"},
        "/api/traces/{trace_id}/assessments": {"get"},
        "/api/traces/{trace_id}/feedback": {"post"},
        "/api/traces/{trace_id}/expectations": {"post"},
        "/api/traces/{trace_id}/assessments/{assessment_id}/override": {"post"},
    }
    for path, methods in expected.items():
        assert methods <= set(paths[path]), path
        for method in methods:
            operation = paths[path][method]
            assert operation["security"], f"{method} {path} is not marked as needing a token"
            assert "404" in operation["responses"] and "401" in operation["responses"]
    operation_ids = [op["operationId"] for methods in paths.values() for op in methods.values()]
    assert len(operation_ids) == len(set(operation_ids))
    for path, methods in paths.items():  # the docs' one-line titles say what each call does
        for method, operation in methods.items():
            assert len(operation["summary"].split()) >= 2, f"{method} {path}: {operation['summary']!r}"
    for ref in re.findall(r'"\$ref": "#/components/schemas/([^"]+)"', response.content.decode()):
        assert ref in schema["components"]["schemas"], ref
    assert schema["components"]["securitySchemes"]["TokenAuth"] == {"type": "http", "scheme": "bearer"}
    error = schema["components"]["schemas"]["ErrorOut"]
    assert set(error["required"]) == {"error_code", "message"}


def test_docs_page_uses_no_cdn(anonymous: ApiClient) -> None:
    response = anonymous.get("/api/docs")
    assert response.status_code == 200
    html = response.content.decode()
    assert "/static/ninja/swagger-ui-bundle.js" in html
    assert "cdn" not in html.lower()


def test_an_oversized_body_is_413(as_admin: ApiClient, world: World, settings) -> None:
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 10_000
    body = {"name": "ok", "value": "v" * 20_000}
    response = as_admin.post(f"/api/traces/{world.traces[0].trace_id}/feedback", body)
    assert_error(response, 413, "INVALID_PARAMETER_VALUE", "over 10,000 bytes")
    assert not Assessment.objects.exists()


def test_too_many_query_parameters_are_400(as_admin: ApiClient, world: World) -> None:
    response = as_admin.get("/api/traces/", {"experiment_ids": [str(i) for i in range(1500)]})
    assert_error(response, 400, "INVALID_PARAMETER_VALUE", "DATA_UPLOAD_MAX_NUMBER_FIELDS")


@pytest.mark.parametrize(("method", "template", "body"), ENDPOINTS[1:])
def test_every_trace_endpoint_is_404_for_an_unknown_trace(as_admin: ApiClient, world: World, method, template, body):
    path = _path(template, world).replace(world.traces[0].trace_id, "tr-00000000000000000000000000000000")
    assert_error(as_admin.request(method, path, body), 404, "RESOURCE_DOES_NOT_EXIST", "tr-0000")


def test_every_api_schema_has_its_own_name() -> None:
    """ninja names OpenAPI components after the schema classes: two of one name would silently share one."""
    import inspect

    from ninja import Schema

    import evaluation.api
    import labeling.api
    import traces.api

    seen: dict[str, str] = {}
    for module in (traces.api, labeling.api, evaluation.api):
        for name, value in vars(module).items():
            if inspect.isclass(value) and issubclass(value, Schema) and value.__module__ == module.__name__:
                assert name not in seen, f"{name} is defined in {seen[name]} and {module.__name__}"
                seen[name] = module.__name__
