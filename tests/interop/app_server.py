"""Our app as a real server for the interop tests: a fresh SQLite database, an admin, an API token, gunicorn.

The app runs in the project's own virtualenv (``.venv``; ``APP_PYTHON`` overrides it), the tests in
the interop one, as an MLflow user's process and our server would be on two machines.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[2]
APP_PYTHON = os.environ.get("APP_PYTHON", str(ROOT / ".venv" / "bin" / "python"))
PORTS = range(18200, 18300)
ADMIN = "interop-admin"
PASSWORD = "interop-password-1"
REVIEWER = "interop-reviewer"  # an ordinary user: a reviewer, who sees only the sessions given to them
CREATE_REVIEWER = (
    "from django.contrib.auth.models import User; "
    f"User.objects.create_user({REVIEWER!r}, email='reviewer@example.com', password={PASSWORD!r})"
)


@dataclass(frozen=True)
class AppServer:
    url: str
    token: str  # an admin's API token, for exporters

    def login(self, username: str = ADMIN) -> requests.Session:
        """A browser-like session logged in through the login form (as the admin, or the reviewer)."""
        session = requests.Session()
        page = session.get(f"{self.url}/login/", timeout=10)
        csrf = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text)
        assert csrf, "no CSRF token on the login page"
        response = session.post(
            f"{self.url}/login/",
            data={"username": username, "password": PASSWORD, "csrfmiddlewaretoken": csrf.group(1)},
            headers={"Referer": f"{self.url}/login/"},
            timeout=10,
        )
        assert response.ok and "sessionid" in session.cookies, f"login failed: {response.status_code}"
        return session


def _free_port() -> int:
    for port in PORTS:
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free port in {PORTS.start}–{PORTS.stop - 1}")


def _manage(env: dict[str, str], *args: str) -> str:
    done = subprocess.run(
        [APP_PYTHON, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, f"manage.py {' '.join(args)} failed:\n{done.stderr[-2000:]}"
    return done.stdout


@contextmanager
def app_server(work_dir: Path) -> Iterator[AppServer]:
    """Migrate a new database in ``work_dir``, create an admin and a token, serve with gunicorn, stop it after."""
    env = {
        **os.environ,
        "DATABASE_URL": f"sqlite:///{work_dir / 'app.sqlite3'}",
        "DJANGO_SUPERUSER_PASSWORD": PASSWORD,
        "LOGIN_THROTTLE": "0",
    }
    env.pop("DJANGO_SETTINGS_MODULE", None)
    _manage(env, "migrate", "--noinput", "-v", "0")
    _manage(env, "createsuperuser", "--noinput", "--username", ADMIN, "--email", "interop@example.com")
    _manage(env, "shell", "-c", CREATE_REVIEWER)
    token = _manage(env, "create_api_token", ADMIN, "--name", "interop exporter").strip()
    port = _free_port()
    log = (work_dir / "gunicorn.log").open("w")
    command = ["-m", "gunicorn", "reviewapp.wsgi:application", "--bind", f"127.0.0.1:{port}", "--no-control-socket"]
    server = subprocess.Popen(
        [APP_PYTHON, *command, "--workers", "1", "--threads", "4", "--timeout", "60"],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if requests.get(f"{url}/login/", timeout=10).ok:
                    break
            except requests.RequestException:  # not listening yet, or a first answer slower than 10 s
                pass
            assert server.poll() is None, f"gunicorn exited:\n{(work_dir / 'gunicorn.log').read_text()[-2000:]}"
            assert time.monotonic() < deadline, "gunicorn did not answer within 60 s"
            time.sleep(0.2)
        yield AppServer(url=url, token=token)
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        log.close()
