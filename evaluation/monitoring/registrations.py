"""The lifecycle of a registered scorer: registered → active (rate > 0) → stopped (rate 0) → deleted.

Every change is a new immutable ``RegisteredScorerVersion`` naming who made it and when; the
registration's own fields mirror the latest. Changes to one experiment's registrations are
serialised by a lock on the experiment row, so the limit of ``MAX_ACTIVE_PER_EXPERIMENT`` active
scorers holds under concurrent requests. Every check runs before anything is written and fails
with ``RegistrationError`` (one line for a page or the command line).
"""

from __future__ import annotations

import math
import re

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.utils import timezone

from traces.models import Experiment, ExperimentKind
from traces.references import acting_user

from .models import (
    MAX_ACTIVE_PER_EXPERIMENT,
    MonitoringWork,
    RegisteredScorer,
    RegisteredScorerVersion,
    RegistrationAction,
    RegistrationStatus,
)

NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}")


class RegistrationError(ValueError):
    """The change cannot be made; the message says why in one line."""


class RegistrationExists(RegistrationError):
    """The experiment already has a live registration of that name."""


def check_rate(sample_rate: float) -> float:
    if isinstance(sample_rate, bool) or not isinstance(sample_rate, int | float) or math.isnan(sample_rate):
        raise RegistrationError("the sample rate must be a number from 0 to 1")
    if not 0.0 <= sample_rate <= 1.0:
        raise RegistrationError(f"the sample rate must be from 0 to 1 (got {sample_rate:g})")
    return float(sample_rate)


def check_filter(filter_string: str) -> str:
    from traces.search import FilterError, parse_filter

    text = (filter_string or "").strip()
    try:
        parse_filter(text)
    except FilterError as error:
        raise RegistrationError(f"bad filter string: {error}") from error
    return text


def scorer_digest(scorer_name: str) -> str:
    """The catalogue scorer's current digest (``RegistrationError`` when it is unknown or cannot run)."""
    from evaluation.scorers.catalogue import ScorerError, load_catalogue

    try:
        return load_catalogue().get(scorer_name).digest
    except ScorerError as error:
        raise RegistrationError(str(error)) from error


def _lock_experiment(experiment: Experiment) -> None:
    Experiment.objects.select_for_update().filter(pk=experiment.pk).first()


def _check_active_limit(experiment: Experiment, *, besides: RegisteredScorer | None = None) -> None:
    active = RegisteredScorer.objects.filter(experiment=experiment).active()
    if besides is not None:
        active = active.exclude(pk=besides.pk)
    if active.count() >= MAX_ACTIVE_PER_EXPERIMENT:
        raise RegistrationError(
            f"experiment {experiment.name!r} already has {MAX_ACTIVE_PER_EXPERIMENT} active scorers "
            "(the most it may have): stop one first"
        )


def _record(
    registration: RegisteredScorer, action: str, *, by: AbstractBaseUser | None, digest: str = ""
) -> RegisteredScorerVersion:
    from evaluation.judges.custom import pin_of

    return RegisteredScorerVersion.objects.create(
        pinned_judge=pin_of(registration.scorer_name) if registration.status != RegistrationStatus.DELETED else {},
        registration=registration,
        version=registration.version,
        action=action,
        status=registration.status,
        scorer_name=registration.scorer_name,
        scorer_digest=digest,
        sample_rate=registration.sample_rate,
        filter_string=registration.filter_string,
        changed_by=acting_user(by),
        created_at=registration.updated_at,
    )


def register_scorer(
    *,
    experiment: Experiment,
    name: str,
    scorer_name: str,
    sample_rate: float = 0.0,
    filter_string: str = "",
    by: AbstractBaseUser | None = None,
) -> RegisteredScorer:
    """Register a catalogue scorer on an experiment; with ``sample_rate`` > 0 it starts sampling at once."""
    name = (name or "").strip()
    if not NAME_PATTERN.fullmatch(name):
        raise RegistrationError(
            "a registration name is 1 to 100 letters, digits, _ . or - (starting with a letter or digit)"
        )
    if experiment.kind != ExperimentKind.TRACES:
        raise RegistrationError(f"experiment {experiment.name!r} holds a labeling session's copies, not live traffic")
    rate = check_rate(sample_rate)
    text = check_filter(filter_string)
    digest = scorer_digest(scorer_name)
    with transaction.atomic():
        _lock_experiment(experiment)
        if RegisteredScorer.objects.filter(experiment=experiment, name=name).live().exists():
            raise RegistrationExists(f"experiment {experiment.name!r} already has a scorer registered as {name!r}")
        if rate > 0:
            _check_active_limit(experiment)
        now = timezone.now()
        registration = RegisteredScorer.objects.create(
            experiment=experiment,
            name=name,
            scorer_name=scorer_name,
            sample_rate=rate,
            filter_string=text,
            status=RegistrationStatus.ACTIVE if rate > 0 else RegistrationStatus.REGISTERED,
            created_by=acting_user(by),
            created_at=now,
            updated_at=now,
        )
        _record(registration, RegistrationAction.REGISTER, by=by, digest=digest)
    return registration


