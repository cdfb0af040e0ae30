from django.conf import settings
from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.urls import include, path

from reviewapp.api import api
from traces import otlp_views, token_views
from traces.access import can_explore_traces


@login_required
def home(request: HttpRequest) -> HttpResponse:
    """Admins and leads land on the traces; reviewers on their sessions."""
    return redirect("traces:list" if can_explore_traces(request.user) else "labeling:my_sessions")


urlpatterns = [
    path("", home, name="home"),
    path("login/", auth_views.LoginView.as_view(redirect_authenticated_user=True), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("account/tokens/", token_views.token_list, name="api_tokens"),
    path("account/tokens/<int:pk>/revoke/", token_views.token_revoke, name="api_token_revoke"),
    path("traces/", include("traces.urls")),
    # OTLP/HTTP's standard path, as OpenTelemetry exporters and MLflow's server use it.
    path("v1/traces", otlp_views.export_traces, name="otlp_traces"),
    path("api/", api.urls),
    path("", include("labeling.urls")),
    path("datasets/", include("evaluation.urls")),
]
if settings.DJANGO_ADMIN:
    # Off in production unless DJANGO_ADMIN=1: it edits raw rows past every service rule.
    urlpatterns.append(path("django-admin/", admin.site.urls))
