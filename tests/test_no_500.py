"""No user input gets a 500: every page, form and HTMX endpoint, fuzzed as admin, lead, reviewer and anonymous.

The endpoints come from the URL resolver, so a new one is covered without editing this file:

1. A small world is built (questions of every kind, a session with a lead, reviewers, answers that
   disagree, a flag, a dataset).
2. Each person crawls the site from every URL that needs no argument, collecting every same-site
   URL the pages name (``href``, ``action``, ``hx-*``, ``data-*-url``) and every form on them.
   Every pattern of the resolver must be reached (or the test says which is not).
3. Every URL is then requested with each of its parameters (form fields, the query parameters of
   links to it, and the names its view module reads from ``request.GET``/``request.POST``) set
   to NUL, over-long, wrong-typed and lookup-injection values, GET and POST, full page and HTMX;
   path arguments get the same treatment. Each request runs in a rolled-back savepoint so every
   request sees the same world.
4. Every form is then submitted for real with tricky text in each field (line breaks, markup,
   quotes, 20,000 characters), and every page is opened again by everyone: what a form stores
   must not break the pages, exports and downloads that show it later.
5. Hypothesis throws generated text at random forms and fields.

Any 5xx is collected with the exception it raised and reported together.
"""

from __future__ import annotations

import inspect
import os
import re
import sys
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from html.parser import HTMLParser
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import pytest
from django.contrib.auth.models import User
from django.core.signals import got_request_exception
from django.db import transaction
from django.http import HttpResponse
from django.test import Client
from django.urls import NoReverseMatch, URLPattern, URLResolver, get_resolver, resolve, reverse
from django.urls.exceptions import Resolver404
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from evaluation import services as dataset_services
from evaluation.runs import execute_run, start_evaluation_run
from labeling import claims, services, submissions
from labeling.models import JobState, LabelSchema, TraceAddJob
from tests.factories import make_assessment, make_trace
from traces.models import Experiment
from traces.tokens import create_api_token

pytestmark = pytest.mark.django_db

PEOPLE = ["admin", "lead", "reviewer", "anonymous"]
# The JSON API is token-authenticated (the crawl logs in with cookies) and fuzzed in tests/api/.
SKIPPED_PREFIXES = ("/django-admin/", "/static/", "/api/")
LOGOUT = "/logout/"
LOGIN = "/login/"
LONG = "x" * 20_000
BAD_VALUES: list[Any] = [
    "a\x00b",  # PostgreSQL refuses NUL in any text it is given
    LONG,
    "",
    "abc",
    "-1",
    "1.5",
    "99999999999999999999",  # beyond a 64-bit integer
    "9" * 5000,  # beyond what int() parses (4,300 digits)
    "NaN",
    "x__regex=(",  # lookup injection
    "x__isnull=maybe",
    "line\r\nbreak",
    ["a", "b"],  # a parameter sent twice where one is expected
]
HTMX_VALUES = ["\x00", LONG, "abc"]  # also sent as HTMX requests, which render partials
REFUSED_VALUES = ["\x00", "x__regex=("]
BAD_PATH_VALUES = ["\x00", "x" * 3000, "99999999999999999999", "9" * 5000, "0", "x__regex=(", "a b"]
READS_PARAMETER = re.compile(r"""request\.(GET|POST)(?:\.get|\.getlist|\.__getitem__)?[\[(]\s*["']([^"']+)["']""")


# ---------------------------------------------------------------- the world


@dataclass
class World:
    people: dict[str, User | None]
    site: Site | None = None  # what a crawl found, kept by the hypothesis test across its examples
    client: Client | None = None


