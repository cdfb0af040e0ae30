"""Login throttling (django-axes) hooks: the client's address behind configured proxies, and the lockout page."""

from __future__ import annotations

import ipaddress
from typing import Any

from axes.helpers import get_cool_off
from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse


def client_ip_address(request: HttpRequest) -> str | None:
    """REMOTE_ADDR, or behind ``PROXY_COUNT`` proxies the address the outermost of them saw.

    Each proxy appends the address it received the request from to X-Forwarded-For, so with N proxies the
    N-th entry from the right is the one the first proxy wrote; anything left of it came from the client
    and may be forged. A header shorter than N, or no address there, means the request did not come through
    every proxy: use REMOTE_ADDR.
    """
    remote_addr = request.META.get("REMOTE_ADDR")
    proxies: int = getattr(settings, "PROXY_COUNT", 0)
    if not proxies:
        return remote_addr
    forwarded = [part.strip() for part in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",")]
    forwarded = [part for part in forwarded if part]
    if len(forwarded) < proxies:
        return remote_addr
    candidate = forwarded[-proxies]
    try:
        return str(ipaddress.ip_address(candidate))
    except ValueError:
        return remote_addr


def lockout_response(request: HttpRequest, original_response: HttpResponse | None, credentials: Any) -> HttpResponse:
    """429 with the sign-in card saying why and for how long, on /login/ and /django-admin/login/ alike."""
    cool_off = get_cool_off(request)
    minutes = max(1, round(cool_off.total_seconds() / 60)) if cool_off else None
    response = TemplateResponse(
        request,
        "registration/locked_out.html",
        {"cooloff_minutes": minutes, "failure_limit": settings.AXES_FAILURE_LIMIT},
        status=429,
    )
    if cool_off:
        response["Retry-After"] = str(int(cool_off.total_seconds()))
    return response.render()
