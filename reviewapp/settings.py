"""Settings for the review app, all read from the environment.

Defaults make a fresh checkout run on an embedded SQLite file in ``var/``;
production sets ``DATABASE_URL``, ``SECRET_KEY``, ``DEBUG=0`` and ``ALLOWED_HOSTS``.
"""

from __future__ import annotations

import os
import re
from datetime import timedelta
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent

# mlflow-skinny (scorers, imported lazily by evaluation code) sends nothing anywhere and fetches no model catalogue.
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("MLFLOW_MODEL_CATALOG_URI", "")


def env_bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    return raw.strip().lower() in {"1", "true", "yes", "on"}


def env_list(name: str, default: str) -> list[str]:
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


def env_int(name: str, default: int, *, minimum: int = 0, maximum: int | None = None) -> int:
    """A whole number from the environment (``_`` allowed as a separator); a bad value stops start-up clearly."""
    raw = os.environ.get(name, "").strip().replace("_", "")
    if not raw:
        return default
    in_range = f"a whole number from {minimum:,} to {maximum:,}" if maximum is not None else ""
    if not (raw.isascii() and re.fullmatch(r"-?[0-9]+", raw)):
        raise ImproperlyConfigured(f"{name} must be {in_range or 'a whole number'}, not {raw[:40]!r}.")
    value = int(raw)
    if maximum is not None and not minimum <= value <= maximum:
        raise ImproperlyConfigured(f"{name} must be {in_range} (got {raw[:40]!r}).")
    if value < minimum:
        raise ImproperlyConfigured(f"{name} must be at least {minimum}, not {value}.")
    return value


DEBUG = env_bool("DEBUG", True)

SECRET_KEY = os.environ.get("SECRET_KEY", "")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured(
            "SECRET_KEY must be set in the environment when DEBUG is off "
            "(for example: export SECRET_KEY=\"$(python -c 'import secrets; print(secrets.token_urlsafe(50))')\")."
        )
    SECRET_KEY = "dev-only-insecure-key-do-not-use-in-production"

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "localhost,127.0.0.1,[::1]" if not DEBUG else "*")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", "")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "django_htmx",
    "template_partials",
    # before django_tasks_db: its ``db_worker`` command is evaluation's (the worker plus the monitoring scheduler)
    "evaluation",
    "django_tasks",
    "django_tasks_db",
    "traces",
    "labeling",
    "axes",
    "ninja",  # serves the API docs' Swagger UI from our own static files, not a CDN
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # Outermost but one: Django's own 404/405/500 under /api/ become the API's JSON error shape.
    "reviewapp.api.ApiErrorsMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "csp.middleware.CSPMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    # Last, so it turns a locked-out login attempt into the lockout page.
    "axes.middleware.AxesMiddleware",
]

# The axes backend first: it refuses a locked-out user name or address before the password is checked.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]

ROOT_URLCONF = "reviewapp.urls"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "reviewapp.context_processors.navigation",
            ],
        },
    },
]

WSGI_APPLICATION = "reviewapp.wsgi.application"
ASGI_APPLICATION = "reviewapp.asgi.application"

