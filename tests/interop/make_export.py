"""Build labeled sessions with OUR app on a throw-away SQLite database and export them (JSONL + Parquet).

Traces too (``export_traces``): the real MLflow samples of tests/data in one experiment, and the
"Cardio" session's copies, as traces.<format> and session_traces.<format>, with traces.scores.json:
each trace's values for the scorers in trace_scorers.py, called here directly the way our app calls
scorers (root span inputs/outputs and an ``mlflow.entities.Trace``), keyed by ``row_key``.

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
    export_traces(out_dir)
    for name, args in EXPORTS.items():
        for fmt in ("jsonl", "parquet"):
            err = io.StringIO()
            path = out_dir / f"{name}.{fmt}"
            call_command("export_dataset", *args, "--format", fmt, "--output", str(path), stderr=err)
            (out_dir / f"{name}.{fmt}.stderr").write_text(err.getvalue())
            sys.stderr.write(err.getvalue())


def export_traces(out_dir: Path) -> None:
    import json

    from django.core.management import call_command
    from mlflow.entities import Trace

    from tests.conftest import DATA_DIR
    from tests.interop.trace_scorers import SCORERS, row_key
    from traces.ingest import read_trace_file, store_traces
    from traces.models import Experiment

    samples = Experiment.objects.create(name="Samples")
    for path in sorted(DATA_DIR.glob("*.json")):
        store_traces(read_trace_file(path), experiment=samples)
    for name, args in {"traces": ["--experiment", "Samples"], "session_traces": ["--session", "Cardio"]}.items():
        for fmt in ("jsonl", "parquet"):
            err = io.StringIO()
            path = out_dir / f"{name}.{fmt}"
            call_command("export_traces", *args, "--format", fmt, "--output", str(path), stderr=err, stdout=err)
            (out_dir / f"{name}.{fmt}.stderr").write_text(err.getvalue())
            sys.stderr.write(err.getvalue())
    scores = {}
    for name in ("traces", "session_traces"):
        for line in (out_dir / f"{name}.jsonl").read_text().splitlines():
            row = json.loads(line)
            trace = Trace.from_json(row["trace"])
            inputs, outputs = row["request"], row["response"]
            values = {s.name: s.run(inputs=inputs, outputs=outputs, trace=trace) for s in SCORERS}
            key = row_key(inputs, outputs, row["spans"])
            assert scores.setdefault(key, values) == values, f"two traces alike but scored apart: {key[:200]}"
    (out_dir / "traces.scores.json").write_text(json.dumps(scores))


if __name__ == "__main__":
    main(Path(sys.argv[1]))