@pytest.fixture
def world(admin_user: User, reviewer: User, import_sample: Any) -> World:
    lead = User.objects.create_user("lead", password="pw-123456")
    second = User.objects.create_user("second", password="pw-123456")
    kinds: list[dict[str, Any]] = [
        {"input_type": "pass_fail"},
        {"input_type": "categorical", "options": ["good", "bad"]},
        {"input_type": "categorical_list", "options": ["x", "y", "z"]},
        {"input_type": "text", "max_length": 200},
        {"input_type": "text_list", "max_count": 3},
        {"input_type": "numeric", "min_value": 0, "max_value": 10},
    ]
    schemas = [
        services.save_label_schema(
            schema=LabelSchema(
                name=f"q_{config['input_type']}",
                type="feedback",
                title=f"Question {config['input_type']}?",
                enable_comment=True,
                **config,
            )
        )
        for config in kinds
    ]
    schemas.append(
        services.save_label_schema(
            schema=LabelSchema(
                name="expected", type="expectation", title="Expected answer", input_type="text", enable_comment=True
            )
        )
    )
    session = services.create_labeling_session(name="Fuzzed", schemas=schemas, reviewers=[reviewer, second])
    services.set_session_leads(session=session, leads=[lead])
    services.update_review_settings(
        session=session, reviewers_per_item=2, lease_minutes=30, blind=False, assignment_mode="pool", status="active"
    )
    traces = [make_trace(tags={"env": "prod", "team": "a"}) for _ in range(2)]
    traces.append(import_sample("chat_model_tool_calls_openai_format.json"))  # a real MLflow trace
    make_assessment(traces[0])
    services.add_traces_to_session(session=session, trace_ids=[t.trace_id for t in traces])
    first, second_item, _ = session.items.order_by("position")
    for person, verdict in ((reviewer, "pass"), (second, "fail")):
        submissions.submit_review(
            item=first,
            reviewer=person,
            raw_answers={"q_pass_fail": verdict, "q_categorical": "good", "expected": f"{verdict} answer"},
            raw_comments={"q_pass_fail": "because"},
        )
    claims.claim_item(item=second_item, reviewer=reviewer)
    claims.flag_item(item=second_item, reviewer=reviewer, note="The trace looks cut off.")
    dataset_services.save_session_labels(sessions=[session], dataset_name="Fuzzed dataset", created_by=admin_user)
    other = services.create_labeling_session(name="Other", schemas=schemas[:1], reviewers=[second])
    services.add_traces_to_session(session=other, trace_ids=[traces[0].trace_id])
    # Background adds on the dashboard: one waiting for a worker (polled), one failed (with Retry).
    services.start_trace_add(session=other, source_ids=[traces[1].pk], requested_by=admin_user, enqueue=False)
    failed = services.start_trace_add(
        session=session, source_ids=[t.pk for t in traces], requested_by=None, enqueue=False
    )
    TraceAddJob.objects.filter(pk=failed.pk).update(state=JobState.FAILED, error="RuntimeError: disk full")
    # Evaluation runs: one finished over the session (results, filter, add to session), one queued (polled, cancel).
    finished = start_evaluation_run(
        scorer_names=["response_length"], session="Fuzzed", name="Fuzzed run", started_by=lead, enqueue=False
    )
    execute_run(finished.pk)
    start_evaluation_run(scorer_names=["response_length"], session="Fuzzed", name="Queued run", enqueue=False)
    # A custom judge with two examples (its edit page, the judges list and the agreement page's picker).
    from evaluation.judge_services import save_custom_judge
    from tests.evaluation.judges.custom_fixtures import scale_definition

    save_custom_judge(definition=scale_definition(), changed_by=admin_user)
    # Monitoring: an experiment with a registered scorer and a failure today (dashboard, send failures).
    seed_monitoring(admin_user)
    # Monitoring: a registered scorer with a running backfill (polled, Cancel) and a cancelled one (Resume).
    from evaluation.monitoring.backfill import start_backfill
    from evaluation.monitoring.models import BackfillJob, BackfillStatus
    from evaluation.monitoring.registrations import register_scorer

    watched = traces[0].experiment
    register_scorer(
        experiment=watched, name="length", scorer_name="response_length", sample_rate=0.5, filter_string="status = 'OK'"
    )
    for status in (BackfillStatus.RUNNING, BackfillStatus.CANCELLED):
        job = start_backfill(experiment=watched, scorers=[("length", None)], by=admin_user, enqueue=False)
        BackfillJob.objects.filter(pk=job.pk).update(status=status)
    # Registered scorers watching the traces' experiment: one active with a filter (above), one stopped.
    from evaluation.monitoring.registrations import stop_scorer

    stop_scorer(
        registration=register_scorer(
            experiment=watched, name="docs", scorer_name="has_retrieved_documents", sample_rate=1.0, by=admin_user
        )
    )
    for person in (admin_user, reviewer, lead):
        create_api_token(user=person, name=f"{person.username}'s script")
    return World(people={"admin": admin_user, "lead": lead, "reviewer": reviewer, "anonymous": None})


