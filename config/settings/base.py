"""Settings shared by every environment. The environment is the only input."""
from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

import dj_database_url

BASE_DIR = Path(__file__).resolve().parent.parent.parent
VAR_DIR = Path(os.environ.get("PREFSTUDIO_VAR_DIR", BASE_DIR / "var"))


def env_bool(name: str, default: bool = False) -> bool:
    value = os.environ.get(name)
    if value is None:
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def env_list(name: str, default: str = "") -> list[str]:
    return [part.strip() for part in os.environ.get(name, default).split(",") if part.strip()]


SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "")
DEBUG = env_bool("DJANGO_DEBUG", False)
ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS", "localhost,127.0.0.1")
CSRF_TRUSTED_ORIGINS = env_list("DJANGO_CSRF_TRUSTED_ORIGINS")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_htmx",
    "axes",
    "annotation",
    "calibration",
    "rewards",
    "training",
    "frontend",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "annotation.unavailable.DatabaseUnavailableMiddleware",
    # Last, as django-axes asks: it turns a locked-out login into the lockout page.
    "axes.middleware.AxesMiddleware",
]

# django-axes first: it refuses a locked-out login before the password is checked.
AUTHENTICATION_BACKENDS = [
    "annotation.security.LoginThrottleBackend",
    "django.contrib.auth.backends.ModelBackend",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"
ASGI_APPLICATION = "config.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# SQLite is the embedded default; DATABASE_URL selects PostgreSQL (postgres://user:pass@host:port/db).
_sqlite_path = VAR_DIR / "db.sqlite3"
DATABASES = {
    "default": dj_database_url.parse(
        os.environ.get("DATABASE_URL", f"sqlite:///{_sqlite_path}"),
        conn_max_age=int(os.environ.get("DJANGO_CONN_MAX_AGE", "60")),
        conn_health_checks=True,
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    # Behind a transaction-mode pooler (PgBouncer), .iterator() must not use server-side cursors: a
    # cursor lives in one server session, which the pooler may hand to someone else (docs/SCALING.md).
    DATABASES["default"]["DISABLE_SERVER_SIDE_CURSORS"] = env_bool("DB_DISABLE_SERVER_SIDE_CURSORS", False)
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql" and env_bool("DB_PREPARED_STATEMENTS", True):
    # Server-side binding lets psycopg prepare a statement once it has run `prepare_threshold` times
    # on a connection, so PostgreSQL stops planning it again: planning the labelling hot path's
    # statements cost several times their execution (1.2 ms to plan the candidate pick, 0.17 ms to
    # run it; docs/SCALING.md). Django's default (client-side binding) sends every statement as new
    # text. Behind PgBouncer in transaction mode this needs PgBouncer >= 1.21 with
    # max_prepared_statements set (docs/SCALING.md); DB_PREPARED_STATEMENTS=0 turns it off.
    # Options given in DATABASE_URL (?sslmode=require, ...) are kept. The engine is Django's, with
    # a guard for statements over PostgreSQL's 65,535-parameter limit (config/db/base.py).
    DATABASES["default"]["ENGINE"] = "config.db"
    DATABASES["default"].setdefault("OPTIONS", {}).update({
        "server_side_binding": True,
        "prepare_threshold": int(os.environ.get("DB_PREPARE_THRESHOLD", "2")),
    })
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # IMMEDIATE transactions make concurrent writers queue instead of failing mid-transaction
    # with "database is locked"; `timeout` is how long one waits for the write lock (the busy
    # timeout). WAL lets readers go on while a writer works: in the default rollback journal, a
    # large import's one transaction locks readers out once it spills to the file, and API reads
    # answered 500 "database is locked". The embedded default is for one machine and a few users.
    DATABASES["default"]["OPTIONS"] = {
        "transaction_mode": "IMMEDIATE",
        "timeout": 20,
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL",
    }
    DATABASES["default"]["CONN_MAX_AGE"] = 0
# While the database is unreachable (restarting, failing over) requests answer 503 with this
# Retry-After instead of 500 (annotation/unavailable.py).
DB_UNAVAILABLE_RETRY_AFTER_SECONDS = int(os.environ.get("DB_UNAVAILABLE_RETRY_AFTER_SECONDS", "5"))

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

# Login throttling (django-axes, attempts in the database): after AXES_FAILURE_LIMIT consecutive
# failed logins for one username from one address, that pair is locked out for AXES_COOLOFF_TIME
# (the login page says so); a successful login resets the count. `axes_reset` unlocks by hand.
AXES_FAILURE_LIMIT = int(os.environ.get("LOGIN_FAILURE_LIMIT", "10"))
AXES_COOLOFF_TIME = timedelta(minutes=float(os.environ.get("LOGIN_COOLOFF_MINUTES", "15")))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_CALLABLE = "frontend.views.account.lockout_response"
# The client address: REMOTE_ADDR unless the deployment names the header its proxy sets
# (e.g. LOGIN_CLIENT_IP_HEADERS=HTTP_X_FORWARDED_FOR with LOGIN_PROXY_COUNT=1).
AXES_IPWARE_META_PRECEDENCE_ORDER = env_list("LOGIN_CLIENT_IP_HEADERS", "REMOTE_ADDR")
AXES_IPWARE_PROXY_COUNT = int(os.environ["LOGIN_PROXY_COUNT"]) if os.environ.get("LOGIN_PROXY_COUNT") else None

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = False
USE_TZ = True

STATIC_URL = "/static/"
STATIC_ROOT = Path(os.environ.get("DJANGO_STATIC_ROOT", BASE_DIR / "staticfiles"))
MEDIA_URL = "/media/"
MEDIA_ROOT = Path(os.environ.get("DJANGO_MEDIA_ROOT", VAR_DIR / "media"))
# Uploaded JSONL files larger than this go to a temporary file instead of memory.
FILE_UPLOAD_MAX_MEMORY_SIZE = 2_621_440
DATA_UPLOAD_MAX_MEMORY_SIZE = 10_485_760
# Largest import files accepted (README, "Import"); per-line and per-field limits are constants in
# annotation/importing.py and annotation/untrusted.py. Anchors files are validated in memory.
IMPORT_MAX_FILE_BYTES = int(os.environ.get("IMPORT_MAX_FILE_BYTES", 1 << 30))
ANCHORS_IMPORT_MAX_FILE_BYTES = int(os.environ.get("ANCHORS_IMPORT_MAX_FILE_BYTES", 32 << 20))
# The REST judgment import runs inside the request (the CLI has no limit but the machine's).
JUDGMENT_IMPORT_MAX_FILE_BYTES = int(os.environ.get("JUDGMENT_IMPORT_MAX_FILE_BYTES", 32 << 20))

LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "annotation.security.ApiTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    # Per client, in the shared cache (fail open when it is unreachable: annotation/security.py).
    "DEFAULT_THROTTLE_CLASSES": [
        "annotation.security.AnonThrottle",
        "annotation.security.UserThrottle",
    ],
    "DEFAULT_THROTTLE_RATES": {
        "anon": os.environ.get("API_THROTTLE_ANON", "60/min"),
        "user": os.environ.get("API_THROTTLE_USER", "10000/min"),
    },
    # A scoped token (production feedback) reaches only its own endpoint (annotation/security.py).
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated", "annotation.security.TokenScope"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_PAGINATION_CLASS": "annotation.pagination.BoundedLimitOffsetPagination",
    "PAGE_SIZE": 100,
    "EXCEPTION_HANDLER": "annotation.api_errors.exception_handler",
    # JSON bodies go through the same hostile-JSON loader as import lines: depth, size, NaN, huge
    # integers, NUL and lone surrogates answer 400 instead of a 500 (annotation/parsers.py).
    "DEFAULT_PARSER_CLASSES": [
        "annotation.parsers.UntrustedJSONParser",
        "rest_framework.parsers.FormParser",
        "rest_framework.parsers.MultiPartParser",
    ],
    # `?format=` names an export format here, not a renderer.
    "URL_FORMAT_OVERRIDE": None,
    "DEFAULT_RENDERER_CLASSES": [
        "rest_framework.renderers.JSONRenderer",
        "rest_framework.renderers.BrowsableAPIRenderer",
    ],
}

SPECTACULAR_SETTINGS = {
    "TITLE": "Preference Studio API",
    "DESCRIPTION": "Human preference data for reward models and RLHF.",
    "VERSION": "0.1.0",
    "SERVE_INCLUDE_SCHEMA": False,
    # Swagger UI assets come from the drf-spectacular-sidecar package: no CDN at run time.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # The same choice sets appear in several serializers: name each once.
    "ENUM_NAME_OVERRIDES": {
        "CanonicalChoiceEnum": "annotation.models.Choice",
        "ShownChoiceEnum": "annotation.sides.SHOWN_CHOICES",
        "StrengthEnum": "annotation.models.Strength",
        "StandingStateEnum": "calibration.models.StandingState",
        "JobStatusEnum": "annotation.models.ImportStatus",
        "RewriteStatusEnum": "annotation.models.RewriteStatus",
        "FlawTypeEnum": "annotation.models.FlawType",
        "JudgeKindEnum": "training.models.JudgeKind",
    },
}

# Celery. With no broker configured, the embedded default uses Kombu's filesystem transport
# under var/celery so a worker started beside the dev server (make run does) picks work up.
REDIS_URL = os.environ.get("REDIS_URL", "")
CELERY_BROKER_URL = os.environ.get("CELERY_BROKER_URL", REDIS_URL or "filesystem://")
CELERY_RESULT_BACKEND = os.environ.get("CELERY_RESULT_BACKEND", REDIS_URL or None)
if CELERY_BROKER_URL == "filesystem://":
    # Every folder the transport uses, the exchange tables (control_folder) included: Kombu's default
    # for those is "control" in whatever directory the process started in. config/celery.py creates
    # them when a worker starts or a task is first sent, not here: importing settings writes nothing.
    _broker_dir = VAR_DIR / "celery"
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_broker_dir / "queue"),
        "data_folder_out": str(_broker_dir / "queue"),
        "processed_folder": str(_broker_dir / "processed"),
        "control_folder": str(_broker_dir / "control"),
        "store_processed": False,
    }
