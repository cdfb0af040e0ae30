"""``manage.py db_worker``: django-tasks-db's worker, plus the monitoring scheduler thread (periodic jobs).

Same options as django-tasks-db's command. Unless ``--batch``, each worker also runs
``evaluation.monitoring.schedule.Scheduler``, which enqueues due periodic jobs (the monitoring queue
sweep, archival); with several workers each job still runs once per period.
"""

from __future__ import annotations

import os
from typing import Any

from django.conf import settings
from django.utils.autoreload import DJANGO_AUTORELOAD_ENV
from django_tasks_db.management.commands.db_worker import Command as WorkerCommand

from evaluation.monitoring.schedule import Scheduler


class Command(WorkerCommand):
    help = "Run a database background worker (tasks, live monitoring scoring, and the periodic jobs)"

    def handle(self, *args: Any, **options: Any) -> None:
        reloading_parent = options.get("reload") and os.environ.get(DJANGO_AUTORELOAD_ENV) != "true"
        scheduler = None
        if not options.get("batch") and not reloading_parent:
            scheduler = Scheduler(settings.MONITORING_TICK_SECONDS)
            scheduler.start()
        try:
            super().handle(*args, **options)
        finally:
            if scheduler is not None:
                scheduler.stop()
