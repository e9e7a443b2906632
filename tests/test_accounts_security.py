"""Accounts and deployment: login lockout (django-axes), API throttles, hashed API tokens (create,
rotate, revoke, expiry, who may), password validators, and the production settings (check
--deploy, strong secret key, the default settings module, the schema behind a login)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from django.core.cache import cache
from django.core.exceptions import ValidationError
from django.contrib.auth.password_validation import validate_password
from django.db import connection
from django.utils import timezone
from rest_framework.test import APIClient

from annotation.models import ApiToken, token_digest
from annotation.services.tokens import token_issue
from annotation.security import AnonThrottle, UserThrottle
from annotation.models import Role
from tests.factories import UserFactory, api_as, member

pytestmark = pytest.mark.django_db
ROOT = Path(__file__).resolve().parent.parent
STRONG_KEY = "k3Y-" + "x9Qv7TzLp2mW8rB5nC1dF6gH0jK4sA3eU" * 2


# ------------------------------------------------------------------------------------------------
# Login lockout
# ------------------------------------------------------------------------------------------------

def _login(client, username, password):
    return client.post("/accounts/login/", {"username": username, "password": password})


def test_lockout_after_consecutive_failures_with_a_message_and_cool_off(client, settings):
    settings.AXES_FAILURE_LIMIT = 3
    user = UserFactory(username="locked-user")
    for _ in range(2):
        response = _login(client, "locked-user", "wrong-password")
        assert response.status_code == 200
        assert "didn&#x27;t match" in response.content.decode() or "didn't match" in response.content.decode()
    response = _login(client, "locked-user", "wrong-password")
    assert response.status_code == 429
    assert "Too many failed login attempts" in response.content.decode()
    assert "15 minutes" in response.content.decode()

    # Locked: the right password is refused too, and no session is opened.
    response = _login(client, "locked-user", "pw-12345678")
    assert response.status_code == 429
    assert "Too many failed login attempts" in response.content.decode()
    assert "_auth_user_id" not in client.session

    # Another username from the same address is not locked (the lock is per username and address).
    other = UserFactory(username="other-user")
    response = _login(client, "other-user", "pw-12345678")
    assert response.status_code == 302 and client.session["_auth_user_id"] == str(other.pk)
    client.logout()

    # After the cool-off the right password works again.
    from axes.models import AccessAttempt

    AccessAttempt.objects.filter(username="locked-user").update(attempt_time=timezone.now() - timedelta(minutes=16))
    response = _login(client, "locked-user", "pw-12345678")
    assert response.status_code == 302
    assert client.session["_auth_user_id"] == str(user.pk)


def test_a_successful_login_resets_the_failure_count(client, settings):
    settings.AXES_FAILURE_LIMIT = 3
    UserFactory(username="resets")
    for _ in range(2):
        _login(client, "resets", "nope-nope")
    assert _login(client, "resets", "pw-12345678").status_code == 302
    client.logout()
    for _ in range(2):
        assert _login(client, "resets", "nope-nope").status_code == 200


def test_login_failure_limit_defaults_to_ten_with_a_15_minute_cool_off():
    from django.conf import settings

    assert settings.AXES_FAILURE_LIMIT == 10
    assert settings.AXES_COOLOFF_TIME == timedelta(minutes=15)
    assert settings.AXES_LOCKOUT_PARAMETERS == [["username", "ip_address"]]


def test_the_four_password_validators():
    from django.conf import settings

    names = [v["NAME"].rsplit(".", 1)[1] for v in settings.AUTH_PASSWORD_VALIDATORS]
    assert names == ["UserAttributeSimilarityValidator", "MinimumLengthValidator", "CommonPasswordValidator",
                     "NumericPasswordValidator"]
    for weak in ("password", "12345678901", "short"):
        with pytest.raises(ValidationError):
            validate_password(weak)
    validate_password("pw-12345678")  # the factories' password
    validate_password("demo-pass-123")  # seed_demo's


# ------------------------------------------------------------------------------------------------
# API throttles
# ------------------------------------------------------------------------------------------------

def test_the_user_throttle_answers_429_past_its_rate(monkeypatch, project):
    engineer = member(project, Role.ENGINEER)
    monkeypatch.setattr(UserThrottle, "THROTTLE_RATES", {"user": "3/min", "anon": "1000/min"})
    cache.delete(f"throttle_user_{engineer.pk}")
    client = api_as(engineer)
    statuses = [client.get("/api/projects/").status_code for _ in range(4)]
    assert statuses == [200, 200, 200, 429]
    assert "Retry-After" in client.get("/api/projects/")
    cache.delete(f"throttle_user_{engineer.pk}")


def test_the_anonymous_throttle_answers_429_past_its_rate(monkeypatch):
    """On what anonymous clients may reach (permissions are checked before throttles): the schema
    outside production."""
    monkeypatch.setattr(AnonThrottle, "THROTTLE_RATES", {"anon": "1/min", "user": "1000/min"})
    cache.delete("throttle_anon_127.0.0.1")
    client = APIClient()
    assert [client.get("/api/schema/").status_code for _ in range(2)] == [200, 429]
    cache.delete("throttle_anon_127.0.0.1")


def test_a_throttle_lets_requests_through_when_the_cache_fails(monkeypatch, project):
    def broken(*args, **kwargs):
        raise ConnectionError("redis is down")

    monkeypatch.setattr(UserThrottle, "THROTTLE_RATES", {"user": "1/min", "anon": "1/min"})
    monkeypatch.setattr(UserThrottle, "cache", type("Broken", (), {"get": broken, "set": broken})())
    client = api_as(member(project, Role.ENGINEER))
    assert [client.get("/api/projects/").status_code for _ in range(3)] == [200, 200, 200]


def test_the_configured_throttles():
    from django.conf import settings

    assert settings.REST_FRAMEWORK["DEFAULT_THROTTLE_CLASSES"] == [
        "annotation.security.AnonThrottle", "annotation.security.UserThrottle"]


# ------------------------------------------------------------------------------------------------
# API tokens
# ------------------------------------------------------------------------------------------------

def _token_client(secret: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {secret}")
    return client


def test_token_lifecycle_through_the_api(project):
    engineer = member(project, Role.ENGINEER)
    me = api_as(engineer)
    created = me.post("/api/tokens/", {"name": "pipeline"}, format="json")
    assert created.status_code == 201, created.content
    secret = created.json()["secret"]
    token_id = created.json()["id"]
    assert secret.startswith("pst_") and len(secret) > 40
    assert created.json()["prefix"] == secret[:12]

    listed = me.get("/api/tokens/").json()
    assert [t["id"] for t in listed] == [token_id]
    assert "secret" not in listed[0] and listed[0]["prefix"] == secret[:12] and listed[0]["state"] == "active"
    assert "secret" not in me.get(f"/api/tokens/{token_id}/").json()

    # The database holds a digest, never the secret.
    row = ApiToken.objects.get(pk=token_id)
    assert row.digest == token_digest(secret) and row.last_used_at is None
    with connection.cursor() as cursor:
        cursor.execute("SELECT * FROM annotation_apitoken WHERE id = %s", [token_id])
        assert all(secret not in str(value) for value in cursor.fetchone())

    # It authenticates (Token or Bearer), and its use is recorded.
    assert _token_client(secret).get("/api/projects/").status_code == 200
    bearer = APIClient()
    bearer.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    assert bearer.get("/api/projects/").status_code == 200
    assert ApiToken.objects.get(pk=token_id).last_used_at is not None

    # Rotate: a new secret; the old one stops working.
    rotated = me.post(f"/api/tokens/{token_id}/rotate/")
    assert rotated.status_code == 200
    new_secret = rotated.json()["secret"]
    assert new_secret != secret and rotated.json()["id"] == token_id
    assert _token_client(secret).get("/api/projects/").status_code == 401
    assert _token_client(new_secret).get("/api/projects/").status_code == 200

    # Revoke: it stops working and cannot be rotated back.
    revoked = me.delete(f"/api/tokens/{token_id}/")
    assert revoked.status_code == 200 and revoked.json()["state"] == "revoked"
    assert _token_client(new_secret).get("/api/projects/").status_code == 401
    assert me.post(f"/api/tokens/{token_id}/rotate/").status_code == 409


def test_an_expired_token_is_refused(project):
    lead = member(project, Role.LEAD)
    me = api_as(lead)
    future = (timezone.now() + timedelta(days=1)).isoformat()
    created = me.post("/api/tokens/", {"name": "short", "expires_at": future}, format="json")
    assert created.status_code == 201
    secret = created.json()["secret"]
    assert _token_client(secret).get("/api/projects/").status_code == 200
    ApiToken.objects.filter(pk=created.json()["id"]).update(expires_at=timezone.now() - timedelta(seconds=1))
    response = _token_client(secret).get("/api/projects/")
    assert response.status_code == 401 and "expired" in response.json()["detail"]
    assert me.get("/api/tokens/").json()[0]["state"] == "expired"
    past = (timezone.now() - timedelta(days=1)).isoformat()
    assert me.post("/api/tokens/", {"expires_at": past}, format="json").status_code == 422


def test_unknown_and_malformed_tokens_are_refused():
    for header in ("Token nope", "Token a b", "Token", "Bearer " + "x" * 500):
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=header)
        assert client.get("/api/projects/").status_code == 401


def test_who_may_not_use_the_token_endpoints(project):
    engineer = member(project, Role.ENGINEER)
    token, _ = token_issue(user=engineer, name="theirs")
    anonymous = APIClient()
    annotator = api_as(member(project, Role.ANNOTATOR))
    other_lead = api_as(member(project, Role.LEAD))
    calls = [
        ("get", "/api/tokens/"), ("post", "/api/tokens/"), ("get", f"/api/tokens/{token.pk}/"),
        ("delete", f"/api/tokens/{token.pk}/"), ("post", f"/api/tokens/{token.pk}/rotate/"),
    ]
    for method, url in calls:
        assert getattr(anonymous, method)(url).status_code in (401, 403), url
        assert getattr(annotator, method)(url).status_code == 403, url
    # Another token holder: someone else's token does not exist for them.
    for method, url in calls[2:]:
        assert getattr(other_lead, method)(url).status_code == 404, url
    assert other_lead.get("/api/tokens/").json() == []
    token.refresh_from_db()
    assert token.revoked_at is None and token.state == "active"


def test_an_annotator_token_issued_by_an_administrator_still_authenticates(project):
    """Tokens issued outside the page (management code, the load benchmark) work for any role;
    only creating one yourself needs lead or engineer."""
    annotator = member(project, Role.ANNOTATOR)
    _, secret = token_issue(user=annotator)
    assert _token_client(secret).get("/api/projects/").status_code == 200
    assert _token_client(secret).post("/api/tokens/", {}, format="json").status_code == 403


def test_legacy_plaintext_tokens_are_hashed_by_the_migration():
    import importlib

    migration = importlib.import_module("annotation.migrations.0010_apitoken")
    user = UserFactory()
    with connection.cursor() as cursor:
        cursor.execute("CREATE TEMPORARY TABLE authtoken_token (key varchar(40), user_id bigint, created timestamptz)")
        cursor.execute("INSERT INTO authtoken_token VALUES (%s, %s, now())", ["a" * 8 + "0123456789abcdef" * 2, user.pk])
    from django.apps import apps as global_apps

    class Editor:
        pass

    editor = Editor()
    editor.connection = connection
    original = connection.introspection.table_names
    try:
        connection.introspection.table_names = lambda *a, **k: [*original(*a, **k), "authtoken_token"]
        migration.hash_legacy_tokens(global_apps, editor)
    finally:
        connection.introspection.table_names = original
    legacy = "a" * 8 + "0123456789abcdef" * 2
    assert _token_client(legacy).get("/api/projects/").status_code == 200
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM authtoken_token")
        assert cursor.fetchone()[0] == 0
        cursor.execute("DROP TABLE authtoken_token")
    assert not ApiToken.objects.filter(digest=legacy).exists()


# The tokens page --------------------------------------------------------------------------------

def test_the_tokens_page_creates_shows_once_rotates_and_revokes(client, project):
    engineer = member(project, Role.ENGINEER)
    client.force_login(engineer)
    assert 'id="api-tokens"' in client.get("/").content.decode()
    page = client.get("/account/tokens/")
    assert page.status_code == 200 and "You have no tokens yet" in page.content.decode()

    created = client.post("/account/tokens/new/", {"name": "notebook", "expires_in_days": "30"})
    assert created.status_code == 200 and created["Cache-Control"] == "no-store"
    token = ApiToken.objects.get(user=engineer)
    body = created.content.decode()
    secret = body.split('id="new-token-secret"', 1)[1].split('value="', 1)[1].split('"', 1)[0]
    assert token.digest == token_digest(secret) and token.expires_at is not None
    # Shown once: the page afterwards lists the prefix only.
    again = client.get("/account/tokens/").content.decode()
    assert secret not in again and token.prefix in again

    rotated = client.post(f"/account/tokens/{token.pk}/rotate/").content.decode()
    new_secret = rotated.split('id="new-token-secret"', 1)[1].split('value="', 1)[1].split('"', 1)[0]
    assert new_secret != secret
    assert _token_client(secret).get("/api/projects/").status_code == 401
    assert _token_client(new_secret).get("/api/projects/").status_code == 200

    assert client.post(f"/account/tokens/{token.pk}/revoke/").status_code == 302
    assert _token_client(new_secret).get("/api/projects/").status_code == 401
    assert client.post("/account/tokens/new/", {"expires_in_days": "9999"}).status_code == 422


def test_the_tokens_page_is_for_leads_and_engineers_only(client, project):
    annotator = member(project, Role.ANNOTATOR)
    client.force_login(annotator)
    assert 'id="api-tokens"' not in client.get("/").content.decode()
    assert client.get("/account/tokens/").status_code == 403
    assert client.post("/account/tokens/new/", {"name": "x"}).status_code == 403
    assert not ApiToken.objects.filter(user=annotator).exists()
    other = member(project, Role.LEAD)
    token, _ = token_issue(user=member(project, Role.ENGINEER))
    client.force_login(other)
    assert client.post(f"/account/tokens/{token.pk}/revoke/").status_code == 404
    assert client.post(f"/account/tokens/{token.pk}/rotate/").status_code == 404
    client.logout()
    assert client.get("/account/tokens/").status_code == 302


# ------------------------------------------------------------------------------------------------
# Production settings
# ------------------------------------------------------------------------------------------------

def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("DJANGO_SETTINGS_MODULE", "DJANGO_SECRET_KEY", "DJANGO_ALLOW_ASYNC_UNSAFE")}
    env.update(extra)
    return env


def _python(code: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=_env(**env), capture_output=True, text=True,
                          timeout=120)


def test_check_deploy_passes_without_warnings_in_production():
    run = subprocess.run([sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"], cwd=ROOT,
                         env=_env(DJANGO_SETTINGS_MODULE="config.settings.production", DJANGO_SECRET_KEY=STRONG_KEY),
                         capture_output=True, text=True, timeout=120)
    output = run.stdout + run.stderr
    assert run.returncode == 0, output
    assert "WARNINGS" not in output and "security.W" not in output
    assert "System check identified no issues" in output


def test_production_refuses_missing_or_weak_secret_keys():
    code = """
