"""Run many ``export_dataset --format parquet`` processes under CPU load and count their exit codes.

Issue 9 item 1: about 1 run in 10 aborted at interpreter exit ("terminate called without an active
exception", exit 134) once the file was complete, more often the busier the machine. This script
reproduces those conditions: it builds one labeled session on a throw-away SQLite database, starts
busy loops beside the exports (two by default), runs the real command RUNS times one after another
and prints a table of exit codes. It exits 1 if any run did not exit 0 or wrote an unreadable file.

    .venv/bin/python tests/stress/export_aborts.py [--runs 200] [--busy 2] [--format parquet]

Not a unit test (it takes minutes): run it by hand after touching the export path.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BUSY_LOOP = "while True: pass"


def prepare(directory: Path) -> dict[str, str]:
    """Migrate a fresh SQLite database and label a session on it, in a child process (as a user would)."""
    env = {**os.environ, "DATABASE_URL": f"sqlite:///{directory / 'app.sqlite3'}"}
    script = (
        "import django, os; os.environ.setdefault('DJANGO_SETTINGS_MODULE', 'reviewapp.settings'); django.setup();"
        "from django.core.management import call_command; call_command('migrate', verbosity=0);"
        "from tests.evaluation.conftest import make_labeled_session, make_mixed_shapes_session;"
        "make_labeled_session(); make_mixed_shapes_session()"
    )
    subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env, check=True)
    return env


def export_once(env: dict[str, str], fmt: str, session: str, path: Path) -> tuple[int, str]:
    path.unlink(missing_ok=True)
    command = [sys.executable, "manage.py", "export_dataset", "--session", session, "--format", fmt]
    done = subprocess.run([*command, "--output", str(path)], cwd=ROOT, env=env, capture_output=True, text=True)
    return done.returncode, done.stderr


def describe(code: int) -> str:
    """subprocess reports death by a signal as -N; a shell shows 128+N (SIGABRT: 134)."""
    if code >= 0:
        return str(code)
    return f"{128 - code} ({signal.Signals(-code).name})"


def readable(path: Path, fmt: str) -> bool:
    if fmt != "parquet":
        return path.exists() and path.stat().st_size > 0
    import pyarrow.parquet as pq

    try:
        return pq.read_metadata(path).num_rows > 0
    except Exception:  # any failure to read it means the file is broken
        return False


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--busy", type=int, default=2, help="busy loops to run beside the exports")
    parser.add_argument("--format", default="parquet", choices=["parquet", "jsonl", "csv"])
    parser.add_argument("--session", action="append", help="sessions to export (default: both built here)")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # so the busy loops are stopped too
    sessions = args.session or ["Cardio", "Mixed shapes"]
    codes: Counter[tuple[str, int]] = Counter()
    aborts: list[str] = []
    unreadable = 0
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        env = prepare(directory)
        busy = [subprocess.Popen([sys.executable, "-c", BUSY_LOOP]) for _ in range(args.busy)]
        started = time.perf_counter()
        try:
            for run in range(args.runs):
                session = sessions[run % len(sessions)]
                path = directory / f"export.{args.format}"
                code, stderr = export_once(env, args.format, session, path)
                codes[(session, code)] += 1
                if code != 0:
                    last = stderr.strip().splitlines()[-1:]
                    aborts.append(f"run {run + 1} ({session}): exit {describe(code)}: {' '.join(last)}")
                elif not readable(path, args.format):
                    unreadable += 1
                if (run + 1) % 20 == 0:
                    print(f"… {run + 1} runs, {sum(n for (_, c), n in codes.items() if c)} not 0", flush=True)
        finally:
            for process in busy:
                process.kill()
                process.wait()
        seconds = time.perf_counter() - started
    print(f"\n### export_dataset --format {args.format}: {args.runs} runs beside {args.busy} busy loops\n")
    print("| session | exit code | runs |")
    print("|---|---|---|")
    for (session, code), count in sorted(codes.items()):
        print(f"| {session} | {describe(code)} | {count} |")
    failed = sum(n for (_, c), n in codes.items() if c)
    print(f"\n{args.runs} runs in {seconds:.0f} s: {failed} not 0, {unreadable} unreadable files")
    for line in aborts:
        print(line)
    return 1 if failed or unreadable else 0


if __name__ == "__main__":
    sys.exit(main())
