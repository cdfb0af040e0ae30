"""The registration services: the lifecycle, immutable versions, the active limit, names, rates and filters."""

from __future__ import annotations

import math
from typing import Any

import pytest
from django.contrib.auth.models import User

from evaluation.monitoring.models import (
    MAX_ACTIVE_PER_EXPERIMENT,
    MonitoringWork,
    RegisteredScorer,
    RegisteredScorerVersion,
)
from evaluation.monitoring.registrations import (
    RegistrationError,
    delete_scorer,
    find_registration,
    latest_version,
    register_scorer,
    start_scorer,
    stop_scorer,
    update_scorer,
)
from tests.factories import make_experiment, make_trace
from traces.models import Experiment, ExperimentKind

pytestmark = pytest.mark.django_db

SCORER = "response_length"  # evaluation.example_scorers, the default SCORER_MODULES


@pytest.fixture
def experiment() -> Experiment:
    return make_experiment("Production")


def register(experiment: Experiment, name: str = "length", **kwargs: Any) -> RegisteredScorer:
    return register_scorer(experiment=experiment, name=name, scorer_name=kwargs.pop("scorer_name", SCORER), **kwargs)


def history(registration: RegisteredScorer) -> list[tuple[int, str, str, float, str]]:
    rows = registration.versions.order_by("version")
    return [(v.version, v.action, v.status, v.sample_rate, v.filter_string) for v in rows]


def nothing_changed_by(call: Any, experiment: Experiment) -> str:
    """Run a refused change; assert no registration or version was written or altered; return the message."""
    before = (
        list(RegisteredScorer.objects.filter(experiment=experiment).values()),
        RegisteredScorerVersion.objects.count(),
    )
    with pytest.raises(RegistrationError) as caught:
        call()
    after = (
        list(RegisteredScorer.objects.filter(experiment=experiment).values()),
        RegisteredScorerVersion.objects.count(),
    )
    assert after == before
    message = str(caught.value)
    assert "\n" not in message
    return message


def test_the_lifecycle_registered_active_stopped_restarted_deleted(experiment: Experiment, admin_user: User) -> None:
    registration = register(experiment, by=admin_user)
    assert (registration.status, registration.sample_rate, registration.version) == ("registered", 0.0, 1)
    assert not registration.is_active
    registration = start_scorer(registration=registration, sample_rate=0.25, by=admin_user)
    assert (registration.status, registration.sample_rate, registration.version) == ("active", 0.25, 2)
    registration = update_scorer(registration=registration, filter_string="status = 'OK'", by=admin_user)
    registration = stop_scorer(registration=registration, by=admin_user)
    assert (registration.status, registration.sample_rate) == ("stopped", 0.0)
    assert registration.filter_string == "status = 'OK'"  # a stop keeps the filter for a restart
    registration = start_scorer(registration=registration, sample_rate=0.5, by=admin_user)
    registration = delete_scorer(registration=registration, by=admin_user)
    assert registration.status == "deleted"
    assert history(registration) == [
        (1, "register", "registered", 0.0, ""),
        (2, "start", "active", 0.25, ""),
        (3, "update", "active", 0.25, "status = 'OK'"),
        (4, "stop", "stopped", 0.0, "status = 'OK'"),
        (5, "restart", "active", 0.5, "status = 'OK'"),
        (6, "delete", "deleted", 0.0, "status = 'OK'"),
    ]
    assert {v.changed_by for v in registration.versions.all()} == {admin_user}
    assert latest_version(registration).version == 6


def test_registering_with_a_rate_starts_at_once(experiment: Experiment) -> None:
    registration = register(experiment, sample_rate=1.0, filter_string="  tags.env = 'prod'  ")
    assert registration.is_active and registration.filter_string == "tags.env = 'prod'"
    (version,) = registration.versions.all()
    assert version.action == "register" and version.status == "active" and version.scorer_digest.startswith("sha256:")


