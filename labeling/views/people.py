"""People and roles (admins only): who is an admin, who reviews and leads which sessions."""

from __future__ import annotations

from django import forms
from django.contrib import messages
from django.contrib.auth.models import User
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Count
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_http_methods, require_POST

from .. import services
from .access import admin_required

ROLE_CHOICES = [("reviewer", "Reviewer"), ("admin", "Admin")]


class NewPersonForm(forms.Form):
    # The same rule as Django's User.username (createsuperuser, the admin): letters, digits and @ . + - _ only.
    username = forms.CharField(
        max_length=150,
        validators=[User.username_validator],
        help_text="Letters, digits and @ . + - _ only (no spaces).",
    )
    email = forms.EmailField(required=False)
    password = forms.CharField(widget=forms.PasswordInput, help_text="At least 8 characters, not too common.")
    role = forms.ChoiceField(choices=ROLE_CHOICES)

    def clean_username(self) -> str:
        username = self.cleaned_data["username"].strip()
        if User.objects.filter(username__iexact=username).exists():
            raise ValidationError("Someone already has this username.")
        return username

    def clean(self) -> dict:
        data = super().clean() or {}
        if data.get("password"):
            try:
                validate_password(data["password"], User(username=data.get("username", "")))
            except ValidationError as exc:
                self.add_error("password", exc)
        return data


@admin_required
@require_http_methods(["GET", "POST"])
def user_list(request: HttpRequest) -> HttpResponse:
    form = NewPersonForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        with transaction.atomic():
            data = form.cleaned_data
            user = User.objects.create_user(data["username"], data["email"], data["password"])
            services.set_user_role(user=user, role=data["role"], changed_by=request.user)
        messages.success(request, f"Added {user.username} as {data['role']}.")
        return redirect("labeling:user_list")
    people = (
        User.objects.filter(is_active=True)
        .annotate(reviews=Count("labeling_sessions", distinct=True), leads=Count("led_sessions", distinct=True))
        .order_by("-is_staff", "username")
    )
    status = 400 if request.method == "POST" else 200
    return render(request, "labeling/manage/people.html", {"people": people, "form": form}, status=status)


@admin_required
@require_POST
def user_role(request: HttpRequest, pk: int) -> HttpResponse:
    person = get_object_or_404(User, pk=pk, is_active=True)
    try:
        services.set_user_role(user=person, role=request.POST.get("role", ""), changed_by=request.user)
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
        return redirect("labeling:user_list")
    messages.success(request, f"{person.username} is now {'an admin' if person.is_staff else 'a reviewer'}.")
    return redirect("labeling:user_list")
