"""``python manage.py seed_demo``: demo traces, users, questions and a labeling session (idempotent)."""

import os
import sys
from typing import Any

from django.contrib.auth.models import User
from django.core.management.base import BaseCommand
from django.db import DEFAULT_DB_ALIAS, connections
from django.db.migrations.executor import MigrationExecutor

from labeling.demo import DEMO_EXPERIMENT, DemoLogin, DemoSetupError, seed_demo


def server_url() -> str:
    """Where `make run` serves: the HOST and PORT it passes to runserver (127.0.0.1:8000 by default)."""
    host = os.environ.get("HOST", "").strip() or "127.0.0.1"
    port = os.environ.get("PORT", "").strip() or "8000"
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"  # an IPv6 address
    return f"http://{host}:{port}/"


def describe(login: DemoLogin) -> str:
    """``admin / PASSWORD (admin)`` when it was set now and may be shown, else where the password is."""
    notes = ["admin"] if login.staff else []
    if login.source == "existing":
        return f"{login.username} ({', '.join([*notes, 'existing password'])})"
    if login.source == "environment":
        return f"{login.username} ({', '.join([*notes, f'password from {login.env_name}'])})"
    return f"{login.username} / {login.password}" + (f" ({notes[0]})" if notes else "")


class Command(BaseCommand):
    help = (
        "Load the demo: 64 generated MLflow traces, an admin and a reviewer, questions and a labeling session, "
        "evaluation runs, and a week of monitored production traffic. "
        "With DEBUG on the logins are admin/admin and reviewer/reviewer; with DEBUG off the passwords come "
        "from DEMO_ADMIN_PASSWORD / DEMO_REVIEWER_PASSWORD (checked by the password validators) or are "
        "generated and printed once."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        executor = MigrationExecutor(connections[DEFAULT_DB_ALIAS])
        if executor.migration_plan(executor.loader.graph.leaf_nodes()):
            self.stderr.write("error: the database is not set up yet: run .venv/bin/python manage.py migrate first")
            sys.exit(1)
        try:
            result = seed_demo()
        except DemoSetupError as exc:
            self.stderr.write(f"error: {exc}")
            sys.exit(1)
        self.stdout.write(
            f"Demo experiment “{DEMO_EXPERIMENT}”: {result.traces_created} traces imported, "
            f"{result.traces_updated} updated. Session “{result.session.name}”: {result.items_added} items added."
        )
        self._seed_evaluation(result)
        self._seed_monitoring(result)
        for login in result.logins:
            if login.replaced_demo_password:
                self.stdout.write(f"{login.username} still had the demo password; DEBUG is off, so it was replaced.")
        self.stdout.write(f"Log in at {server_url()} as " + " or ".join(describe(login) for login in result.logins))
        if any(login.source == "generated" for login in result.logins):
            self.stdout.write(
                "Generated passwords (DEBUG is off) are shown only this once: store them now, "
                "or set DEMO_ADMIN_PASSWORD / DEMO_REVIEWER_PASSWORD before seeding."
            )

    def _seed_evaluation(self, result: Any) -> None:
        """Two app versions run and scored on the demo dataset; a misconfigured scorer list skips it, with a line."""
        from evaluation.demo import DEMO_DATASET, seed_evaluation_demo
        from evaluation.runs import RunInputError

        admin = User.objects.filter(username__in=[login.username for login in result.logins if login.staff]).first()
        try:
            demo = seed_evaluation_demo(started_by=admin)
        except RunInputError as exc:
            self.stderr.write(f"warning: the evaluation demo was skipped: {exc}")
            return
        runs = " and ".join(f"“{run.name}” ({run.status})" for run in demo.runs)
        self.stdout.write(f"Dataset “{DEMO_DATASET}”: {demo.dataset.records.count()} records; runs {runs}.")

    def _seed_monitoring(self, result: Any) -> None:
        """Two registered scorers and a week of their verdicts on "production" traffic (new hours only)."""
        from evaluation.monitoring.demo import seed_monitoring_demo
        from evaluation.monitoring.registrations import RegistrationError

        admin = User.objects.filter(username__in=[login.username for login in result.logins if login.staff]).first()
        try:
            demo = seed_monitoring_demo(by=admin)
        except RegistrationError as exc:
            self.stderr.write(f"warning: the monitoring demo was skipped: {exc}")
            return
        names = " and ".join(f"“{r.name}”" for r in demo.registrations)
        self.stdout.write(
            f"Experiment “{demo.experiment.name}”: scorers {names}, {demo.traces_created} traces with verdicts added."
        )
