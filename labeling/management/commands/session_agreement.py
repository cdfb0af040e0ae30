"""``python manage.py session_agreement --session NAME [--output PATH]``: the agreement table as CSV."""

from __future__ import annotations

import csv
import io
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from labeling.agreement import CSV_COLUMNS, agreement_rows, session_agreement
from labeling.models import LabelingSession


class Command(BaseCommand):
    help = "Write each question's agreement (percent, Cohen, Fleiss, Krippendorff, judge vs humans) as CSV."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--session", required=True, metavar="NAME", help="the labeling session's name")
        parser.add_argument("--output", default="-", metavar="PATH", help="CSV file to write; - for stdout (default)")

    def handle(self, *args: Any, **options: Any) -> None:
        session = LabelingSession.objects.filter(name=options["session"]).first()
        if session is None:
            self._fail(f"no labeling session named “{options['session']}”")
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=CSV_COLUMNS)
        writer.writeheader()
        writer.writerows(agreement_rows(session_agreement(session)))
        if options["output"] == "-":
            self.stdout.write(buffer.getvalue(), ending="")
            return
        self._write_atomically(Path(options["output"]), buffer.getvalue())

    def _write_atomically(self, path: Path, text: str) -> None:
        """Write a temp file beside the target and rename it, so a failure leaves no partial file."""
        try:
            handle, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        except OSError as exc:
            self._fail(f"cannot write {path}: {exc.strerror or exc}")
        try:
            with os.fdopen(handle, "w", newline="") as out:
                out.write(text)
            os.replace(temp, path)
        except OSError as exc:
            Path(temp).unlink(missing_ok=True)
            self._fail(f"cannot write {path}: {exc.strerror or exc}")

    def _fail(self, message: str) -> None:
        self.stderr.write(f"error: {message}")
        sys.exit(1)
