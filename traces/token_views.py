"""The "API tokens" page under the account menu: each signed-in user manages their own tokens."""

from __future__ import annotations

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods, require_POST

from .models import ApiToken
from .tokens import NAME_MAX_LENGTH, clean_token_name, create_api_token, revoke_api_token


class NewTokenForm(forms.Form):
    name = forms.CharField(
        max_length=NAME_MAX_LENGTH,
        help_text="What will use it, e.g. “production exporter” or “nightly eval script”.",
    )

    def clean_name(self) -> str:
        try:
            return clean_token_name(self.cleaned_data["name"])
        except ValueError as error:
            raise forms.ValidationError(str(error)) from None


@never_cache  # the response that shows a new secret must not be kept by any cache
@login_required
@require_http_methods(["GET", "POST"])
def token_list(request: HttpRequest) -> HttpResponse:
    form = NewTokenForm(request.POST or None)
    new_secret = ""
    status = 200
    if request.method == "POST":
        if form.is_valid():
            _token, new_secret = create_api_token(user=request.user, name=form.cleaned_data["name"])
            form = NewTokenForm()
        else:
            status = 400
    tokens = ApiToken.objects.filter(user=request.user).order_by("revoked_at", "-created_at", "-id")
    context = {"form": form, "tokens": tokens, "new_secret": new_secret}
    return render(request, "traces/api_tokens.html", context, status=status)


@login_required
@require_POST
def token_revoke(request: HttpRequest, pk: int) -> HttpResponse:
    token = get_object_or_404(ApiToken, pk=pk, user=request.user)  # someone else's token: 404
    revoke_api_token(token=token)
    messages.success(request, f"Token “{token.name}” is revoked; requests using it now get 401.")
    return redirect("api_tokens")
