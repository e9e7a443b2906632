"""Tests: PostgreSQL from DATABASE_URL (make test starts one), a real Redis broker from REDIS_URL."""
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
