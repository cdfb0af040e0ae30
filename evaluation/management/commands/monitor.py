"""``python manage.py monitor register|start|update|stop|delete|list``: an experiment's registered scorers.

Sample rates are fractions from 0 to 1 here (as ``mlflow.genai``'s ``ScorerSamplingConfig``); the pages
show them as percentages. Each change is a new version of the registration (``list --history`` shows
them). ``--by USERNAME`` records who made the change (else it is recorded as the command line's).
A refused change exits 1 with one line and changes nothing.

    python manage.py monitor register --experiment Production --name short --scorer response_length --sample-rate 0.2
    python manage.py monitor update --experiment Production --name short --filter "tags.env = 'prod'"
    python manage.py monitor list --experiment Production --history
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser

from evaluation.monitoring import registrations
from evaluation.monitoring.models import RegisteredScorer
from evaluation.monitoring.registrations import RegistrationError
from traces.models import Experiment, ExperimentKind

FILTER_WIDTH = 60


def _rate(text: str | None) -> float | None:
    """``--sample-rate`` as a number (the service checks it is from 0 to 1, NaN refused)."""
    if text is None:
        return None
    try:
        return float(text)
    except ValueError:
        raise CommandError(f"the sample rate must be a number from 0 to 1 (got {text!r})") from None


def _experiment(name: str) -> Experiment:
    experiment = Experiment.objects.filter(name=name, kind=ExperimentKind.TRACES).first()
    if experiment is None:
        raise CommandError(f"no experiment named {name!r}")
    return experiment


def _user(username: str | None) -> Any:
    if not username:
        return None
    user = get_user_model().objects.filter(username=username).first()
    if user is None:
        raise CommandError(f"no user named {username!r} (--by)")
    return user


def _short(text: str, width: int = FILTER_WIDTH) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"


def _table(rows: list[tuple[str, ...]]) -> list[str]:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return ["  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip() for row in rows]


class Command(BaseCommand):
    help = "Register, start, update, stop, delete or list an experiment's registered scorers (rates from 0 to 1)."

    def add_arguments(self, parser: CommandParser) -> None:
        verbs = parser.add_subparsers(dest="verb", required=True, metavar="register|start|update|stop|delete|list")

        def verb(name: str, help_text: str, *, named: bool = True) -> CommandParser:
            sub = verbs.add_parser(name, help=help_text, description=help_text)
            sub.add_argument("--experiment", required=True, help="the experiment's name")
            if named:
                sub.add_argument("--name", required=True, help="the registration's name")
                sub.add_argument("--by", metavar="USERNAME", help="who makes the change (recorded in its version)")
            return sub

        register = verb("register", "Register a catalogue scorer (code scorer or judge) under a name.")
        register.add_argument("--scorer", required=True, help="the catalogue's scorer or judge name")
        register.add_argument("--sample-rate", default="0", help="0 to 1 (default 0: not sampling)")
        register.add_argument("--filter", default="", help="an MLflow filter string the traces must match")
        start = verb("start", "Start sampling (a restart after a stop).")
        start.add_argument("--sample-rate", required=True, help="above 0, up to 1")
        start.add_argument("--filter", default=None, help="a new filter string (default: unchanged)")
        update = verb("update", "Change the sample rate and/or the filter (a rate of 0 stops it).")
        update.add_argument("--sample-rate", default=None, help="0 to 1")
        update.add_argument("--filter", default=None, help='a new filter string ("" for none)')
        verb("stop", "Stop sampling (its verdicts stay).")
        verb("delete", "Delete the registration (its name is free again; verdicts and history stay).")
        listing = verb("list", "The experiment's registered scorers.", named=False)
        listing.add_argument("--history", action="store_true", help="each registration's versions too")

    def handle(self, *args: Any, **options: Any) -> None:
        experiment = _experiment(options["experiment"])
        if options["verb"] == "list":
            self._list(experiment, history=options["history"])
            return
        by = _user(options.get("by"))
        options["sample_rate"] = _rate(options.get("sample_rate"))
        try:
            registration = self._change(experiment, options, by)
        except RegistrationError as error:
            raise CommandError(str(error)) from None
        self.stdout.write(
            f"{options['verb']}: {registration.name} ({registration.scorer_name}) is {registration.status}, "
            f"rate {registration.sample_rate:g}, version {registration.version}"
        )

    def _change(self, experiment: Experiment, options: dict[str, Any], by: Any) -> RegisteredScorer:
        verb, name = options["verb"], options["name"]
        if verb == "register":
            return registrations.register_scorer(
                experiment=experiment,
                name=name,
                scorer_name=options["scorer"],
                sample_rate=options["sample_rate"],
                filter_string=options["filter"],
                by=by,
            )
        registration = registrations.find_registration(experiment, name)
        if verb == "start":
            return registrations.start_scorer(
                registration=registration, sample_rate=options["sample_rate"], filter_string=options["filter"], by=by
            )
        if verb == "update":
            return registrations.update_scorer(
                registration=registration, sample_rate=options["sample_rate"], filter_string=options["filter"], by=by
            )
        if verb == "stop":
            return registrations.stop_scorer(registration=registration, by=by)
        return registrations.delete_scorer(registration=registration, by=by)

    def _list(self, experiment: Experiment, *, history: bool) -> None:
        found = list(RegisteredScorer.objects.filter(experiment=experiment).live().order_by("name", "id"))
        if not found:
            self.stdout.write(f"experiment {experiment.name!r} has no registered scorers")
            return
        rows = [("name", "scorer", "status", "rate", "filter", "version")]
        rows += [
            (r.name, r.scorer_name, r.status, f"{r.sample_rate:g}", _short(r.filter_string) or "-", f"v{r.version}")
            for r in found
        ]
        for line in _table(rows):
            self.stdout.write(line)
        if history:
            self._history(found)

    def _history(self, found: list[RegisteredScorer]) -> None:
        from evaluation.monitoring.models import RegisteredScorerVersion

        versions = RegisteredScorerVersion.objects.filter(registration__in=found).select_related("changed_by")
        by_registration: dict[int, list[RegisteredScorerVersion]] = {}
        for version in versions.order_by("registration_id", "version"):
            by_registration.setdefault(version.registration_id, []).append(version)
        for registration in found:
            self.stdout.write("")
            self.stdout.write(f"{registration.name}:")
            rows = [("version", "action", "status", "rate", "filter", "digest", "by", "when")]
            rows += [
                (
                    f"v{v.version}",
                    v.action,
                    v.status,
                    f"{v.sample_rate:g}",
                    _short(v.filter_string) or "-",
                    v.scorer_digest[:15] or "-",
                    v.changed_by.get_username() if v.changed_by else "-",
                    v.created_at.strftime("%Y-%m-%d %H:%M:%S %Z"),
                )
                for v in by_registration.get(registration.pk, [])
            ]
            for line in _table(rows):
                self.stdout.write("  " + line)
