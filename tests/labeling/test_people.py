"""People page: adding a person follows Django's own username and password rules."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse

PASSWORD = "a-long-Passphrase-42"


@pytest.mark.parametrize("username", ["a b<c>", "dr lee", "<script>alert(1)</script>", "lee/../x", "dr;lee", "x" * 151])
def test_people_form_refuses_usernames_django_would_refuse(client: Client, admin_user: User, username: str) -> None:
    client.force_login(admin_user)
    before = User.objects.count()
    response = client.post(
        reverse("labeling:user_list"), {"username": username, "password": PASSWORD, "role": "reviewer"}
    )
    body = response.content.decode()
    assert response.status_code == 400
    assert "Enter a valid username" in body or "at most 150 characters" in body
    assert "<script>alert(1)</script>" not in body and 'value="a b<c>"' not in body
    assert User.objects.count() == before


@pytest.mark.parametrize("username", ["dr.lee", "lee+cardio@clinic", "ann_b-2", "Zoë"])
def test_people_form_accepts_valid_usernames(client: Client, admin_user: User, username: str) -> None:
    client.force_login(admin_user)
    response = client.post(
        reverse("labeling:user_list"), {"username": username, "password": PASSWORD, "role": "reviewer"}
    )
    assert response.status_code == 302
    assert User.objects.get(username=username).check_password(PASSWORD)


def test_people_form_says_which_characters_are_allowed(client: Client, admin_user: User) -> None:
    client.force_login(admin_user)
    assert "Letters, digits and @ . + - _ only" in client.get(reverse("labeling:user_list")).content.decode()
