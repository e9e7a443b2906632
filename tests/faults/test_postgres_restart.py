"""PostgreSQL restarted (an immediate stop: every connection dropped, recovery from the WAL) while
16 annotators submit through a real gunicorn process: no acknowledged judgment is lost, clients
get at worst a 503 with Retry-After (never a 500), pages too, and the same web process serves
again once the database is back, with no restart of its own.

The restarted PostgreSQL is a private cluster on a free port (never the shared one other tests
use); it gets a copy of this test database's schema."""
from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter

import psycopg
import pytest
from django.db import connection

from .services import ROOT, base_env, http, private_postgres, submit_url, wait_until, web_server

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.faults]

ANNOTATORS = 16
ITEMS = 40
OVERLAP = 3
RESTART_AFTER = 30  # acknowledged submits before the database goes down
OUTAGE_SECONDS = 2.0


class Annotators:
    """Threads that label until the queue is empty, as a careful client does: a 503 is retried
    after Retry-After, a dropped connection after a moment, and a submit is retried with the same
    client_token until it is acknowledged (200 or 201)."""

    def __init__(self, base: str, slug: str, tokens: list[str]):
        self.base, self.slug, self.tokens = base, slug, tokens
        self.acknowledged: list[int] = []
        self.statuses: Counter = Counter()
        self.unexpected: list[str] = []
        self.lock = threading.Lock()
        self.deadline = time.monotonic() + 50

    def _answered(self, method: str, url: str, token: str, body: dict | None = None):
        while time.monotonic() < self.deadline:
            answer = http(method, url, body=body, token=token)
            with self.lock:
                self.statuses[answer.status] += 1
            if answer.status == 503:
                assert answer.headers.get("Retry-After"), "a 503 says when to come back"
                time.sleep(float(answer.headers["Retry-After"]))
            elif answer.status == 0 or answer.status >= 500:
                time.sleep(0.3)
            else:
                return answer
        raise AssertionError(f"{method} {url} never answered")

    def work(self, token: str) -> None:
        try:
            while True:
                leased = self._answered("POST", f"{self.base}/api/projects/{self.slug}/next/", token)
                if leased.status == 204:
                    return
                if leased.status != 200:
                    self.unexpected.append(f"next: {leased.status} {leased.body[:200]!r}")
                    return
                payload = {"choice": "left", "strength": "clear", "rationale": "Left answers the question.",
                           "time_spent_ms": 3000, "client_token": str(uuid.uuid4())}
                answer = self._answered("POST", submit_url(self.base, leased.json()), token, payload)
                if answer.status not in (200, 201):
                    self.unexpected.append(f"submit: {answer.status} {answer.body[:200]!r}")
                    return
                with self.lock:
                    self.acknowledged.append(answer.json()["id"])
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            self.unexpected.append(repr(exc))

    def start(self) -> list[threading.Thread]:
        threads = [threading.Thread(target=self.work, args=(t,), daemon=True) for t in self.tokens]
        for thread in threads:
            thread.start()
        return threads


def test_postgres_restarted_while_16_annotators_submit_loses_no_acknowledged_judgment(tmp_path):
    with private_postgres() as pg:
        url = pg.createdb("prefstudio", schema_from=connection.settings_dict)
        env = base_env(DJANGO_SETTINGS_MODULE="tests.faults.live_settings", DATABASE_URL=url,
                       DB_UNAVAILABLE_RETRY_AFTER_SECONDS="1")
        seeded = json.loads(subprocess.run(
            [sys.executable, "-m", "tests.faults.seed", str(ITEMS), str(ANNOTATORS), str(OVERLAP)],
            cwd=ROOT, env=env, check=True, capture_output=True, text=True, timeout=60).stdout)
        log = tmp_path / "web.log"
        with web_server(env, log) as base:
            page = f"{base}/p/{seeded['slug']}/lead/"
            assert http("GET", page, cookie=seeded["lead_cookie"]).status == 200
            annotators = Annotators(base, seeded["slug"], seeded["tokens"])
            threads = annotators.start()
            wait_until(lambda: len(annotators.acknowledged) >= RESTART_AFTER, timeout=30,
                       what="the first submits", log=log)

            pg.stop("immediate")
            before = len(annotators.acknowledged)
            down_page = http("GET", page, cookie=seeded["lead_cookie"])
            down_api = http("GET", f"{base}/api/projects/{seeded['slug']}/", token=seeded["lead_token"])
            time.sleep(OUTAGE_SECONDS)
            pg.start()

            for thread in threads:
                thread.join(timeout=60)
            after_page = http("GET", page, cookie=seeded["lead_cookie"])

        with psycopg.connect(url.replace("postgres://", "postgresql://")) as db:
            stored = [row[0] for row in db.execute("SELECT id FROM annotation_judgment")]
            per_item = Counter(row[0] for row in db.execute("SELECT item_id FROM annotation_judgment"))

    acknowledged = set(annotators.acknowledged)
    counts = {"acknowledged": len(annotators.acknowledged), "stored": len(stored),
              "acknowledged_but_missing": len(acknowledged - set(stored)),
              "stored_never_acknowledged": len(set(stored) - acknowledged),
              "acknowledged_after_restart": len(annotators.acknowledged) - before,
              "responses": dict(sorted(annotators.statuses.items()))}
    print(f"\n[faults] PostgreSQL restarted under {ANNOTATORS} annotators: {json.dumps(counts)}")

    assert annotators.unexpected == [] and not any(t.is_alive() for t in threads)
    assert (down_page.status, down_api.status) == (503, 503), (down_page, down_api)
    assert down_page.headers.get("Retry-After") == "1" and down_api.json()["retryable"] is True
    assert after_page.status == 200, "the same web process serves again, with no restart"
    assert counts["acknowledged_but_missing"] == 0, "no acknowledged judgment is lost"
    assert counts["stored_never_acknowledged"] == 0
    assert len(annotators.acknowledged) == len(acknowledged) == ITEMS * OVERLAP, "all work done, nothing twice"
    assert max(per_item.values()) == OVERLAP
    assert counts["acknowledged_after_restart"] > 0
    assert annotators.statuses[500] == 0 and annotators.statuses[0] == 0, "retryable answers only: 503, not 500"
