"""The client's plumbing against a live server: configuration, errors as ReviewAppError, pagination."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import reviewapp_client
from reviewapp_client import ApiClient, ReviewAppError, _http

from .conftest import Shop


def test_unconfigured_client_says_how_to_configure(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ReviewAppError) as caught:
        reviewapp_client.get_client()
    assert caught.value.error_code == "NOT_CONFIGURED"
    assert "REVIEWAPP_URL and REVIEWAPP_TOKEN" in caught.value.message
    assert caught.value.status_code is None
    monkeypatch.setenv("REVIEWAPP_URL", "http://127.0.0.1:1")
    with pytest.raises(ReviewAppError, match="REVIEWAPP_TOKEN") as caught:
        reviewapp_client.get_client()
    assert "REVIEWAPP_URL" not in caught.value.message


def test_environment_configures_the_client(
    monkeypatch: pytest.MonkeyPatch, live_server: Any, admin_token: str, shop: Shop
) -> None:
    monkeypatch.setenv("REVIEWAPP_URL", live_server.url + "/")
    monkeypatch.setenv("REVIEWAPP_TOKEN", admin_token)
    client = reviewapp_client.get_client()
    assert client.url == live_server.url
    assert reviewapp_client.get_client() is client
    assert len(client.get("traces/")["traces"]) == 4
    assert client.get("/api/traces/") == client.get("traces/")  # both spellings of a path


def test_explicit_arguments_win_over_the_environment(
    monkeypatch: pytest.MonkeyPatch, live_server: Any, admin_token: str, shop: Shop
) -> None:
    monkeypatch.setenv("REVIEWAPP_URL", "http://127.0.0.1:1")
    monkeypatch.setenv("REVIEWAPP_TOKEN", "wrong")
    reviewapp_client.configure(url=live_server.url, token=admin_token)
    assert len(reviewapp_client.search_traces(return_type="list", include_spans=False)) == 4


def test_a_bad_token_is_unauthenticated(live_server: Any, shop: Shop) -> None:
    reviewapp_client.configure(url=live_server.url, token="not-a-token")
    with pytest.raises(ReviewAppError) as caught:
        reviewapp_client.search_traces()
    assert caught.value.error_code == "UNAUTHENTICATED"
    assert caught.value.status_code == 401
    assert caught.value.message  # the server's sentence, not a traceback
    assert "Traceback" not in str(caught.value)


def test_unknown_trace_is_resource_does_not_exist(admin_client: ApiClient, shop: Shop) -> None:
    with pytest.raises(ReviewAppError) as caught:
        reviewapp_client.get_trace("tr-nope")
    assert (caught.value.error_code, caught.value.status_code) == ("RESOURCE_DOES_NOT_EXIST", 404)
    assert "tr-nope" in caught.value.message


def test_an_unknown_endpoint_and_a_bad_body_keep_the_servers_codes(admin_client: ApiClient, shop: Shop) -> None:
    with pytest.raises(ReviewAppError) as caught:
        admin_client.get("no-such-thing/")
    assert (caught.value.error_code, caught.value.status_code) == ("RESOURCE_DOES_NOT_EXIST", 404)
    trace_id = shop.traces[0].trace_id
    with pytest.raises(ReviewAppError) as caught:
        admin_client.post(f"traces/{trace_id}/feedback", json={"value": True})  # no name
    assert (caught.value.error_code, caught.value.status_code) == ("INVALID_PARAMETER_VALUE", 400)
    assert "name" in caught.value.message
    assert shop.traces[0].assessments.count() == 0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a_server_that_is_not_there_is_endpoint_not_reachable() -> None:
    client = reviewapp_client.configure(url=f"http://127.0.0.1:{_free_port()}", token="t", timeout=5)
    with pytest.raises(ReviewAppError) as caught:
        client.get("traces/")
    assert caught.value.error_code == "ENDPOINT_NOT_REACHABLE"
    assert caught.value.status_code is None
    assert client.url in caught.value.message


def test_paginate_follows_next_page_token_over_every_page(admin_client: ApiClient, shop: Shop) -> None:
    pages: list[int] = []
    original = admin_client.get

    def counting_get(path: str, json: Any = None, params: Any = None) -> Any:
        page = original(path, json=json, params=params)
        pages.append(len(page["traces"]))
        return page

    admin_client.get = counting_get  # type: ignore[method-assign]  # counts the real requests
    infos = list(admin_client.paginate("traces/", "traces", params={"max_results": 3, "order_by": ["name ASC"]}))
    assert [info["trace_id"] for info in infos] == [t.trace_id for t in shop.traces]
    assert pages == [3, 1]


def test_get_text_returns_the_body(admin_client: ApiClient) -> None:
    text = admin_client.get_text("openapi.json")
    assert '"openapi"' in text and "/api/traces/" in text


def test_the_error_repr_names_code_and_status() -> None:
    error = ReviewAppError("RESOURCE_DOES_NOT_EXIST", "Trace 'x' does not exist.", 404)
    assert str(error) == "RESOURCE_DOES_NOT_EXIST: Trace 'x' does not exist."
    assert "404" in repr(error)
    assert isinstance(error, Exception) and _http.ReviewAppError is ReviewAppError


def test_importing_the_client_needs_neither_pandas_nor_mlflow() -> None:
    """The package depends on requests only: pandas comes in when a DataFrame is asked for."""
    client_dir = Path(reviewapp_client.__file__).resolve().parents[1]
    code = "import sys, reviewapp_client; print(sorted({'pandas', 'mlflow', 'django'} & set(sys.modules)))"
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=client_dir, capture_output=True, text=True, check=True, timeout=60
    )
    assert result.stdout.strip() == "[]"
