"""The embedded default (SQLite, `make run`): API reads keep answering while a large import
writes its one transaction in another process. In the rollback journal they waited for the
writer (4 s at 8,000 lines) and failed "database is locked" once it held the lock past the busy
timeout; in WAL mode (config/settings/base.py) readers never wait for the writer."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from .services import ROOT, base_env

pytestmark = [pytest.mark.faults]

LINES = 5000


def test_api_reads_never_fail_while_a_large_import_writes_to_sqlite(tmp_path):
    env = base_env(DJANGO_SETTINGS_MODULE="config.settings.local", PREFSTUDIO_VAR_DIR=str(tmp_path),
                   DJANGO_DEBUG="0")
    run = subprocess.run([sys.executable, "-m", "tests.faults.sqlite_reads", str(LINES)], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-4000:]
    seen = json.loads(run.stdout.strip().splitlines()[-1])
    print(f"\n[faults] SQLite reads during a {LINES}-line import: {json.dumps(seen)}")
    assert seen["journal_mode"] == "wal"
    assert (seen["import"], seen["items_created"], seen["writer_exit"]) == ("succeeded", LINES, 0)
    assert seen["reads_while_writing"] >= 30, "the reads overlapped the write transaction"
    assert set(seen["statuses"]) == {"200"}, seen["failures"]
    # Reads never queue behind the writer (they did for seconds without WAL); generous for a busy machine.
    assert seen["slowest_read_s"] < 3, seen
