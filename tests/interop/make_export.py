"""Build a labeled session with OUR app on a throw-away SQLite database and export it (JSONL + Parquet)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))


def main(out_dir: Path) -> None:
    os.environ["DATABASE_URL"] = f"sqlite:///{out_dir / 'app.sqlite3'}"
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "reviewapp.settings")
    import django

    django.setup()
    from django.core.management import call_command

    from tests.evaluation.conftest import make_labeled_session

    call_command("migrate", verbosity=0)
    make_labeled_session()
    for fmt in ("jsonl", "parquet"):
        call_command(
            "export_dataset", "--session", "Cardio", "--format", fmt, "--output", str(out_dir / f"export.{fmt}")
        )


if __name__ == "__main__":
    main(Path(sys.argv[1]))
