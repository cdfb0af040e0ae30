"""The scorer catalogue page: what SCORER_MODULES offers, and modules that fail to import."""

from __future__ import annotations

from django.test import Client
from django.urls import reverse


def test_page_lists_the_example_scorers_with_what_they_take(admin_client: Client) -> None:
    response = admin_client.get(reverse("evaluation:scorer_list"))
    body = response.content.decode()
    assert response.status_code == 200
    for name in ("response_length", "has_retrieved_documents", "mentions_expected_fact", "latency_under_threshold"):
        assert f"<strong>{name}</strong>" in body
    assert "<code>expectations</code>" in body and "<code>trace</code>" in body
    assert "failed to import" not in body


def test_a_module_that_fails_to_import_is_shown_not_a_500(admin_client: Client, settings) -> None:
    settings.SCORER_MODULES = ["tests.evaluation.scorer_modules.broken", "evaluation.example_scorers", "no.such.module"]
    response = admin_client.get(reverse("evaluation:scorer_list"))
    body = response.content.decode()
    assert response.status_code == 200
    assert "Modules that failed to import" in body
    assert "<code>tests.evaluation.scorer_modules.broken</code>" in body and "<code>no.such.module</code>" in body
    assert "<strong>response_length</strong>" in body  # the good module's scorers are still offered


def test_no_scorers_configured_says_how_to_add_them(admin_client: Client, settings) -> None:
    settings.SCORER_MODULES = []
    assert b"Set <code>SCORER_MODULES</code>" in admin_client.get(reverse("evaluation:scorer_list")).content


def test_only_admins_see_the_scorers(client: Client, reviewer) -> None:
    client.force_login(reviewer)
    assert client.get(reverse("evaluation:scorer_list")).status_code == 404
