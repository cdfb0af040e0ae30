from django.http import HttpRequest, HttpResponse


def trace_list(request: HttpRequest) -> HttpResponse:
    return HttpResponse("todo")


def trace_detail(request: HttpRequest, trace_id: str) -> HttpResponse:
    return HttpResponse("todo")