CELERY_TASK_DEFAULT_QUEUE = "default"
# A job's row is its result (status, reason, progress); nothing reads Celery's results. Storing
# them made a Redis blip fail tasks whose work was done, and a web process that had sent a task
# during one stopped sending for good ("Retry limit exceeded ... must be restarted").
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ACKS_LATE = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TIMEZONE = "UTC"
CELERY_BEAT_SCHEDULE = {
    "expire-stale-leases": {"task": "annotation.tasks.expire_stale_leases", "schedule": 60.0},
    "score-missing-hidden-answers": {"task": "calibration.tasks.score_missing_hidden_answers", "schedule": 60.0},
    "reap-stale-runs": {"task": "training.tasks.reap_stale_runs", "schedule": 60.0},
    "reap-stale-jobs": {"task": "annotation.tasks.reap_stale_jobs", "schedule": 60.0},
}
# Imports, freezes and analytics computations (annotation/services/jobs.py): the worker beats
# every JOBS_HEARTBEAT_SECONDS; a running job silent for JOBS_STALE_AFTER_SECONDS is failed as
# dead, a queued one nobody took that long is sent again, and after JOBS_QUEUED_GIVE_UP_SECONDS failed.
JOBS_HEARTBEAT_SECONDS = float(os.environ.get("JOBS_HEARTBEAT_SECONDS", "10"))
JOBS_STALE_AFTER_SECONDS = float(os.environ.get("JOBS_STALE_AFTER_SECONDS", "120"))
JOBS_QUEUED_GIVE_UP_SECONDS = float(os.environ.get("JOBS_QUEUED_GIVE_UP_SECONDS", "1800"))

