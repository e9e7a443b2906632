from __future__ import annotations

import pytest
from django.db import connection

from .services import TableLock


@pytest.fixture
def table_lock(transactional_db):
    """table_lock(table, mode) -> TableLock. Every lock is let go at the end of the test, even a
    failed one, before the database is emptied (which would otherwise wait on it for ever)."""
    held: list[TableLock] = []

    def take(table: str, mode: str) -> TableLock:
        held.append(TableLock(connection.settings_dict, table, mode))
        return held[-1]

    yield take
    for lock in held:
        lock.release()
