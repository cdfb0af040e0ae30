"""``python manage.py seed_demo``: demo traces, users, questions and a labeling session (idempotent)."""

from typing import Any

from django.core.management.base import BaseCommand

from labeling.demo import DEMO_EXPERIMENT, seed_demo


class Command(BaseCommand):
    help = "Load the demo: 64 generated MLflow traces, an admin and a reviewer, questions and a labeling session."

    def handle(self, *args: Any, **options: Any) -> None:
        result = seed_demo()
        self.stdout.write(
            f"Demo experiment “{DEMO_EXPERIMENT}”: {result.traces_created} traces imported, "
            f"{result.traces_updated} updated. Session “{result.session.name}”: {result.items_added} items added."
        )
        admin = result.admin_password or "(existing password)"
        reviewer = result.reviewer_password or "(existing password)"
        self.stdout.write(f"Log in at http://127.0.0.1:8000/ as admin / {admin} (staff) or reviewer / {reviewer}.")
