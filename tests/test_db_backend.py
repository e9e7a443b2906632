"""The PostgreSQL engine (config/db/base.py): server-side binding for prepared statements, without
its 65,535-parameter limit, and with the options DATABASE_URL gives kept."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.db import connection, transaction

from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

ROOT = Path(__file__).resolve().parent.parent


def _postgres_with_binding():
    if connection.vendor != "postgresql":
        pytest.skip("a PostgreSQL setting")
    assert connection.settings_dict["OPTIONS"].get("server_side_binding") is True


def test_a_statement_over_the_protocol_parameter_limit_runs_on_both_cursor_kinds():
    """The ORM puts one parameter per id in `pk__in` (and in a cascade delete's related lookups):
    70,000 of them are past what one bound statement may carry, and still work, through a plain
    cursor and through `.iterator()`'s named cursor; so does a big delete."""
    _postgres_with_binding()
    users = UserFactory.create_batch(3)
    ids = [u.pk for u in users] + list(range(10**9, 10**9 + 70_000))
    model = get_user_model()
    assert model.objects.filter(pk__in=ids).count() == 3
    with transaction.atomic():
        streamed = list(model.objects.filter(pk__in=ids).values_list("pk", flat=True).iterator(chunk_size=2))
    assert sorted(streamed) == sorted(u.pk for u in users)
    assert model.objects.filter(pk__in=ids[1:]).delete()[0] >= 2
    assert list(model.objects.filter(pk__in=ids).values_list("pk", flat=True)) == [users[0].pk]


def test_ordinary_statements_are_still_bound_on_the_server_and_prepared():
    _postgres_with_binding()
    model = get_user_model()
    for _ in range(3):
        list(model.objects.filter(username="someone-not-there"))
    with connection.cursor() as cursor:
        cursor.execute("SELECT statement FROM pg_prepared_statements")
        prepared = [row[0] for row in cursor.fetchall()]
    assert any('"username" = $1' in text for text in prepared), prepared


def test_options_in_database_url_are_kept():
    env = {**os.environ, "DATABASE_URL": "postgres://u:p@127.0.0.1:5/db?sslmode=require&connect_timeout=7",
           "DJANGO_SETTINGS_MODULE": "config.settings.base"}
    out = subprocess.run(
        [sys.executable, "-c", "import json; from django.conf import settings; "
         "d = settings.DATABASES['default']; print(json.dumps([d['ENGINE'], d['OPTIONS']]))"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=60, check=True)
    engine, options = json.loads(out.stdout)
    assert engine == "config.db"
    assert options["sslmode"] == "require" and options["connect_timeout"] == 7
    assert options["server_side_binding"] is True and options["prepare_threshold"] == 2
    off = subprocess.run(
        [sys.executable, "-c", "import json; from django.conf import settings; "
         "d = settings.DATABASES['default']; print(json.dumps([d['ENGINE'], d['OPTIONS']]))"],
        cwd=ROOT, env={**env, "DB_PREPARED_STATEMENTS": "0"}, capture_output=True, text=True, timeout=60, check=True)
    assert json.loads(off.stdout) == ["django.db.backends.postgresql", {"sslmode": "require", "connect_timeout": 7}]