def seed_monitoring(admin_user: User) -> None:
    from django.utils import timezone

    from tests.evaluation.monitoring.dashboard_data import failure_with_feedback, register

    experiment = Experiment.objects.create(name="Production traffic")
    registration = register(experiment, "fast_enough")
    failure_with_feedback(registration, timezone.now() - timedelta(hours=1), rationale="2500 ms (threshold 2000 ms).")


def client_for(user: User | None) -> Client:
    client = Client(raise_request_exception=False)
    if user is not None:
        client.force_login(user)
    return client


# ---------------------------------------------------------------- discovering endpoints


def url_patterns() -> list[tuple[str, str]]:
    """(route, name) of every pattern, e.g. ``("/review/<int:session_pk>/", "labeling:review_start")``."""
    found: list[tuple[str, str]] = []

    def walk(patterns: list[Any], prefix: str, namespace: str) -> None:
        for p in patterns:
            route = prefix + str(p.pattern)
            if isinstance(p, URLResolver):
                walk(p.url_patterns, route, f"{namespace}{p.namespace}:" if p.namespace else namespace)
            elif isinstance(p, URLPattern):
                found.append((route, f"{namespace}{p.name or p.lookup_str}"))

    walk(get_resolver().url_patterns, "/", "")
    return [(route, name) for route, name in found if not route.startswith(SKIPPED_PREFIXES)]


def pattern_name(path: str) -> str | None:
    try:
        match = resolve(path)
    except Resolver404:
        return None
    return match.view_name


@dataclass
class Form:
    method: str
    action: str
    fields: list[tuple[str, str]] = field(default_factory=list)  # the values a person would send


class PageParser(HTMLParser):
    """The forms of a page (with the values a browser would submit) and the same-site URLs it names."""

    def __init__(self, page_url: str) -> None:
        super().__init__(convert_charrefs=True)
        self.page_url = page_url
        self.forms: list[Form] = []
        self.urls: list[str] = []
        self.htmx_urls: list[str] = []  # what htmx requests: these views render partials too
        self._form: Form | None = None
        self._select: str | None = None
        self._select_value: str | None = None
        self._textarea: str | None = None
        self._text = ""

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        for key, value in a.items():
            if key in ("href", "action", "hx-get", "hx-post") or (key.startswith("data-") and key.endswith("url")):
                self.urls.append(value)
            if key in ("hx-get", "hx-post"):
                self.htmx_urls.append(value)
        if tag == "form":
            method = a.get("method", "get").lower()
            self._form = Form(method=method, action=a.get("action") or self.page_url)
            self.forms.append(self._form)
        if tag == "option" and self._select is not None:
            if self._select_value is None or "selected" in a:
                self._select_value = a.get("value", "")
            return
        form, name = self._form, a.get("name")
        if form is None or not name or "disabled" in a:
            return
        if tag == "input":
            kind = a.get("type", "text")
            if kind in ("checkbox", "radio") and "checked" not in a:
                return
            if kind not in ("submit", "button", "image", "file"):
                form.fields.append((name, a.get("value", "on" if kind == "checkbox" else "")))
        elif tag == "select":
            self._select, self._select_value = name, None
        elif tag == "textarea":
            self._textarea, self._text = name, ""

    def handle_data(self, data: str) -> None:
        if self._textarea is not None:
            self._text += data

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self._form = None
        elif tag == "select" and self._select is not None and self._form is not None:
            self._form.fields.append((self._select, self._select_value or ""))
            self._select = None
        elif tag == "textarea" and self._textarea is not None and self._form is not None:
            self._form.fields.append((self._textarea, self._text))
            self._textarea = None


