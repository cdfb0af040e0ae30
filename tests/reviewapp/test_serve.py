"""`make run`'s launcher: one command starts the web server and a db_worker; one Ctrl+C stops both."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def alive(pid: int) -> bool:
    """Running (a zombie waiting for its parent counts as gone)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state != "Z"


def group_members(pgid: int) -> list[int]:
    members = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError):
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            members.append(int(stat.parent.name))
    return members


@pytest.fixture
def launched(tmp_path: Path):
    """The launcher on a fresh SQLite database, up and answering; yields (process, child pids)."""
    env = {**os.environ, "DATABASE_URL": f"sqlite:///{tmp_path / 'serve.sqlite3'}", "PYTHONUNBUFFERED": "1"}
    env.pop("TASKS_BACKEND", None)
    subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], cwd=ROOT, env=env, check=True, timeout=120)
    port = free_port()
    log = (tmp_path / "serve.log").open("w+")
    process = subprocess.Popen(
        [sys.executable, "-m", "reviewapp.serve", f"127.0.0.1:{port}"], cwd=ROOT, env=env, stdout=log, stderr=log
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/login/", timeout=2) as response:
                    assert response.status == 200
                    break
            except OSError:
                assert process.poll() is None, (tmp_path / "serve.log").read_text()
                assert time.monotonic() < deadline, "the web server did not answer within 60 s"
                time.sleep(0.3)
        while "background worker" not in (text := (tmp_path / "serve.log").read_text()):
            time.sleep(0.1)
        pids = [int(p) for p in re.findall(r"\(pid (\d+)\)", text)]
        assert len(pids) == 2
        yield process, pids
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        for pid in locals().get("pids", []):
            for member in group_members(pid):
                os.kill(member, signal.SIGKILL)


def test_one_sigint_stops_the_web_server_and_the_worker(launched) -> None:
    process, (web, worker) = launched
    assert alive(web) and alive(worker)
    assert len(group_members(web)) >= 1 and len(group_members(worker)) >= 1
    process.send_signal(signal.SIGINT)
    assert process.wait(timeout=30) == 0
    time.sleep(0.5)
    assert not alive(web) and not alive(worker)
    assert group_members(web) == [] and group_members(worker) == []  # the autoreloaders' children too


def test_when_the_worker_dies_the_web_server_is_stopped_too(launched) -> None:
    process, (web, worker) = launched
    os.killpg(worker, signal.SIGKILL)
    assert process.wait(timeout=30) == 1
    time.sleep(0.5)
    assert group_members(web) == [] and group_members(worker) == []
