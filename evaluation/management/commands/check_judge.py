"""``python manage.py check_judge``: one tiny request to the judge endpoint, as the judges send it."""

from __future__ import annotations

import sys
from typing import Any

from django.core.management.base import BaseCommand

from evaluation.judges.endpoint import check_connection, current


class Command(BaseCommand):
    help = (
        "Send one tiny judge request to JUDGE_BASE_URL with JUDGE_MODEL (as MLflow's judges send it, with our "
        "deadline and retries) and print the latency and the model that answered; exit 1 with one error: line "
        "naming the problem (not configured, connection refused, HTTP status and the server's message, timeout, "
        "an answer that cannot be read)."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        check = check_connection()
        if not check.ok:
            self.stderr.write(f"error: {check.error}")
            sys.exit(1)
        endpoint = current()
        self.stdout.write(
            f"ok: {check.model} at {endpoint.shown_base_url} answered in {check.seconds * 1000:.0f} ms "
            f"(model {endpoint.model_uri})"
        )