# Training: runs go to their own queue, served by a worker started with
# `celery -A config worker -Q gpu --concurrency 1`; their files live under TRAINING_ROOT.
TRAINING_QUEUE = os.environ.get("TRAINING_QUEUE", "gpu")
# Live scoring for the red-team console: a worker that keeps reward models loaded between requests
# (`celery -A config worker -Q scoring`), apart from training so a long run never blocks it.
SCORING_QUEUE = os.environ.get("SCORING_QUEUE", "scoring")

# AI judges behind an OpenAI-compatible endpoint (training/judge_backends.py). Leads choose the URL
# and the *name* of the environment variable holding the key, so both are bounded by the operator:
# - JUDGE_KEY_ENVS: the only variables a judge may read its key from (never DJANGO_SECRET_KEY or
#   DATABASE_URL: a lead could otherwise have a worker send them to a URL of their choosing);
# - JUDGE_ENDPOINT_HOSTS: hosts a judge may call even when they resolve to a private, loopback or
#   link-local address (by default none: such addresses are refused, as are redirects).
JUDGE_KEY_ENVS = tuple(n.strip() for n in os.environ.get("JUDGE_KEY_ENVS", "OPENAI_API_KEY,JUDGE_API_KEY").split(",")
                       if n.strip())
JUDGE_ENDPOINT_HOSTS = tuple(h.strip().lower() for h in os.environ.get("JUDGE_ENDPOINT_HOSTS", "").split(",")
                             if h.strip())
TRAINING_ROOT = Path(os.environ.get("TRAINING_ROOT", VAR_DIR / "runs"))
# Where the runs form looks for model directories to offer as backbones and policies (a directory
# with a config.json, up to MODEL_SCAN_DEPTH levels down): colon-separated, mounted where the
# workers see the same paths. The bundled MiniLM encoder and TRAINING_ROOT (trained models) are
# always offered.
MODEL_ROOTS = [Path(p) for p in os.environ.get("PREFSTUDIO_MODEL_ROOTS", str(VAR_DIR / "models")).split(os.pathsep) if p]
MODEL_SCAN_DEPTH = 3
# A running run whose worker has been silent this long (it beats every 10 s) is failed as dead.
TRAINING_STALE_AFTER_SECONDS = int(os.environ.get("TRAINING_STALE_AFTER_SECONDS", "180"))
# A policy run handed to a Ray cluster (OpenRLHF, verl): how often its worker asks Ray for the job's state.
RAY_POLL_SECONDS = float(os.environ.get("RAY_POLL_SECONDS", "10"))

# Shared cache: Redis in production (import progress crosses processes), files otherwise.
CACHES = {
    "default": (
        {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL}
        if REDIS_URL
        else {"BACKEND": "django.core.cache.backends.filebased.FileBasedCache", "LOCATION": str(VAR_DIR / "cache")}
    )
}


LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": os.environ.get("DJANGO_LOG_LEVEL", "WARNING")},
}
