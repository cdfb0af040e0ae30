"""Build labeled sessions with OUR app on a throw-away SQLite database and export them (JSONL + Parquet).

"Cardio": two reviewers, expectations and feedback, one tie. "Mixed shapes": real MLflow traces
from tests/data whose root spans differ (chat-completion dict outputs in one record, a plain string
in another), exported with feedback as tags. The command's stderr (warnings, notes) is kept beside
each file as <name>.<format>.stderr.
"""

from __future__ import annotations

import io
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

EXPORTS = {"export": ["--session", "Cardio"], "mixed": ["--session", "Mixed shapes", "--include-feedback"]}


def main(out_dir: Path) -> None:
    os.environ["DATABASE_URL"] = f"sqlite:///{out_dir / 'app.sqlite3'}"
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "reviewapp.settings")
    import django

    django.setup()
    from django.core.management import call_command

    from tests.evaluation.conftest import make_labeled_session, make_mixed_shapes_session

    call_command("migrate", verbosity=0)
    make_labeled_session()
    make_mixed_shapes_session()
    for name, args in EXPORTS.items():
        for fmt in ("jsonl", "parquet"):
            err = io.StringIO()
            path = out_dir / f"{name}.{fmt}"
            call_command("export_dataset", *args, "--format", fmt, "--output", str(path), stderr=err)
            (out_dir / f"{name}.{fmt}.stderr").write_text(err.getvalue())
            sys.stderr.write(err.getvalue())


if __name__ == "__main__":
    main(Path(sys.argv[1]))
