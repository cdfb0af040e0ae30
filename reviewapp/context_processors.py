from typing import Any

from django.http import HttpRequest

from traces.access import can_explore_traces


def navigation(request: HttpRequest) -> dict[str, Any]:
    """What the top bar may offer this user (views still check access themselves)."""
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {}
    return {"nav_can_explore": can_explore_traces(user), "nav_is_admin": user.is_staff}
