"""Every page carries a Content-Security-Policy that also pins <base> and form targets."""

from __future__ import annotations

from django.test import Client


def test_csp_restricts_base_uri_and_form_targets(client: Client) -> None:
    policy = client.get("/login/")["Content-Security-Policy"]
    directives = dict(part.strip().split(" ", 1) for part in policy.split(";") if part.strip())
    assert directives["base-uri"] == "'none'"  # an injected <base href> cannot re-point relative URLs
    assert directives["form-action"] == "'self'"  # an injected <form> cannot post answers elsewhere
    assert directives["default-src"] == "'self'" and directives["frame-ancestors"] == "'none'"
    assert directives["object-src"] == "'none'"
