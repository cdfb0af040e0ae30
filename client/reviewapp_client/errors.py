"""The one exception the client raises: every non-2xx answer, and every server it cannot reach."""

from __future__ import annotations


class ReviewAppError(Exception):
    """An error from the review app (or on the way to it).

    ``error_code`` is the server's MLflow-style code (``RESOURCE_DOES_NOT_EXIST``, ``UNAUTHENTICATED``, …),
    or one of the client's own: ``ENDPOINT_NOT_REACHABLE`` (no answer), ``NOT_CONFIGURED`` (no URL or
    token), ``INVALID_RESPONSE`` (an answer that is not the API's JSON). ``status_code`` is the HTTP
    status, or None when there was no answer.
    """

    def __init__(self, error_code: str, message: str, status_code: int | None = None) -> None:
        super().__init__(f"{error_code}: {message}")
        self.error_code = error_code
        self.message = message
        self.status_code = status_code

    def __repr__(self) -> str:
        return f"ReviewAppError({self.error_code!r}, {self.message!r}, status_code={self.status_code!r})"