DATABASES = {
    "default": dj_database_url.parse(
        os.environ.get("DATABASE_URL") or f"sqlite:///{BASE_DIR / 'var' / 'reviewapp.sqlite3'}",
        conn_max_age=int(os.environ.get("CONN_MAX_AGE", "60")),
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # WAL + a busy timeout let the dev server and a worker share the file.
    DATABASES["default"]["OPTIONS"] = {
        "timeout": 20,
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        "transaction_mode": "IMMEDIATE",
    }
    # A file, not shared-cache memory, so concurrent tests wait on the lock instead of failing.
    DATABASES["default"]["TEST"] = {"NAME": str(BASE_DIR / "var" / f"test-reviewapp-{os.getpid()}.sqlite3")}

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = os.environ.get("TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = BASE_DIR / "staticfiles"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"
        if DEBUG
        else "whitenoise.storage.CompressedManifestStaticFilesStorage"
    },
}

LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"

TASKS = {
    "default": {
        "BACKEND": os.environ.get("TASKS_BACKEND", "django_tasks_db.DatabaseBackend"),
    }
}
# Adding at least this many traces to a session runs in the background (a db_worker) with a progress
# bar; smaller adds are copied during the request.
TRACE_ADD_BACKGROUND_THRESHOLD = int(os.environ.get("TRACE_ADD_BACKGROUND_THRESHOLD", "500"))
# "Save as a dataset" from the trace explorer merges at most this many traces during the request;
# more are refused with a message pointing at ``manage.py build_dataset`` (which streams any number).
DATASET_FROM_TRACES_PAGE_LIMIT = env_int("DATASET_FROM_TRACES_PAGE_LIMIT", 10_000, minimum=1)
# A queued or running add with no progress for this long can be retried (its worker was stopped).
TRACE_ADD_STALLED_SECONDS = int(os.environ.get("TRACE_ADD_STALLED_SECONDS", "600"))

# Called (no arguments) after ``import_traces`` stored traces: traces of a real mlflow.genai.evaluate run appear
# as an evaluation run.
AFTER_TRACE_IMPORT = os.environ.get("AFTER_TRACE_IMPORT", "evaluation.mlflow_runs.import_mlflow_runs")

# Called with the pks of traces that just completed (root span arrived, or imported), in their transaction:
# monitoring queues the sampled traces of each active registered scorer.
ON_TRACES_COMPLETED = env_list("ON_TRACES_COMPLETED", "evaluation.monitoring.sampling.queue_completed_traces")

# The archive setting's Delta tables (page "Archive traces"): a path given there is inside this directory.
# ``manage.py archive_traces --to PATH`` writes wherever it is told.
ARCHIVE_ROOT = Path(os.environ.get("ARCHIVE_ROOT") or BASE_DIR / "var" / "archive")

# Scorers: Python modules whose mlflow.genai @scorer functions and Scorer instances evaluation runs can use.
SCORER_MODULES = env_list("SCORER_MODULES", "evaluation.example_scorers")
# One scorer call on one trace may take this long before it is recorded as a timeout error.
SCORER_TIMEOUT_SECONDS = env_int("SCORER_TIMEOUT_SECONDS", 60, minimum=1, maximum=86_400)
# Scorer calls run in this many threads.
SCORER_WORKERS = env_int("SCORER_WORKERS", 4, minimum=1, maximum=256)
# A predict run calls the app (``predict_fn``) on each dataset record, in SCORER_WORKERS threads; a call that
# takes longer than this gives an ERROR trace for its record.
PREDICT_TIMEOUT_SECONDS = env_int("PREDICT_TIMEOUT_SECONDS", 300, minimum=1, maximum=86_400)

# Monitoring: a worker claims this many queued (trace, registered scorer) pairs at a time.
MONITORING_BATCH_SIZE = env_int("MONITORING_BATCH_SIZE", 500, minimum=1, maximum=10_000)
# Each db_worker's scheduler looks for due periodic jobs (queue sweep, archival) this often.
MONITORING_TICK_SECONDS = env_int("MONITORING_TICK_SECONDS", 5, minimum=1, maximum=3_600)

# LLM judges (MLflow's built-in judges) call one OpenAI-compatible chat completions endpoint: JUDGE_BASE_URL is its
# base (requests go to {JUDGE_BASE_URL}/chat/completions, e.g. https://api.openai.com/v1 or http://localhost:11434/v1),
# JUDGE_MODEL the model name it serves. Without both, judges are listed as unavailable and cannot be started.
JUDGE_BASE_URL = os.environ.get("JUDGE_BASE_URL", "").strip().rstrip("/")
JUDGE_MODEL = os.environ.get("JUDGE_MODEL", "").strip()
# Sent as "Authorization: Bearer …"; never shown on a page, logged, stored or exported. Empty: no Authorization header.
JUDGE_API_KEY = os.environ.get("JUDGE_API_KEY", "").strip()
# The longest one judge may take on one trace, all its requests, retries and waits included; past it the trace gets
# an error Feedback (TIMEOUT) and the run goes on.
JUDGE_TIMEOUT_S = env_int("JUDGE_TIMEOUT_S", 60, minimum=1, maximum=3_600)
# Judge calls of a run in flight at once (their own threads, beside SCORER_WORKERS for code scorers).
JUDGE_MAX_CONCURRENCY = env_int("JUDGE_MAX_CONCURRENCY", 4, minimum=1, maximum=256)
# Retries of one request after a 429, a 5xx or a dropped connection, with exponential backoff (Retry-After honoured),
# within JUDGE_TIMEOUT_S.
JUDGE_MAX_RETRIES = env_int("JUDGE_MAX_RETRIES", 2, minimum=0, maximum=10)
# A run with judges over more traces than this asks first: the start form shows traces × judges = calls and a
# "Start anyway" button; ``manage.py evaluate`` refuses without --yes.
JUDGE_CONFIRM_OVER = env_int("JUDGE_CONFIRM_OVER", 500, minimum=0, maximum=100_000_000)


# The Guidelines judge's named guidelines, a JSON object {"name": "guideline" or ["guideline", ...]}; each name
# becomes one pass/fail Feedback, e.g. {"concise_communication": "The response must be concise."}.
def env_guidelines(name: str) -> dict[str, list[str]]:
    """Named guidelines from a JSON object in the environment; a bad value stops start-up with the reason."""
    import json

    raw = os.environ.get(name, "").strip()
    if not raw:
        return {}
    try:
        found = json.loads(raw)
    except ValueError as error:
        raise ImproperlyConfigured(f"{name} must be a JSON object of named guidelines: {error}") from None
    if not isinstance(found, dict):
        raise ImproperlyConfigured(f'{name} must be a JSON object, e.g. {{"concise": "The response must be concise."}}')
    guidelines: dict[str, list[str]] = {}
    for key, value in found.items():
        texts = [value] if isinstance(value, str) else value
        if not re.fullmatch(r"[A-Za-z0-9_.-]{1,100}", key):
            raise ImproperlyConfigured(f"{name}: {key[:40]!r} is not a name (letters, digits, _ . - only)")
        if not isinstance(texts, list) or not texts or not all(isinstance(t, str) and t.strip() for t in texts):
            raise ImproperlyConfigured(f"{name}: {key!r} must be a guideline or a list of guidelines (non-empty text)")
        guidelines[key] = [text.strip() for text in texts]
    return guidelines


JUDGE_GUIDELINES = env_guidelines("JUDGE_GUIDELINES")
# Few-shot examples a custom judge (defined on its admin page) may carry, inserted into its instructions.
JUDGE_MAX_EXAMPLES = env_int("JUDGE_MAX_EXAMPLES", 5, minimum=0, maximum=50)

# Content-Security-Policy: everything from our own origin; htmx is vendored.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "img-src": ["'self'", "data:"],
        "style-src": ["'self'"],
        "script-src": ["'self'"],
        "frame-ancestors": ["'none'"],
        "form-action": ["'self'"],
        "base-uri": ["'none'"],
        "object-src": ["'none'"],
    }
}

