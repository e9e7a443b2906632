"""Production: PostgreSQL, Redis, gunicorn behind a TLS-terminating proxy. Refuses to start without
a strong secret key; `DJANGO_SETTINGS_MODULE=config.settings.production python manage.py check
--deploy` passes with no warnings (tests/test_accounts_security.py)."""
from django.core.exceptions import ImproperlyConfigured

from .base import *  # noqa: F403
from .base import SPECTACULAR_SETTINGS, env_bool


def _secret_key_problem(key: str) -> str:
    """Django's own test (security.W009): at least 50 characters, 5 distinct, not a generated
    development key."""
    if not key:
        return "DJANGO_SECRET_KEY must be set in production"
    if key.startswith("django-insecure"):
        return "DJANGO_SECRET_KEY is a development key (django-insecure...): generate a new one"
    if len(key) < 50:
        return "DJANGO_SECRET_KEY must be at least 50 characters long"
    if len(set(key)) < 5:
        return "DJANGO_SECRET_KEY must hold at least 5 different characters"
    return ""


_problem = _secret_key_problem(SECRET_KEY)  # noqa: F405
if _problem:
    raise ImproperlyConfigured(_problem + ' (e.g. python -c "import secrets; print(secrets.token_urlsafe(64))")')

DEBUG = False

# HTTPS: the proxy in front terminates TLS and says so in X-Forwarded-Proto (it must set or strip
# that header itself). DJANGO_SECURE_SSL_REDIRECT=0 or DJANGO_HSTS_SECONDS=0 turn a part off (and
# make check --deploy warn), e.g. for a plain-HTTP benchmark on one machine.
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_SSL_REDIRECT = env_bool("DJANGO_SECURE_SSL_REDIRECT", True)
SECURE_HSTS_SECONDS = int(os.environ.get("DJANGO_HSTS_SECONDS", str(365 * 24 * 3600)))  # noqa: F405
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("DJANGO_HSTS_INCLUDE_SUBDOMAINS", True)
SECURE_HSTS_PRELOAD = env_bool("DJANGO_HSTS_PRELOAD", True)
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
SESSION_COOKIE_SECURE = env_bool("DJANGO_SECURE_COOKIES", True)
CSRF_COOKIE_SECURE = env_bool("DJANGO_SECURE_COOKIES", True)
SESSION_COOKIE_HTTPONLY = True

# The OpenAPI schema and Swagger UI: for logged-in users (session or token) only.
SPECTACULAR_SETTINGS = {**SPECTACULAR_SETTINGS, "SERVE_PERMISSIONS": ["rest_framework.permissions.IsAuthenticated"]}

STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}