def _digest_for_change(registration: RegisteredScorer, status: str) -> str:
    """The scorer's digest now; a change that samples nothing (a stop, an update to rate 0) still works
    when the scorer can no longer run (its module gone, a judge's endpoint unset), keeping the last digest."""
    if status == RegistrationStatus.DELETED:
        return ""
    try:
        return scorer_digest(registration.scorer_name)
    except RegistrationError:
        if status == RegistrationStatus.ACTIVE:
            raise
        last = registration.versions.filter(version=registration.version).values_list("scorer_digest", flat=True)
        return last.first() or ""


def _change(
    registration: RegisteredScorer,
    action: str,
    *,
    by: AbstractBaseUser | None,
    status: str,
    sample_rate: float,
    filter_string: str,
) -> RegisteredScorer:
    """Apply one change as a new version (locking the experiment, re-reading the registration)."""
    digest = _digest_for_change(registration, status)
    with transaction.atomic():
        _lock_experiment(registration.experiment)
        current = RegisteredScorer.objects.select_for_update().get(pk=registration.pk)
        if current.status == RegistrationStatus.DELETED:
            raise RegistrationError(f"scorer {current.name!r} was deleted")
        if status == RegistrationStatus.ACTIVE and sample_rate > 0 and not current.is_active:
            _check_active_limit(current.experiment, besides=current)
        current.status = status
        current.sample_rate = sample_rate
        current.filter_string = filter_string
        current.version += 1
        current.updated_at = timezone.now()
        current.save(update_fields=["status", "sample_rate", "filter_string", "version", "updated_at"])
        if status != RegistrationStatus.ACTIVE:
            # live work queued for earlier versions is dropped: a stopped scorer scores nothing more
            MonitoringWork.objects.filter(registration_version__registration=current, backfill__isnull=True).delete()
        _record(current, action, by=by, digest=digest)
    registration.refresh_from_db()
    return registration


def start_scorer(
    *,
    registration: RegisteredScorer,
    sample_rate: float,
    filter_string: str | None = None,
    by: AbstractBaseUser | None = None,
) -> RegisteredScorer:
    """Sample at ``sample_rate`` (> 0): a start, or a restart after a stop."""
    rate = check_rate(sample_rate)
    if rate <= 0:
        raise RegistrationError("start with a sample rate above 0 (a rate of 0 is a stop)")
    text = registration.filter_string if filter_string is None else check_filter(filter_string)
    stopped = registration.status == RegistrationStatus.STOPPED
    action = RegistrationAction.RESTART if stopped else RegistrationAction.START
    return _change(registration, action, by=by, status=RegistrationStatus.ACTIVE, sample_rate=rate, filter_string=text)


def update_scorer(
    *,
    registration: RegisteredScorer,
    sample_rate: float | None = None,
    filter_string: str | None = None,
    by: AbstractBaseUser | None = None,
) -> RegisteredScorer:
    """Change the rate and/or the filter. A rate of 0 stops an active scorer; a rate above 0 starts a stopped one."""
    if sample_rate is None and filter_string is None:
        raise RegistrationError("give a new sample rate or filter string")
    rate = registration.sample_rate if sample_rate is None else check_rate(sample_rate)
    text = registration.filter_string if filter_string is None else check_filter(filter_string)
    status = registration.status
    if sample_rate is not None:
        if rate > 0:
            status = RegistrationStatus.ACTIVE
        elif status == RegistrationStatus.ACTIVE:
            status = RegistrationStatus.STOPPED
    return _change(registration, RegistrationAction.UPDATE, by=by, status=status, sample_rate=rate, filter_string=text)


def stop_scorer(*, registration: RegisteredScorer, by: AbstractBaseUser | None = None) -> RegisteredScorer:
    """Sample nothing more (rate 0); its verdicts stay."""
    if registration.status != RegistrationStatus.ACTIVE:
        raise RegistrationError(f"scorer {registration.name!r} is not active")
    return _change(
        registration,
        RegistrationAction.STOP,
        by=by,
        status=RegistrationStatus.STOPPED,
        sample_rate=0.0,
        filter_string=registration.filter_string,
    )


def delete_scorer(*, registration: RegisteredScorer, by: AbstractBaseUser | None = None) -> RegisteredScorer:
    """Delete the registration (its name is free again); its verdicts and version history stay."""
    return _change(
        registration,
        RegistrationAction.DELETE,
        by=by,
        status=RegistrationStatus.DELETED,
        sample_rate=0.0,
        filter_string=registration.filter_string,
    )


def find_registration(experiment: Experiment, name: str) -> RegisteredScorer:
    found = RegisteredScorer.objects.filter(experiment=experiment, name=name).live().first()
    if found is None:
        raise RegistrationError(f"experiment {experiment.name!r} has no scorer registered as {name!r}")
    return found


def latest_version(registration: RegisteredScorer) -> RegisteredScorerVersion:
    return registration.versions.get(version=registration.version)