def same_site(url: str, base: str) -> str | None:
    parts = urlsplit(url)
    if parts.scheme or parts.netloc or url.startswith(("#", "javascript:", "mailto:")):
        return None
    path = parts.path or urlsplit(base).path
    return f"{path}?{parts.query}" if parts.query else path


@dataclass
class Site:
    """What the crawl found: URLs by path, the query names seen for each path, the forms by action path."""

    paths: dict[str, set[str]] = field(default_factory=dict)  # path -> query parameter names
    forms: dict[tuple[str, str], list[Form]] = field(default_factory=dict)  # (method, path) -> distinct forms
    htmx_paths: set[str] = field(default_factory=set)

    def add_url(self, url: str) -> None:
        parts = urlsplit(url)
        names = self.paths.setdefault(parts.path, set())
        names.update(name for name, _ in parse_qsl(parts.query, keep_blank_values=True))


def crawl(
    client: Client, site: Site, seeds: list[str], per_pattern: int = 3, report: tuple[Recorder, str] | None = None
) -> None:
    """Open each path found (at most ``per_pattern`` per URL pattern), following links and redirects;
    with ``report``, every 5xx is recorded as that person's failure."""
    queue, seen, opened = list(seeds), set(), Counter()
    while queue:
        path = urlsplit(queue.pop(0)).path
        name = pattern_name(path)
        if path in seen or name is None or path.startswith(SKIPPED_PREFIXES) or path == LOGOUT:
            continue
        seen.add(path)
        site.add_url(path)
        if opened[name] >= per_pattern:
            continue
        opened[name] += 1
        if report:
            report[0].last_error = ""
        response = within_rollback(lambda p=path: client.get(p))
        if report and response.status_code >= 500:
            report[0].failures.append(Failure(report[1], f"GET {path!r}", response.status_code, report[0].last_error))
        location = same_site(response.get("Location", ""), path) if response.status_code in (301, 302) else None
        if location:
            site.add_url(location)
            queue.append(location)
        if response.status_code != 200 or "html" not in response.get("Content-Type", ""):
            continue
        parser = PageParser(path)
        parser.feed(response.content.decode())
        for form in parser.forms:
            action = same_site(form.action, path)
            if action is None:
                continue
            form.action = urlsplit(action).path
            site.add_url(action)
            known = site.forms.setdefault((form.method, form.action), [])
            if {n for n, _ in form.fields} not in [{n for n, _ in f.fields} for f in known]:
                known.append(form)
            if form.method == "get":
                site.paths[form.action].update(name for name, _ in form.fields)
            queue.append(form.action)
        site.htmx_paths.update(urlsplit(t).path for u in parser.htmx_urls if (t := same_site(u, path)))
        for found in parser.urls:
            target = same_site(found, path)
            if target is not None:
                site.add_url(target)
                queue.append(target)


def parameters_read_by_view(path: str) -> set[str]:
    """The names a view's module reads from request.GET / request.POST (literal names only)."""
    view = resolve(path).func
    while hasattr(view, "__wrapped__"):
        view = view.__wrapped__
    module = inspect.getmodule(view)
    source = inspect.getsource(module) if module else ""
    return {name for _, name in READS_PARAMETER.findall(source)}


# ---------------------------------------------------------------- requests and failures


@dataclass
class Failure:
    person: str
    request: str
    status: int
    error: str

    def __str__(self) -> str:
        return f"{self.person}: {self.request} -> {self.status} {self.error}"


class Recorder:
    def __init__(self) -> None:
        self.last_error = ""
        self.failures: list[Failure] = []

    def __call__(self, sender: Any, request: Any = None, **kwargs: Any) -> None:
        exc = sys.exc_info()[1]
        self.last_error = f"{type(exc).__name__}: {str(exc)[:200]}" if exc else "(no exception)"


@pytest.fixture
def recorder() -> Iterator[Recorder]:
    recorder = Recorder()
    got_request_exception.connect(recorder)
    yield recorder
    got_request_exception.disconnect(recorder)


def within_rollback(call: Any) -> Any:
    """Run one request in a savepoint that is rolled back: every request sees the same world."""
    with transaction.atomic():
        response = call()
        transaction.set_rollback(True)
    return response


