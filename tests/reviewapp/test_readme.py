"""A new user's first ten minutes: the README's commands work from a fresh clone and it stays self-contained."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()


BARE = re.compile(r"(?<![/\w])python manage\.py")


def test_readme_runs_manage_py_with_the_virtualenv() -> None:
    """A fresh clone has no Django on the system Python: commands say .venv/bin/python, or follow "activate"."""
    blocks = re.findall(r"```[a-z]*\n(.*?)```", README, flags=re.S)
    commands = [line for block in blocks for line in block.splitlines() if "manage.py" in line]
    assert len(commands) >= 5
    assert [line for line in commands if BARE.search(line)] == []
    prose = re.sub(r"```.*?```", "", README, flags=re.S).split("\n\n")
    for paragraph in prose:
        if BARE.search(paragraph):
            assert "source .venv/bin/activate" in paragraph, paragraph


def test_readme_references_nothing_outside_the_repository() -> None:
    assert "../" not in README and "/work/" not in README
    assert not re.search(r"shared (folder|directory)|DESIGN\.md", README)
    for target in re.findall(r"\]\(([^)]+)\)", README):
        if not target.startswith(("http://", "https://", "#")):
            assert (ROOT / target).exists(), f"README links to {target}, which is not in the repository"


def test_every_environment_setting_is_documented_with_its_default() -> None:
    sources = [
        ROOT / "reviewapp" / "settings.py",
        ROOT / "labeling" / "management" / "commands" / "seed_demo.py",
        ROOT / "traces" / "ingest" / "mlflow_server.py",
    ]
    pattern = r"(?:env_bool|env_int|env_list|os\.environ\.get)\(\s*\"([A-Z_]+)\""
    names = {name for source in sources for name in re.findall(pattern, source.read_text())}
    names |= {"DEMO_ADMIN_PASSWORD", "DEMO_REVIEWER_PASSWORD"}
    config = README.split("## Configuration", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in config.splitlines() if line.startswith("| `")]
    for name in sorted(names):
        row = next((line for line in rows if f"`{name}`" in line.split("|")[1]), None)
        assert row is not None, f"{name} is read from the environment but not in the README's configuration table"
        assert row.split("|")[2].strip(), f"{name} has no default in the README"


def test_manage_py_without_the_virtualenv_says_what_to_run() -> None:
    # -S: no site-packages, as with a system Python that has no Django.
    result = subprocess.run(
        [sys.executable, "-S", "manage.py", "check"], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: Django is not installed")
    assert ".venv/bin/python manage.py" in lines[0] and "source .venv/bin/activate" in lines[0]