import json, os, sys
from django.core.exceptions import ImproperlyConfigured
out = {}
for key in ["", "short-key", "a" * 60, "ababababab" * 6, "django-insecure-" + "q7Zr1x" * 10, sys.argv[1]]:
    os.environ["DJANGO_SECRET_KEY"] = key
    for name in ("config.settings.production", "config.settings.base"):
        sys.modules.pop(name, None)
    try:
        __import__("config.settings.production")
        out[key] = "ok"
    except ImproperlyConfigured as exc:
        out[key] = "refused: " + str(exc)
print(json.dumps(out))
"""
    run = subprocess.run([sys.executable, "-c", code, STRONG_KEY], cwd=ROOT, env=_env(), capture_output=True,
                         text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    result = json.loads(run.stdout)
    assert result.pop(STRONG_KEY) == "ok"
    assert len(result) == 5 and all(v.startswith("refused") for v in result.values()), result


def test_wsgi_asgi_and_celery_default_to_the_production_settings():
    for name in ("wsgi.py", "asgi.py", "celery.py"):
        text = (ROOT / "config" / name).read_text()
        assert 'setdefault("DJANGO_SETTINGS_MODULE", "config.settings.production")' in text, name
    code = ("import os, config.celery; a = os.environ['DJANGO_SETTINGS_MODULE']; import config.wsgi, config.asgi; "
            "from django.conf import settings; print(a, settings.SETTINGS_MODULE, settings.DEBUG)")
    run = _python(code, DJANGO_SECRET_KEY=STRONG_KEY)
    assert run.returncode == 0, run.stderr
    assert run.stdout.split() == ["config.settings.production", "config.settings.production", "False"]
    # And without a key the production default refuses to start.
    run = _python("import config.wsgi")
    assert run.returncode != 0 and "DJANGO_SECRET_KEY must be set" in run.stderr
    # Development keeps its own settings explicitly.
    assert "export DJANGO_SETTINGS_MODULE=config.settings.local" in (ROOT / "scripts" / "run.sh").read_text()
    assert 'setdefault("DJANGO_SETTINGS_MODULE", "config.settings.local")' in (ROOT / "manage.py").read_text()


def test_the_schema_and_docs_need_a_login_in_production():
    code = """
import django
django.setup()
from django.contrib.auth import get_user_model
from django.test import Client
from drf_spectacular.views import SpectacularAPIView
from rest_framework.test import APIRequestFactory, force_authenticate
client = Client(HTTP_HOST="localhost")
print(client.get("/api/schema/", secure=True).status_code, client.get("/api/docs/", secure=True).status_code,
      client.get("/api/schema/").status_code)
request = APIRequestFactory().get("/api/schema/", secure=True, HTTP_HOST="localhost")
force_authenticate(request, user=get_user_model()(username="someone"))
print(SpectacularAPIView.as_view()(request).status_code)
"""
    run = _python(code, DJANGO_SETTINGS_MODULE="config.settings.production", DJANGO_SECRET_KEY=STRONG_KEY)
    assert run.returncode == 0, run.stderr
    anonymous, authenticated = run.stdout.strip().splitlines()
    schema, docs, plain_http = anonymous.split()
    assert schema in ("401", "403") and docs in ("401", "403")
    assert plain_http == "301"  # plain HTTP is redirected to HTTPS
    assert authenticated == "200"


def test_the_schema_stays_public_outside_production(client):
    assert client.get("/api/schema/").status_code == 200
