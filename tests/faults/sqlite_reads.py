"""API reads against the embedded SQLite database while a large import writes, each in its own
process, as under `make run` (web server and worker). Run with settings on SQLite
(config.settings.local) and PREFSTUDIO_VAR_DIR pointing at an empty folder:

    python -m tests.faults.sqlite_reads LINES        migrate, seed, import LINES lines while reading
    python -m tests.faults.sqlite_reads write JOB    (the writer process: what the worker does)

Prints {"statuses": {code: n}, "reads_while_writing": n, ...} as JSON on its last line."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections import Counter

import django


def write(job_id: int) -> None:
    from annotation.services.imports import import_job_run

    import_job_run(job_id=job_id)


def read_while_importing(lines: int) -> dict:
    from django.contrib.auth import get_user_model
    from django.core.files.uploadedfile import SimpleUploadedFile
    from django.core.management import call_command
    from django.db import connection
    from django.test import Client
    from annotation.services.tokens import token_issue

    from annotation.models import ImportJob, Membership, Project, Role
    from annotation.services.imports import import_job_create

    call_command("migrate", verbosity=0)
    project = Project.objects.create(slug="big", name="Big import", overlap=1)
    lead = get_user_model().objects.create_user("lead", password="lead-pass-123")
    Membership.objects.create(project=project, user=lead, role=Role.LEAD)
    token = token_issue(user=lead)[1]
    body = "".join(json.dumps({"prompt": f"Question {i}?", "responses": [f"a{i}" * 20, f"b{i}" * 20],
                               "domain": "general"}) + "\n" for i in range(lines))
    job = import_job_create(project=project, upload=SimpleUploadedFile("big.jsonl", body.encode()), created_by=lead)
    journal_mode = connection.cursor().execute("PRAGMA journal_mode").fetchone()[0]
    connection.close()

    client = Client(HTTP_HOST="localhost", HTTP_AUTHORIZATION=f"Token {token}", raise_request_exception=False)
    # Once the URLs and apps are loaded, a read's time is the database's.
    assert client.get(f"/api/projects/{project.slug}/").status_code == 200
    writer = subprocess.Popen([sys.executable, "-m", "tests.faults.sqlite_reads", "write", str(job.pk)],
                              env=os.environ.copy())
    statuses: Counter = Counter()
    seen: Counter = Counter()
    slowest = 0.0
    failures: list[str] = []
    while writer.poll() is None:
        for url in (f"/api/imports/{job.pk}/", f"/api/projects/{project.slug}/",
                    f"/api/projects/{project.slug}/judgments/"):
            started = time.perf_counter()
            response = client.get(url)
            took = time.perf_counter() - started
            slowest = max(slowest, took)
            statuses[response.status_code] += 1
            if response.status_code != 200:
                failures.append(f"{url}: {response.status_code} {response.content[:300]!r}")
            elif url.startswith("/api/imports/"):
                state = response.json()
                seen[state["phase"] or state["status"]] += 1
        time.sleep(0.02)  # a client polling, not a loop starving the writer of the CPU
    job = ImportJob.objects.get(pk=job.pk)
    return {"journal_mode": journal_mode, "lines": lines, "import": job.status, "items_created": job.items_created,
            "statuses": dict(statuses), "reads": sum(statuses.values()),
            "reads_while_writing": seen["writing"] * 3, "phases_seen": dict(seen),
            "slowest_read_s": round(slowest, 3), "failures": failures[:5], "writer_exit": writer.returncode}


if __name__ == "__main__":
    django.setup()
    if sys.argv[1] == "write":
        write(int(sys.argv[2]))
    else:
        print(json.dumps(read_while_importing(int(sys.argv[1]))))
