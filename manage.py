#!/usr/bin/env python
import os
import sys


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "reviewapp.settings")
    try:
        from django.core.management import execute_from_command_line
    except ImportError:
        # Most often a fresh clone run with the system Python instead of the project's virtualenv.
        sys.stderr.write(
            f"error: Django is not installed for {sys.executable}; run .venv/bin/python manage.py ... "
            "(`make install` creates .venv) or activate it first: source .venv/bin/activate\n"
        )
        sys.exit(1)
    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
