"""For tests that start the app in child processes (workers, commands, servers) on the test database."""

from __future__ import annotations

from django.db import connection


def child_database_url() -> str:
    """A ``DATABASE_URL`` naming the database this test run uses (PostgreSQL or SQLite)."""
    settings = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{settings['NAME']}"
    port = f":{settings['PORT']}" if settings.get("PORT") else ""
    return f"postgres://{settings['USER']}@{settings['HOST'] or '127.0.0.1'}{port}/{settings['NAME']}"