X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SESSION_COOKIE_HTTPONLY = True
# Secure cookies and HTTPS redirect by default in production; SECURE_COOKIES=0 / SECURE_SSL_REDIRECT=0
# only for a plain-HTTP load test on localhost.
SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = env_bool("SECURE_COOKIES", not DEBUG)
if not DEBUG:
    SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", True)
    SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 31536000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True

# Reverse proxies in front of the app (each appends the address it saw to X-Forwarded-For). With 0, the
# default, X-Forwarded-Proto and X-Forwarded-For are ignored: anyone could send them. With N, the proxy's
# X-Forwarded-Proto says whether the request came over HTTPS, and the client address (for login throttling)
# is the N-th address from the right of X-Forwarded-For.
PROXY_COUNT = env_int("PROXY_COUNT", 0)
if PROXY_COUNT:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

# Django's admin edits raw rows (traces, assessments) past every service rule: on for local development,
# off in production unless DJANGO_ADMIN=1.
DJANGO_ADMIN = env_bool("DJANGO_ADMIN", DEBUG)

# Login throttling (django-axes) on /login/ and /django-admin/login/: after LOGIN_FAILURE_LIMIT failed
# attempts for one user name, or from one client address, within LOGIN_COOLOFF_MINUTES, both pages refuse
# that user name or address (even with the right password) until LOGIN_COOLOFF_MINUTES after the last
# counted failure. Attempts while locked out do not extend the lock. A successful login clears the count.
AXES_ENABLED = env_bool("LOGIN_THROTTLE", True)
AXES_FAILURE_LIMIT = env_int("LOGIN_FAILURE_LIMIT", 5, minimum=1)
AXES_COOLOFF_TIME = timedelta(minutes=env_int("LOGIN_COOLOFF_MINUTES", 15, minimum=1))
AXES_LOCKOUT_PARAMETERS = ["username", "ip_address"]
AXES_RESET_ON_SUCCESS = True
AXES_RESET_COOL_OFF_ON_FAILURE_DURING_LOCKOUT = False
AXES_CLIENT_IP_CALLABLE = "reviewapp.login_throttle.client_ip_address"
AXES_LOCKOUT_CALLABLE = "reviewapp.login_throttle.lockout_response"
AXES_VERBOSE = False