def test_versions_are_immutable_each_change_adds_one(experiment: Experiment) -> None:
    registration = register(experiment, sample_rate=0.1)
    first = registration.versions.get()
    frozen = (first.sample_rate, first.status, first.filter_string, first.created_at, first.action)
    registration = update_scorer(registration=registration, sample_rate=0.9, filter_string="status = 'ERROR'")
    first.refresh_from_db()
    assert (first.sample_rate, first.status, first.filter_string, first.created_at, first.action) == frozen
    assert registration.versions.count() == 2
    second = latest_version(registration)
    assert (second.sample_rate, second.filter_string) == (0.9, "status = 'ERROR'")
    assert second.created_at >= first.created_at and second.created_at == registration.updated_at


def test_updating_to_rate_zero_stops_and_above_zero_starts(experiment: Experiment) -> None:
    registration = register(experiment, sample_rate=0.5)
    registration = update_scorer(registration=registration, sample_rate=0.0)
    assert registration.status == "stopped" and not registration.is_active
    registration = update_scorer(registration=registration, sample_rate=0.3)
    assert registration.status == "active" and registration.sample_rate == 0.3


def test_an_update_needs_a_rate_or_a_filter(experiment: Experiment) -> None:
    registration = register(experiment, sample_rate=0.5, filter_string="status = 'OK'")
    assert "give a new sample rate" in nothing_changed_by(lambda: update_scorer(registration=registration), experiment)


def test_stopping_drops_queued_live_work(experiment: Experiment) -> None:
    registration = register(experiment, sample_rate=1.0)
    trace = make_trace(experiment=experiment)
    MonitoringWork.objects.create(trace=trace, registration_version=latest_version(registration))
    stop_scorer(registration=registration)
    assert not MonitoringWork.objects.exists()


def test_only_an_active_scorer_stops(experiment: Experiment) -> None:
    registration = register(experiment)
    assert "is not active" in nothing_changed_by(lambda: stop_scorer(registration=registration), experiment)


def test_starting_needs_a_rate_above_zero(experiment: Experiment) -> None:
    registration = register(experiment)
    message = nothing_changed_by(lambda: start_scorer(registration=registration, sample_rate=0.0), experiment)
    assert "above 0" in message


@pytest.mark.parametrize("rate", [-0.1, 1.01, 2, math.nan, math.inf, -math.inf, "0.5", True, None])
def test_rates_outside_zero_to_one_nan_and_non_numbers_are_refused(experiment: Experiment, rate: Any) -> None:
    message = nothing_changed_by(lambda: register(experiment, sample_rate=rate), experiment)
    assert "sample rate" in message and "0 to 1" in message
    registration = register(experiment, name="other")
    nothing_changed_by(lambda: start_scorer(registration=registration, sample_rate=rate), experiment)
    nothing_changed_by(lambda: update_scorer(registration=registration, sample_rate=rate), experiment)


@pytest.mark.parametrize("rate", [0, 0.0, 1, 1.0, 1e-9])
def test_rates_at_the_bounds_are_taken(experiment: Experiment, rate: float) -> None:
    assert register(experiment, sample_rate=rate).sample_rate == float(rate)


def test_a_bad_filter_string_is_refused_with_its_position(experiment: Experiment) -> None:
    message = nothing_changed_by(lambda: register(experiment, filter_string="status = "), experiment)
    assert message.startswith("bad filter string: position 9")
    registration = register(experiment, sample_rate=0.5)
    nothing_changed_by(lambda: update_scorer(registration=registration, filter_string="tags.x =="), experiment)
    stop_scorer(registration=registration)
    nothing_changed_by(
        lambda: start_scorer(registration=registration, sample_rate=0.5, filter_string="nope = 1"), experiment
    )


def test_unknown_scorer_is_refused_naming_the_known_ones(experiment: Experiment) -> None:
    message = nothing_changed_by(lambda: register(experiment, scorer_name="no_such_scorer"), experiment)
    assert "unknown scorer 'no_such_scorer'" in message and "response_length" in message


def test_a_judge_without_an_endpoint_is_refused(experiment: Experiment, settings: Any) -> None:
    settings.JUDGE_BASE_URL = ""
    settings.JUDGE_MODEL = ""
    message = nothing_changed_by(lambda: register(experiment, scorer_name="Correctness"), experiment)
    assert "not available" in message


@pytest.mark.parametrize("name", ["", " ", "-dash-first", "has space", "x" * 101, "semi;colon"])
def test_bad_names_are_refused(experiment: Experiment, name: str) -> None:
    assert "registration name" in nothing_changed_by(lambda: register(experiment, name=name), experiment)