def send(
    client: Client,
    recorder: Recorder,
    person: str,
    method: str,
    path: str,
    data: list[tuple[str, Any]],
    htmx: bool = False,
    keep: bool = False,
) -> HttpResponse:
    pairs = [(name, v) for name, value in data for v in (value if isinstance(value, list) else [value])]
    headers = {"HTTP_HX_REQUEST": "true"} if htmx else {}
    recorder.last_error = ""
    run = (lambda call: call()) if keep else within_rollback
    if method == "get":
        query = urlencode(pairs)
        response = run(lambda: client.get(path, QUERY_STRING=query, **headers))
    else:
        body = urlencode(pairs)
        response = run(lambda: client.post(path, body, content_type="application/x-www-form-urlencoded", **headers))
    if response.status_code >= 500:
        shown = repr([(n, v[:40] + "…" if len(v) > 40 else v) for n, v in pairs if n != "csrfmiddlewaretoken"])[:400]
        described = f"{method.upper()} {path!r} {shown}{' (htmx)' if htmx else ''}"
        recorder.failures.append(Failure(person, described, response.status_code, recorder.last_error))
    return response


def with_value(fields: list[tuple[str, str]], name: str, value: Any) -> list[tuple[str, Any]]:
    """The form as a person would send it, with one parameter replaced (or added)."""
    kept = [(n, v) for n, v in fields if n != name]
    return [(name, value), *kept]


def discover(world: World) -> Site:
    """Crawl as an admin (who reaches every manage page) and a reviewer (who holds leases)."""
    site = Site()
    seeds = ["/"] + [route for route, _ in url_patterns() if "<" not in route]
    for person in ("admin", "reviewer"):
        crawl(client_for(world.people[person]), site, seeds)
    return site


def endpoints(site: Site) -> dict[str, str]:
    """One concrete path per pattern name: the one whose forms have the most fields."""
    best: dict[str, tuple[int, str]] = {}
    for path in sorted(site.paths):
        name = pattern_name(path)
        if not name or path == LOGOUT:
            continue
        size = sum(len(f.fields) for method in ("get", "post") for f in site.forms.get((method, path), []))
        if name not in best or size > best[name][0]:
            best[name] = (size, path)
    return {name: path for name, (_, path) in best.items()}


def path_variants(path: str) -> Iterator[str]:
    """The same URL with each path argument replaced by a bad value its converter accepts."""
    match = resolve(path)
    for key in match.kwargs:
        for bad in BAD_PATH_VALUES:
            try:
                yield reverse(match.view_name, kwargs={**match.kwargs, key: bad})
            except NoReverseMatch:
                continue  # e.g. letters where the route takes <int:…>


# ---------------------------------------------------------------- the tests


def test_every_pattern_is_reached(world: World) -> None:
    reached = set(endpoints(discover(world)))
    missing = [f"{name} ({route})" for route, name in url_patterns() if name not in reached and route != LOGOUT]
    assert not missing, f"The crawl reaches no URL of these patterns; link them from a page or seed them: {missing}"


def is_refusal(response: HttpResponse) -> bool:
    to_login = response.status_code == 302 and response["Location"].startswith(LOGIN)
    return response.status_code in (403, 404) or to_login


def fuzz_endpoint(client: Client, recorder: Recorder, person: str, site: Site, path: str) -> int:
    """Every parameter of one endpoint set to every bad value, GET and POST; the number of requests sent."""
    sent = 0
    for variant in path_variants(path):
        for method in ("get", "post"):
            send(client, recorder, person, method, variant, [])
            sent += 1
    read = parameters_read_by_view(path)
    for method in ("get", "post"):
        forms = site.forms.get((method, path)) or [Form(method, path)]
        for form in forms:
            baseline = send(client, recorder, person, method, path, list(form.fields))
            sent += 1
            if baseline.status_code == 405:
                continue  # the view takes only the other method
            names = read | {n for n, _ in form.fields} | (site.paths.get(path, set()) if method == "get" else set())
            # Where this person is refused (404, 403, to the login page), a few values show that refusing
            # comes before reading any parameter; everywhere else every value is tried.
            values, htmx_values = (REFUSED_VALUES, []) if is_refusal(baseline) else (BAD_VALUES, HTMX_VALUES)
            if path not in site.htmx_paths:
                htmx_values = []
            for name in sorted(names):
                for value in values:
                    send(client, recorder, person, method, path, with_value(form.fields, name, value))
                for value in htmx_values:
                    send(client, recorder, person, method, path, with_value(form.fields, name, value), htmx=True)
                sent += len(values) + len(htmx_values)
    return sent


