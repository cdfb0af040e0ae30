"""Staff pages for label schemas and labeling sessions (being written)."""

from django.http import HttpRequest, HttpResponse


def _todo(request: HttpRequest, *args: object, **kwargs: object) -> HttpResponse:
    return HttpResponse("todo")


schema_list = schema_create = schema_edit = session_list = session_create = _todo
session_dashboard = session_edit = session_add_traces = _todo
