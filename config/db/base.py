"""Django's PostgreSQL backend (psycopg 3) with server-side binding, for prepared statements, and
one guard: PostgreSQL's protocol carries at most 65,535 parameters per statement. With Django's
default client-side binding there is no such limit, and the ORM does not split what exceeds it (a
cascade delete of a large project filters related rows by every collected id; `pk__in` over a big
held-out split). A statement with more parameters is merged client-side first, exactly as the
default cursors do, and sent without parameters; every other statement is bound server-side and
prepared after its second run (config/settings/base.py). Writing this beats patching call sites:
the ORM builds such statements in places the code never sees (tests/test_db_backend.py)."""
from __future__ import annotations

from django.db.backends.postgresql.base import DatabaseWrapper as PostgresDatabaseWrapper
from django.db.backends.postgresql.base import ServerBindingCursor
from psycopg import ClientCursor, ServerCursor

MAX_PARAMETERS = 65_535


def _fits(cursor, query, params):
    if params is not None and len(params) > MAX_PARAMETERS:
        return ClientCursor(cursor.connection).mogrify(query, params), None
    return query, params


class BindingCursor(ServerBindingCursor):
    def execute(self, query, params=None, **kwargs):
        return super().execute(*_fits(self, query, params), **kwargs)


class NamedBindingCursor(ServerCursor):
    """The cursor `.iterator()` declares on the server."""

    def execute(self, query, params=None, **kwargs):
        return super().execute(*_fits(self, query, params), **kwargs)


class DatabaseWrapper(PostgresDatabaseWrapper):
    def get_connection_params(self):
        params = super().get_connection_params()
        if params.get("cursor_factory") is ServerBindingCursor:
            params["cursor_factory"] = BindingCursor
        return params

    def get_new_connection(self, conn_params):
        connection = super().get_new_connection(conn_params)
        if conn_params.get("cursor_factory") is BindingCursor:
            connection.server_cursor_factory = NamedBindingCursor
        return connection