@pytest.mark.parametrize("person", PEOPLE)
def test_no_input_gets_a_500(world: World, recorder: Recorder, person: str) -> None:
    site = discover(world)
    client = client_for(world.people[person])
    sent = sum(fuzz_endpoint(client, recorder, person, site, path) for path in endpoints(site).values())
    assert sent > 300  # the walk did reach the site
    assert not recorder.failures, f"{len(recorder.failures)} of {sent} requests got a 5xx:\n" + "\n".join(
        map(str, recorder.failures[:80])
    )


# What a stored text can hold that later pages, headers or file names may choke on.
STORED_VALUES = ["line\r\nbreak <b>bold</b> \"quoted\" 'single' x__regex=( ünï ✓ %s {{ x }}", LONG]


def test_stored_bad_values_never_break_a_page(world: World, recorder: Recorder) -> None:
    """Values that forms accept and store (names, comments, answers) are then shown, exported, downloaded:
    every form field is saved with tricky text, then every page is opened again by everyone."""
    site = discover(world)
    for person in ("admin", "reviewer"):
        client = client_for(world.people[person])
        for (method, path), forms in sorted(site.forms.items()):
            if method != "post" or path == LOGOUT:
                continue
            for form in forms:
                for name in sorted({n for n, _ in form.fields} - {"csrfmiddlewaretoken"}):
                    for value in STORED_VALUES:
                        send(client, recorder, person, method, path, with_value(form.fields, name, value), keep=True)
    seeds = ["/"] + [route for route, _ in url_patterns() if "<" not in route]
    for person in PEOPLE:
        crawl(client_for(world.people[person]), Site(), seeds, per_pattern=10_000, report=(recorder, person))
    assert not recorder.failures, f"{len(recorder.failures)} requests got a 5xx:\n" + "\n".join(
        map(str, recorder.failures[:80])
    )


fuzz_text = st.one_of(
    st.text(st.characters(exclude_categories=("Cs",)), max_size=400),
    st.sampled_from([v for v in BAD_VALUES if isinstance(v, str)]),
    st.integers().map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(str),
    st.from_regex(r"\A[a-z_]{1,8}__(regex|iregex|isnull|in|gt|contains|has_key)=.{0,12}\Z"),
)


@pytest.mark.parametrize("person", ["admin", "reviewer"])
@settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    database=None,
    derandomize=os.environ.get("CI") == "true",  # CI is deterministic: the same examples on every run
    print_blob=True,
)
@given(data=st.data())
def test_generated_input_never_gets_a_500(world: World, recorder: Recorder, person: str, data: st.DataObject) -> None:
    if world.site is None or world.client is None:  # discovered once per test, reused by every example
        world.site, world.client = discover(world), client_for(world.people[person])
    site, client = world.site, world.client
    recorder.failures.clear()  # each example stands alone, so hypothesis can shrink a failing one
    targets = [
        (method, path, form.fields)
        for (method, path), forms in sorted(site.forms.items())
        for form in forms
        if path != LOGOUT and form.fields
    ]
    method, path, fields = data.draw(st.sampled_from(targets), label="form")
    names = [name for name, _ in fields] or ["q"]
    changed = data.draw(st.dictionaries(st.sampled_from(names), st.lists(fuzz_text, min_size=1, max_size=3)))
    sent = [(name, value) for name, value in fields if name not in changed] + [
        (name, values if len(values) > 1 else values[0]) for name, values in changed.items()
    ]
    htmx = data.draw(st.booleans(), label="htmx")
    send(client, recorder, person, method, path, sent, htmx=htmx)
    assert not recorder.failures, "\n".join(map(str, recorder.failures))
