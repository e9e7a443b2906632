"""The embedded default (SQLite, `make run`) serves the annotator's loop too. The hot path writes
some statements by hand and runs the lease as one statement on PostgreSQL only (the suite's
database); this runs next, submit and the label page on a fresh SQLite database in a process of
its own, so a PostgreSQL-only shortcut cannot break `make run` unnoticed."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from .services import ROOT, base_env

pytestmark = [pytest.mark.faults]


def test_next_submit_and_the_label_page_work_on_sqlite(tmp_path):
    env = base_env(DJANGO_SETTINGS_MODULE="config.settings.local", PREFSTUDIO_VAR_DIR=str(tmp_path), DJANGO_DEBUG="0")
    run = subprocess.run([sys.executable, "-m", "tests.faults.sqlite_hot_path"], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=180)
    assert run.returncode == 0, run.stderr[-4000:]
    seen = json.loads(run.stdout.strip().splitlines()[-1])
    assert seen["statuses"] == [200, 201, 200, 201, 200, 201, 200], seen
    assert seen["judgments"] == 3 and seen["page_has_form"], seen
