"""The tags filter: user text is a tag key and value, never an ORM lookup (``x__regex=(`` is just a key)."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse

from labeling import services
from tests.factories import make_trace
from traces.models import Trace

pytestmark = pytest.mark.django_db

ODD_TAGS = {'we"ird': "1", "0": "zero", "a.b": "dot", "x__regex": "(", "$": "dollar", "é": "accent"}


@pytest.fixture
def tagged() -> dict[str, Trace]:
    return {
        "prod": make_trace(name="prod", tags={"env": "prod", "team": "a"}),
        "dev": make_trace(name="dev", tags={"env": "dev", "n": 1}),
        "odd": make_trace(name="odd", tags=ODD_TAGS),
        "none": make_trace(name="none", tags={}),
    }


def names(queryset) -> set[str]:
    return set(queryset.values_list("name", flat=True))


def test_key_and_value(tagged) -> None:
    assert names(Trace.objects.with_tag("env", "prod")) == {"prod"}
    assert names(Trace.objects.with_tag("env")) == {"prod", "dev"}
    assert names(Trace.objects.with_tag("env", "staging")) == set()
    assert names(Trace.objects.with_tag("n", "1")) == set()  # tag values are strings; 1 is not "1"


@pytest.mark.parametrize(("key", "value"), list(ODD_TAGS.items()))
def test_any_key_is_a_key(tagged, key: str, value: str) -> None:
    assert names(Trace.objects.with_tag(key, value)) == {"odd"}
    assert names(Trace.objects.with_tag(key)) == {"odd"}
    assert names(Trace.objects.with_tag(key, value + "!")) == set()


@pytest.mark.parametrize("raw", ["x__regex=(", "x__iregex=[z-a]", "x__isnull=maybe", "env__in=prod", "env__gt="])
def test_lookup_names_from_the_filter_are_plain_keys(client: Client, admin_user: User, tagged, raw: str) -> None:
    client.force_login(admin_user)
    response = client.get(reverse("traces:list"), {"tags": raw})
    assert response.status_code == 200
    assert ">prod</a>" not in response.content.decode()


def test_a_key_that_looks_like_a_lookup_finds_its_trace(client: Client, admin_user: User, tagged) -> None:
    client.force_login(admin_user)
    body = client.get(reverse("traces:list"), {"tags": "x__regex=("}).content.decode()
    assert ">odd</a>" in body and ">prod</a>" not in body


@pytest.mark.parametrize("raw", ["x__regex=(", "x__iregex=[z-a]", "x__isnull=maybe"])
def test_add_traces_with_a_lookup_shaped_tag_adds_nothing(client: Client, admin_user: User, tagged, raw) -> None:
    session = services.create_labeling_session(name="S")
    client.force_login(admin_user)
    url = reverse("labeling:session_add_traces", args=[session.pk])
    preview = client.get(url, {"tags": raw})
    assert preview.status_code == 200
    response = client.post(url, {"tags": raw})
    assert response.status_code in (200, 302, 400)
    assert session.items.count() == (1 if raw == "x__regex=(" else 0)
