"""Tests: PostgreSQL from DATABASE_URL (make test starts one), a real Redis broker from REDIS_URL."""
import os

from .base import *  # noqa: F403

SECRET_KEY = "test-only-not-secret"
DEBUG = False
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
ALLOWED_HOSTS = ["localhost", "127.0.0.1", "testserver"]
# Static files come from the app folders (no collectstatic before tests).
WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = True
# Threads in the tests (live server, concurrency) must not hold connections past their work.
DATABASES["default"]["CONN_MAX_AGE"] = 0  # noqa: F405

# pytest-xdist gives each of its worker processes its own test database. Celery messages and
# cache keys must then be its own too: otherwise a Celery worker started by one process takes a
# task sent by the other and looks its row up in the wrong database (ids repeat across them).
# The xdist_group marks do not keep such tests on one process under pytest 9.
_XDIST_WORKER = os.environ.get("PYTEST_XDIST_WORKER", "")
if _XDIST_WORKER:
    CELERY_TASK_DEFAULT_QUEUE = f"default-{_XDIST_WORKER}"  # noqa: F405 (from base)
    TRAINING_QUEUE = f"gpu-{_XDIST_WORKER}"
    SCORING_QUEUE = f"scoring-{_XDIST_WORKER}"
    CACHES["default"]["KEY_PREFIX"] = f"test-{_XDIST_WORKER}"  # noqa: F405

# The suite (the schema fuzzing sends thousands of requests a minute as one client) must never meet
# the API throttles; tests of throttling lower a rate themselves (tests/test_accounts_security.py).
REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"] = {  # noqa: F405
    "anon": os.environ.get("API_THROTTLE_ANON", "1000000/min"),
    "user": os.environ.get("API_THROTTLE_USER", "1000000/min"),
}

# The AI-judge tests talk to a real chat-completions server on the loopback interface
# (tests/judge_server.py), and read their test key from these variables.
JUDGE_ENDPOINT_HOSTS = ("127.0.0.1",)
JUDGE_KEY_ENVS = (*JUDGE_KEY_ENVS, "JUDGE_TEST_KEY", "JUDGE_KEY_NOBODY_SET")  # noqa: F405
