"""`make run`'s server: ``manage.py runserver`` and a background ``manage.py db_worker``, as one command.

    python -m reviewapp.serve [HOST:PORT]

Both run as children in their own process groups (so their own children, such as runserver's
autoreloader, go with them). Ctrl+C or SIGTERM stops both; when either exits on its own, the other
is stopped too and the launcher exits with an error. Nothing is left running behind it.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import FrameType

ROOT = Path(__file__).resolve().parents[1]
GRACE_SECONDS = 10  # a worker finishes its current batch on SIGINT; past this it is killed (the batch rolls back)


def commands(address: str) -> dict[str, list[str]]:
    manage = [sys.executable, str(ROOT / "manage.py")]
    return {
        "web server": [*manage, "runserver", address],
        "background worker": [*manage, "db_worker", "--interval", "1"],
    }


def _signal_group(process: subprocess.Popen[bytes], signum: int) -> None:
    with contextlib.suppress(ProcessLookupError):  # the whole group is gone already
        os.killpg(process.pid, signum)


def stop(children: dict[str, subprocess.Popen[bytes]]) -> None:
    """SIGINT to every child's group, then SIGKILL to whatever is still there after the grace period."""
    for process in children.values():
        _signal_group(process, signal.SIGINT)
    deadline = time.monotonic() + GRACE_SECONDS
    for process in children.values():
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=max(0.0, deadline - time.monotonic()))
    for process in children.values():
        _signal_group(process, signal.SIGKILL)  # stragglers of the group (e.g. a reloader's child)
        process.wait()


def main(argv: list[str]) -> int:
    address = argv[0] if argv else "127.0.0.1:8000"
    stopping: list[int] = []

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stopping.append(signum)

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    children = {
        name: subprocess.Popen(command, cwd=ROOT, start_new_session=True) for name, command in commands(address).items()
    }
    for name, process in children.items():
        print(f"Started the {name} (pid {process.pid}).", flush=True)
    exited = ""
    while not stopping and not exited:
        exited = next((name for name, process in children.items() if process.poll() is not None), "")
        time.sleep(0.2)
    if exited:
        print(f"The {exited} exited; stopping the rest.", file=sys.stderr, flush=True)
    stop(children)
    return 1 if exited else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
