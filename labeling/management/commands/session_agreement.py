"""``python manage.py session_agreement --session NAME [--output PATH|-]``: the agreement table as CSV.

One row per question (see ``labeling.agreement.CSV_COLUMNS``); empty cells are undefined statistics.
Bad input (unknown session, unwritable path) prints one ``error: …`` line and exits 1, leaving no file.
"""

from __future__ import annotations

import csv
import io
import os
import sys
import tempfile
from pathlib import Path
from typing import Any, NoReturn

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
            with os.fdopen(handle, "w", encoding="utf-8", newline="") as out:
                out.write(text)
            os.chmod(temp, 0o666 & ~_umask())  # mkstemp makes it private; give it a normal file's mode
            os.replace(temp, path)
        except OSError as exc:
            Path(temp).unlink(missing_ok=True)
            self._fail(f"cannot write {path}: {exc.strerror or exc}")

    def _fail(self, message: str) -> NoReturn:
        # One line and exit 1, not CommandError's "CommandError: …" nor a traceback.
        self.stderr.write(f"error: {message}")
        sys.exit(1)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