def test_a_duplicate_name_is_refused_and_deleting_frees_it(experiment: Experiment) -> None:
    first = register(experiment, sample_rate=0.5)
    message = nothing_changed_by(lambda: register(experiment, scorer_name="has_retrieved_documents"), experiment)
    assert "already has a scorer registered as 'length'" in message
    delete_scorer(registration=first)
    again = register(experiment, scorer_name="has_retrieved_documents")
    assert again.pk != first.pk and find_registration(experiment, "length") == again
    first.refresh_from_db()
    assert first.status == "deleted" and first.versions.count() == 2  # its history stays


def test_the_same_name_in_another_experiment_is_fine(experiment: Experiment) -> None:
    register(experiment)
    assert register(make_experiment("Staging")).name == "length"


def test_a_deleted_registration_changes_no_more(experiment: Experiment) -> None:
    registration = register(experiment, sample_rate=0.5)
    delete_scorer(registration=registration)
    stale = RegisteredScorer.objects.get(pk=registration.pk)
    stale.status = "active"  # a page loaded before the delete
    message = nothing_changed_by(lambda: update_scorer(registration=stale, sample_rate=0.2), experiment)
    assert "was deleted" in message
    with pytest.raises(RegistrationError, match="has no scorer registered as 'length'"):
        find_registration(experiment, "length")


def test_a_labeling_copy_experiment_cannot_be_monitored() -> None:
    copies = Experiment.objects.create(name="Session copies", kind=ExperimentKind.LABELING)
    assert "labeling session" in nothing_changed_by(lambda: register(copies), copies)


def fill_active(experiment: Experiment) -> list[RegisteredScorer]:
    return [register(experiment, name=f"s{i:02d}", sample_rate=0.1) for i in range(MAX_ACTIVE_PER_EXPERIMENT)]


def test_at_most_twenty_active_scorers_per_experiment(experiment: Experiment) -> None:
    fill_active(experiment)
    message = nothing_changed_by(lambda: register(experiment, name="one_more", sample_rate=0.1), experiment)
    assert "already has 20 active scorers" in message and "stop one first" in message
    waiting = register(experiment, name="waiting")  # registering without a rate is fine
    nothing_changed_by(lambda: start_scorer(registration=waiting, sample_rate=0.5), experiment)
    nothing_changed_by(lambda: update_scorer(registration=waiting, sample_rate=0.5), experiment)
    assert register(make_experiment("Staging"), sample_rate=1.0).is_active  # the limit is per experiment


def test_the_limit_holds_through_a_stop_and_restart_cycle(experiment: Experiment) -> None:
    active = fill_active(experiment)
    updated = update_scorer(registration=active[0], sample_rate=0.9)  # an active one changing its rate is fine
    assert updated.sample_rate == 0.9
    stop_scorer(registration=active[0])
    waiting = start_scorer(registration=register(experiment, name="newcomer"), sample_rate=0.5)
    assert waiting.is_active  # the stop freed a place, the newcomer took it
    stopped = RegisteredScorer.objects.get(pk=active[0].pk)
    message = nothing_changed_by(lambda: start_scorer(registration=stopped, sample_rate=0.5), experiment)
    assert "20 active" in message
    delete_scorer(registration=waiting)  # deleting frees a place too
    assert start_scorer(registration=stopped, sample_rate=0.5).status == "active"
    assert RegisteredScorer.objects.filter(experiment=experiment).active().count() == MAX_ACTIVE_PER_EXPERIMENT


def test_a_scorer_gone_from_the_catalogue_can_still_be_stopped_not_started(
    experiment: Experiment, settings: Any
) -> None:
    registration = register(experiment, sample_rate=0.5)
    digest = latest_version(registration).scorer_digest
    settings.SCORER_MODULES = []  # its module was removed from the configuration
    registration = stop_scorer(registration=registration)
    assert registration.status == "stopped" and latest_version(registration).scorer_digest == digest
    message = nothing_changed_by(lambda: start_scorer(registration=registration, sample_rate=0.5), experiment)
    assert "unknown scorer" in message
    assert delete_scorer(registration=registration).status == "deleted"
