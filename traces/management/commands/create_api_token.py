"""``python manage.py create_api_token USER [--name NAME]``: make a personal API token, printed once."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser

from traces.tokens import create_api_token


class Command(BaseCommand):
    help = (
        "Create an API token for USER and print it once (only its hash is stored). The token acts with "
        "USER's role: send it as 'Authorization: Bearer <token>'."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("username", metavar="USER", help="the username the token acts as")
        parser.add_argument("--name", default="command line", help="what will use the token (default: %(default)s)")

    def handle(self, *args: Any, **options: Any) -> None:
        username = options["username"]
        if "\x00" in username:
            raise CommandError("a username cannot contain NUL characters")
        user = get_user_model().objects.filter(username=username).first()
        if user is None:
            raise CommandError(f"no user named {username!r}; create one on the People page first")
        if not user.is_active:
            raise CommandError(f"user {username!r} is deactivated")
        try:
            _, secret = create_api_token(user=user, name=options["name"])
        except ValueError as error:
            raise CommandError(str(error)) from None
        self.stdout.write(secret)