# Who besides admins may open the trace explorer: session leads (reviewers only see their items).
TRACE_EXPLORER_ACCESS = "labeling.access.is_lead_anywhere"
# Whose session copies a non-admin may open by trace id: those of the sessions they manage.
TRACE_COPY_ACCESS = "labeling.access.managed_copy_experiments"
# Which session copies a reviewer's API token may read: those of the items given to them.
TRACE_REVIEWER_ACCESS = "labeling.access.reviewer_copy_traces"

# The open review page renews its lease three times per lease, but never more often than every
# REVIEW_HEARTBEAT_MIN_SECONDS nor less often than every REVIEW_HEARTBEAT_MAX_SECONDS.
REVIEW_HEARTBEAT_MIN_SECONDS = env_int("REVIEW_HEARTBEAT_MIN_SECONDS", 15, minimum=1)
REVIEW_HEARTBEAT_MAX_SECONDS = env_int("REVIEW_HEARTBEAT_MAX_SECONDS", 120, minimum=1)

# Largest JSON body the ingest endpoints and the importer accept per file.
MAX_IMPORT_FILE_BYTES = int(os.environ.get("MAX_IMPORT_FILE_BYTES", str(512 * 1024 * 1024)))

# Largest OTLP/HTTP export request POST /v1/traces accepts (413 above it), both as sent and once
# decompressed: a gzip body is inflated only this far, so a small "gzip bomb" cannot fill the memory.
OTLP_MAX_BODY_BYTES = env_int("OTLP_MAX_BODY_BYTES", 20 * 1024 * 1024, minimum=1024)

# Characters of one trace value (a message, a span's inputs, a tool's result) that the trace page,
# the span panel and the review screen show before cutting it, with "show all" / download links.
# A value longer than max(1,000,000, 10 x this) characters of JSON is read from the database only
# that far, so huge payloads never load whole for a page.
TRACE_VALUE_LIMIT = env_int("TRACE_VALUE_LIMIT", 20_000, minimum=200, maximum=10_000_000)

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "WARNING")},
}
