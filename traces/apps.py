from typing import Any

from django.apps import AppConfig
from django.db.backends.signals import connection_created


def _unicode_lower(value: Any) -> Any:
    return value.lower() if isinstance(value, str) else value


def add_sqlite_functions(sender: Any, connection: Any, **kwargs: Any) -> None:
    """SQLite's LIKE and LOWER fold ASCII only: give it a Unicode lower() so ILIKE in filter
    strings ignores the case of 'É' as PostgreSQL does."""
    if connection.vendor == "sqlite":
        connection.connection.create_function("reviewapp_lower", 1, _unicode_lower, deterministic=True)


class TracesConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "traces"
    verbose_name = "Traces"

    def ready(self) -> None:
        connection_created.connect(add_sqlite_functions, dispatch_uid="traces.sqlite_functions")
