#!/usr/bin/env python
"""Load test of the labelling API: next -> submit, against gunicorn + PostgreSQL on this machine.

    bash scripts/services.sh up && source var/services.env
    .venv/bin/python bench/annotate_load.py                      # full run (~4 min)
    .venv/bin/python bench/annotate_load.py --duration 5 --human-duration 15 --items 5000   # quick look

What it does, all against 127.0.0.1 only:
  1. creates a fresh project (new slug every run), its annotators (bench-annotator-NNNN, reused
     between runs), their API tokens and --items comparison items (bulk JSONL import);
  2. counts the SQL queries of one next and one submit (in process, Django test client);
  3. starts gunicorn itself on a free port (gthread, 4 workers x 4 threads by default), waits for
     it to answer, and always stops it;
  4. closed loop: for each C in --clients, C annotators each loop next -> submit as fast as they
     can for --duration seconds (after --warmup seconds that are not measured);
  5. human pace: for each N in --human-annotators, N annotators each doing next -> submit on average every
     --think seconds (exponential think time, exponential initial offset: a Poisson stream per
     annotator), for --human-duration seconds;
  6. prints a table (labels/s, p50/p99 of next and of submit in ms, errors by status, CPU split
     between the load generator, gunicorn and PostgreSQL, CPU and WAL bytes per label) and writes it as JSON to
     bench/results/annotate_load-<timestamp>.json.

The load generator is a single asyncio process (aiohttp, one connection pool sized to the
clients). On a 2-core machine it competes with gunicorn and PostgreSQL for CPU; the CPU split in
the table shows how much it took, and how much other work on the machine took (see
bench/README.md).
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
import warnings
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import urlencode, urlsplit

REPO = Path(__file__).resolve().parent.parent
RESULTS_DIR = REPO / "bench" / "results"
USERNAME_PREFIX = "bench-annotator-"

RATIONALES = [
    "Left follows the instruction more closely and is more accurate.",
    "Right is clearer, better organised and answers the real question.",
    "Both are fine; neither is meaningfully better than the other one.",
    "Both contain factual errors and ignore part of what the user asked.",
    "The chosen one is concise, correct and keeps an appropriate tone.",
]
CHOICES = ["left", "right", "tie", "both_bad"]
STRENGTHS = ["slight", "clear", "strong"]


# --------------------------------------------------------------------------------------------
# Environment and fixture (Django, in this process, before any load is generated)
# --------------------------------------------------------------------------------------------


def load_env() -> dict[str, str]:
    """Environment for Django here and for gunicorn: var/services.env fills in what is unset."""
    services_env = REPO / "var" / "services.env"
    if services_env.exists():
        for line in services_env.read_text().splitlines():
            line = line.strip()
            if line.startswith("export "):
                line = line[len("export "):]
            if "=" in line and not line.startswith("#"):
                key, value = line.split("=", 1)
                os.environ.setdefault(key.strip(), value.strip().strip('"').strip("'"))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.production")
    # Production settings refuse a weak key; over plain HTTP on this machine, no HTTPS redirect.
    os.environ.setdefault("DJANGO_SECRET_KEY", secrets.token_urlsafe(64))
    os.environ.setdefault("DJANGO_SECURE_COOKIES", "0")
    os.environ.setdefault("DJANGO_SECURE_SSL_REDIRECT", "0")
    # The load is many clients from one address as fast as they can: not what the throttles are for.
    os.environ.setdefault("API_THROTTLE_ANON", "100000000/min")
    os.environ.setdefault("API_THROTTLE_USER", "100000000/min")
    os.environ.setdefault("DJANGO_ALLOWED_HOSTS", "127.0.0.1,localhost")
    if not os.environ.get("DATABASE_URL", "").startswith("postgres"):
        sys.exit(
            "DATABASE_URL must point at PostgreSQL: run `bash scripts/services.sh up && "
            "source var/services.env` first."
        )
    return dict(os.environ)


def django_setup() -> None:
    sys.path.insert(0, str(REPO))
    import django

    # whitenoise warns when collectstatic has not run; the API does not serve static files.
    warnings.filterwarnings("ignore", message="No directory at")

    django.setup()


def prepare_database() -> None:
    """A fresh (or older) database gets the schema first, and the pages their static manifest:
    the bench prepares what it measures."""
    from django.core.management import call_command

    t0 = time.perf_counter()
    call_command("migrate", interactive=False, verbosity=0)
    # Production settings serve pages through the static manifest: the label page needs it.
    call_command("collectstatic", interactive=False, verbosity=0)
    print(f"database: migrated (and static files collected) in {time.perf_counter() - t0:.1f}s", flush=True)


def browser_sessions(users) -> dict[str, str]:
    """A logged-in session per user (their passwords are unusable: no login form to go through),
    as Django's login() would store it; username -> session key."""
    from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY
    from django.contrib.sessions.backends.db import SessionStore

    keys = {}
    for user in users:
        store = SessionStore()
        store[SESSION_KEY] = str(user.pk)
        store[BACKEND_SESSION_KEY] = "django.contrib.auth.backends.ModelBackend"
        store[HASH_SESSION_KEY] = user.get_session_auth_hash()
        store.create()
        keys[user.username] = store.session_key
    return keys


def _write_items_jsonl(path: Path, count: int, response_chars: int, seed: int) -> None:
    rng = random.Random(seed)
    words = (
        "the model answer explains why a careful reader would check each claim against the "
        "source and keep the reply short clear and polite while covering what was asked"
    ).split()

    def text(n_chars: int, tag: str) -> str:
        out, size = [tag], len(tag)
        while size < n_chars:
            w = rng.choice(words)
            out.append(w)
            size += len(w) + 1
        return " ".join(out)

    domains = ["general", "coding", "math", "safety"]
    with open(path, "w") as fh:
        for i in range(count):
            line = {
                "prompt": text(160, f"Prompt {i}:"),
                "responses": [text(response_chars, f"[A{i}]"), text(response_chars, f"[B{i}]")],
                "domain": domains[i % len(domains)],
            }
            fh.write(json.dumps(line) + "\n")


def setup_fixture(args) -> dict:
    """Fresh project, annotators (members of it) with tokens, and items. Returns what the load
    generator needs: the slug and one token per annotator."""
    from django.contrib.auth import get_user_model
    from django.db import connection, transaction

    from annotation.models import ApiToken, Membership, token_secret_new
    from annotation.services.imports import import_file
    from annotation.services.projects import project_create

    User = get_user_model()
    t0 = time.perf_counter()
    slug = args.slug or f"bench-{datetime.now():%Y%m%d-%H%M%S}-{uuid.uuid4().hex[:4]}"
    n_users = max([*args.clients, *args.human_annotators, 1])
    usernames = [f"{USERNAME_PREFIX}{i:04d}" for i in range(n_users)]

    with transaction.atomic():
        project = project_create(
            slug=slug, name=f"Bench {slug}", overlap=args.overlap, min_rationale_chars=20
        )
        existing = set(User.objects.filter(username__in=usernames).values_list("username", flat=True))
        new_users = []
        for name in usernames:
            if name not in existing:
                u = User(username=name)
                u.set_unusable_password()  # no PBKDF2 per user: setup stays fast
                new_users.append(u)
        User.objects.bulk_create(new_users, batch_size=1000)
        users = list(User.objects.filter(username__in=usernames).order_by("username"))
        Membership.objects.bulk_create(
            [Membership(project=project, user=u, role="annotator") for u in users], batch_size=1000
        )
        # Only digests are stored: each run gives the bench users fresh tokens and keeps the secrets.
        ApiToken.objects.filter(user__in=users, name="bench").delete()
        tokens, rows = {}, []
        for u in users:
            tokens[u.username] = secret = token_secret_new()
            row = ApiToken(user=u, name="bench")
            row.set_secret(secret)
            rows.append(row)
        ApiToken.objects.bulk_create(rows, batch_size=1000)
    sessions = browser_sessions(users) if "htmx" in args.modes else {}
    t_users = time.perf_counter() - t0

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "items.jsonl"
        _write_items_jsonl(path, args.items, args.response_chars, seed=args.seed)
        result = import_file(project=project, path=path)
    if not result.ok:
        raise RuntimeError(f"import failed: {result.errors[:3]}")
    with connection.cursor() as cur:
        cur.execute("ANALYZE annotation_item; ANALYZE annotation_assignment; ANALYZE annotation_judgment")
    t_total = time.perf_counter() - t0
    print(
        f"setup: project {slug}: {len(users)} annotators ({len(new_users)} new) in {t_users:.1f}s, "
        f"{result.items_created} items imported; {t_total:.1f}s in all",
        flush=True,
    )
    return {
        "slug": slug,
        "project_id": project.pk,
        "tokens": [tokens[name] for name in usernames],
        "sessions": [sessions[name] for name in usernames] if sessions else [],
        "items": result.items_created,
        "setup_s": round(t_total, 2),
    }


def count_queries(slug: str) -> dict:
    """SQL statements of one next and one submit in steady state (BEGIN/COMMIT included), in
    process (Django test client), for a probe user who is also an annotator of the bench project.
    tests/annotation/test_query_counts.py holds the budget."""
    from django.contrib.auth import get_user_model
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    from annotation.models import Project
    from annotation.services.projects import membership_add
    from annotation.services.tokens import token_issue

    user, _ = get_user_model().objects.get_or_create(username="bench-probe")
    membership_add(project=Project.objects.get(slug=slug), user=user, role="annotator")
    _, secret = token_issue(user=user, name="bench-probe")
    client = Client(HTTP_HOST="127.0.0.1", HTTP_AUTHORIZATION=f"Token {secret}")
    # Steady state: the first contact makes the standing, writes the token's last use and sweeps.
    warm = client.post(f"/api/projects/{slug}/next/").json()["assignment"]
    client.post(f"/api/assignments/{warm}/submit/", data=json.dumps(_submit_body(random.Random(1))),
                content_type="application/json")
    out: dict = {}
    with CaptureQueriesContext(connection) as ctx:
        r = client.post(f"/api/projects/{slug}/next/")
    out["next"] = {"status": r.status_code, "queries": len(ctx.captured_queries),
                   "sql": [q["sql"][:160] for q in ctx.captured_queries]}
    assignment = r.json()["assignment"]
    with CaptureQueriesContext(connection) as ctx:
        r = client.post(
            f"/api/assignments/{assignment}/submit/",
            # "left": a both-bad choice also files bad cases (more statements, by design).
            data=json.dumps(dict(_submit_body(random.Random(0)), choice="left", strength="clear")),
            content_type="application/json",
        )
    out["submit"] = {"status": r.status_code, "queries": len(ctx.captured_queries),
                     "sql": [q["sql"][:160] for q in ctx.captured_queries]}
    print(f"queries per request: next={out['next']['queries']} submit={out['submit']['queries']}", flush=True)
    return out


def cleanup_project(slug: str) -> None:
    """Delete the bench project and everything in it (judgments PROTECT their assignment, so
    they go first)."""
    from django.db import transaction

    from annotation.models import Judgment, JudgmentRevision, Project

    with transaction.atomic():
        project = Project.objects.get(slug=slug)
        JudgmentRevision.objects.filter(judgment__project=project).delete()
        Judgment.objects.filter(project=project).delete()
        Project.objects.filter(pk=project.pk).update(current_spec=None)
        project.delete()
    print(f"cleanup: project {slug} deleted", flush=True)


# --------------------------------------------------------------------------------------------
# gunicorn
# --------------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _probe(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
            s.sendall(b"GET /api/projects/ HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
            return s.recv(16).startswith(b"HTTP/1.")
    except OSError:
        return False


@contextmanager
def gunicorn(args, env: dict[str, str]):
    port = free_port()
    cmd = [
        str(Path(sys.executable).with_name("gunicorn")),
        "config.wsgi:application",
        "--bind", f"127.0.0.1:{port}",
        "--workers", str(args.workers),
        "--worker-class", args.worker_class,
        "--backlog", "4096",
        "--timeout", "60",
        "--graceful-timeout", "5",
        "--log-level", "warning",
        "--error-logfile", "-",
    ]
    if args.worker_class == "gthread":
        cmd += ["--threads", str(args.threads), "--worker-connections", "2000", "--keep-alive", str(args.keep_alive)]
    log_path = Path(tempfile.gettempdir()) / f"annotate_load-gunicorn-{port}.log"
    log = open(log_path, "w")
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    print(f"gunicorn: pid {proc.pid} on 127.0.0.1:{port} ({args.worker_class}, {args.workers} workers"
          + (f" x {args.threads} threads" if args.worker_class == "gthread" else "") + f"); log {log_path}",
          flush=True)
    try:
        deadline = time.monotonic() + 60
        while not _probe(port):
            if proc.poll() is not None:
                raise RuntimeError(f"gunicorn exited with {proc.returncode}; see {log_path}:\n{log_path.read_text()[-2000:]}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"gunicorn did not answer within 60 s; see {log_path}")
            time.sleep(0.2)
        yield {"base": f"http://127.0.0.1:{port}", "pid": proc.pid, "log": str(log_path)}
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)  # the master stops its workers
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)  # its own session: only gunicorn's processes
                proc.wait()
        log.close()
        print(f"gunicorn: stopped (exit {proc.returncode})", flush=True)


# --------------------------------------------------------------------------------------------
# CPU accounting from /proc: who used the 2 cores during a phase
# --------------------------------------------------------------------------------------------

_CLK = os.sysconf("SC_CLK_TCK")


def _proc_cpu(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / _CLK  # utime + stime
    except (OSError, IndexError, ValueError):
        return 0.0


def _descendants(root: int) -> set[int]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as fh:
                    ppid = int(fh.read().rsplit(")", 1)[1].split()[1])
                children.setdefault(ppid, []).append(int(entry))
            except (OSError, IndexError, ValueError):
                pass
    out, todo = {root}, [root]
    while todo:
        for child in children.get(todo.pop(), []):
            out.add(child)
            todo.append(child)
    return out


def _postgres_pids(dbname: str) -> set[int]:
    """PostgreSQL processes that work for us: backends of our database and the shared background
    processes (WAL writer, checkpointer, ...). Backends of other databases (a test suite running
    beside us, say) are someone else's load."""
    pids = set()
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/comm") as fh:
                    if fh.read().strip() not in ("postgres", "postmaster"):
                        continue
                with open(f"/proc/{entry}/cmdline", "rb") as fh:
                    words = fh.read().replace(b"\0", b" ").decode(errors="replace").split()
            except OSError:
                continue
            # A backend reads "postgres: <user> <database> <host(port)> <state>".
            is_backend = len(words) >= 4 and words[0] == "postgres:" and "(" in words[3]
            if not is_backend or words[2] == dbname:
                pids.add(int(entry))
    return pids


def _machine_busy() -> float:
    with open("/proc/stat") as fh:
        parts = [int(x) for x in fh.readline().split()[1:9]]
    return (sum(parts) - parts[3] - parts[4]) / _CLK  # everything but idle and iowait


class CpuMeter:
    """Cores used on average during a phase by the load generator, gunicorn (master and
    workers), our PostgreSQL, and everything else on the machine (`other`).

    A background thread re-reads /proc every half second and keeps the last CPU time seen per
    process, so a process that exits mid-phase (Django drops a PostgreSQL connection after
    CONN_MAX_AGE and opens a new backend) still counts up to its last sample."""

    GROUPS = ("client", "gunicorn", "postgres", "machine")

    def __init__(self, gunicorn_pid: int, dbname: str, interval: float = 0.5) -> None:
        self.gunicorn_pid, self.dbname, self.interval = gunicorn_pid, dbname, interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _sample(self) -> dict[str, dict[int, float]]:
        return {
            "client": {0: sum(os.times()[:2])},
            "gunicorn": {p: _proc_cpu(p) for p in _descendants(self.gunicorn_pid)},
            "postgres": {p: _proc_cpu(p) for p in _postgres_pids(self.dbname)},
            "machine": {0: _machine_busy()},
        }

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            for group, per_pid in self._sample().items():
                self._last[group].update(per_pid)

    def __enter__(self) -> "CpuMeter":
        self._t0 = time.monotonic()
        self._first = self._sample()
        self._last = {g: dict(v) for g, v in self._first.items()}
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="cpu-meter", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        for group, per_pid in self._sample().items():
            self._last[group].update(per_pid)
        self.wall = time.monotonic() - self._t0

    def split(self) -> dict:
        out = {}
        for g in self.GROUPS:
            # A process first seen mid-phase started in it: all of its time counts.
            used = sum(cpu - self._first[g].get(pid, 0.0) for pid, cpu in self._last[g].items())
            out[g] = round(max(0.0, used) / self.wall, 2)
        out["other"] = round(max(0.0, out["machine"] - out["client"] - out["gunicorn"] - out["postgres"]), 2)
        return out


class WalMeter:
    """What a phase cost PostgreSQL in write-ahead log: the WAL position moved over the phase (warm-up
    included) over the judgments stored in the project over the same span. Everything the labels
    caused counts (commit records, full-page images after a checkpoint, the work deferred after the
    response); so does any other writer on the cluster, which the quiet check before each phase keeps
    out. Two statements at each end of a phase, on a connection of its own."""

    def __init__(self, dsn: str, slug: str) -> None:
        self.dsn, self.slug = dsn.replace("postgres://", "postgresql://", 1), slug

    def _read(self) -> tuple[str, int]:
        import psycopg

        with psycopg.connect(self.dsn, autocommit=True) as conn:
            lsn = conn.execute("SELECT pg_current_wal_lsn()").fetchone()[0]
            judged = conn.execute(
                "SELECT count(*) FROM annotation_judgment j JOIN annotation_project p ON p.id = j.project_id "
                "WHERE p.slug = %s", [self.slug]).fetchone()[0]
        return lsn, judged

    def __enter__(self) -> "WalMeter":
        self._start = self._read()
        return self

    def __exit__(self, *exc) -> None:
        import psycopg

        end = self._read()
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            self.bytes = int(conn.execute("SELECT pg_wal_lsn_diff(%s, %s)", [end[0], self._start[0]]).fetchone()[0])
        self.labels = end[1] - self._start[1]

    def per_label(self) -> int | None:
        return round(self.bytes / self.labels) if self.labels else None


def machine_load(seconds: float = 2.0) -> float:
    """Cores busy on average over the next `seconds` (this process sleeps meanwhile)."""
    b0, t0 = _machine_busy(), time.monotonic()
    time.sleep(seconds)
    return (_machine_busy() - b0) / (time.monotonic() - t0)


def wait_until_quiet(max_wait: float, threshold: float) -> float:
    """Other work on the machine (a test suite, a build) skews every figure: wait up to
    `max_wait` seconds for it to be quiet. Returns the load last seen, in cores."""
    deadline = time.monotonic() + max_wait
    load = machine_load()
    while load > threshold and time.monotonic() < deadline:
        print(f"  machine busy: {load:.2f} of {os.cpu_count()} cores used by other work; waiting ...", flush=True)
        time.sleep(3)
        load = machine_load()
    if load > threshold:
        print(f"  WARNING: {load:.2f} cores are used by other work: figures will be low", flush=True)
    return round(load, 2)


# --------------------------------------------------------------------------------------------
# Load generator
# --------------------------------------------------------------------------------------------


def _submit_body(rng: random.Random) -> dict:
    choice = rng.choice(CHOICES)
    return {
        "choice": choice,
        "strength": rng.choice(STRENGTHS) if choice in ("left", "right") else "",
        "dimensions": {},
        "rationale": rng.choice(RATIONALES),
        "time_spent_ms": rng.randint(2_000, 60_000),
        "client_token": str(uuid.uuid4()),
    }


class Stats:
    """Latency samples and outcomes, kept only for requests that end inside the window."""

    def __init__(self) -> None:
        self.window = (float("inf"), float("inf"))
        self.lat: dict[str, list[float]] = {"next": [], "submit": []}
        self.status: dict[str, dict[str, int]] = {"next": {}, "submit": {}}
        self.labels = 0
        self.exhausted = 0

    def in_window(self, t: float) -> bool:
        return self.window[0] <= t < self.window[1]

    def record(self, kind: str, started: float, ended: float, outcome: str) -> None:
        if not self.in_window(ended):
            return
        self.lat[kind].append(ended - started)
        self.status[kind][outcome] = self.status[kind].get(outcome, 0) + 1


async def _post(session, url: str, headers: dict, body: bytes | None):
    async with session.post(url, data=body, headers=headers) as resp:
        payload = await resp.read()
        return resp.status, payload


async def _timed_post(session, url: str, headers: dict, body: bytes | None, stats: Stats, what: str):
    """POST and record its latency under `what`: (status, payload, end time), or None when the
    request itself failed (recorded under the exception's name)."""
    import aiohttp

    start = time.perf_counter()
    try:
        status, payload = await _post(session, url, headers, body)
    except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
        stats.record(what, start, time.perf_counter(), type(exc).__name__)
        return None
    end = time.perf_counter()
    stats.record(what, start, end, str(status))
    return status, payload, end


async def one_cycle(session, base: str, slug: str, token: str, rng: random.Random, stats: Stats) -> str:
    """next -> submit for one annotator. Returns 'ok', 'exhausted' or 'error'."""
    headers = {"Authorization": f"Token {token}"}
    answer = await _timed_post(session, f"{base}/api/projects/{slug}/next/", headers, None, stats, "next")
    if answer is None:
        return "error"
    status, payload, t1 = answer
    if status == 204:
        if stats.in_window(t1):
            stats.exhausted += 1
        return "exhausted"
    if status != 200:
        return "error"
    assignment = json.loads(payload)["assignment"]
    body = json.dumps(_submit_body(rng)).encode()
    sheaders = {**headers, "Content-Type": "application/json"}
    answer = await _timed_post(session, f"{base}/api/assignments/{assignment}/submit/", sheaders, body, stats,
                               "submit")
    if answer is None:
        return "error"
    status, _, t3 = answer
    if status in (200, 201):
        if stats.in_window(t3):
            stats.labels += 1
        return "ok"
    return "error"


_SUBMIT_URL = re.compile(r'hx-post="([^"]*/label/[^"/]+/submit/)"')
_CLIENT_TOKEN = re.compile(r'name="client_token" value="([^"]+)"')


async def page_cycle(session, base: str, slug: str, credential: dict, rng: random.Random, stats: Stats) -> str:
    """The annotator's real path, the htmx label page: the first item once (label/next/, what the
    page posts on load), then each submit answers with the next item rendered (one request a
    label). Recorded as "next" (the first item) and "submit" (submit + next rendered).
    `credential` holds the session key and the form state."""
    headers = {"Cookie": f"sessionid={credential['session']}; csrftoken={credential['csrf']}",
               "X-CSRFToken": credential["csrf"], "HX-Request": "true"}
    if not credential.get("submit_url"):
        start = time.perf_counter()
        try:
            # What the page's #work element posts on load: the next item, rendered.
            async with session.post(f"{base}/p/{slug}/label/next/", headers=headers) as resp:
                status, html = resp.status, (await resp.read()).decode()
        except (aiohttp_errors(), asyncio.TimeoutError) as exc:
            stats.record("next", start, time.perf_counter(), type(exc).__name__)
            return "error"
        stats.record("next", start, time.perf_counter(), str(status))
        if status != 200:
            return "error"
        if not _page_state(credential, html):
            return "exhausted"
    body = {k: v for k, v in _submit_body(rng).items() if k != "dimensions"}
    body["client_token"] = credential["client_token"]
    form_headers = {**headers, "Content-Type": "application/x-www-form-urlencoded"}
    answer = await _timed_post(session, base + credential["submit_url"], form_headers,
                               urlencode(body).encode(), stats, "submit")
    if answer is None:
        return "error"
    status, payload, ended = answer
    if status != 200:
        credential["submit_url"] = ""  # start again from the page
        return "error"
    if stats.in_window(ended):
        stats.labels += 1
    if not _page_state(credential, payload.decode()):
        if stats.in_window(ended):
            stats.exhausted += 1
        return "exhausted"
    return "ok"


def _page_state(credential: dict, html: str) -> bool:
    """The next submit URL and client token from a rendered item; False when none was rendered."""
    url, token = _SUBMIT_URL.search(html), _CLIENT_TOKEN.search(html)
    credential["submit_url"] = url.group(1) if url else ""
    credential["client_token"] = token.group(1) if token else ""
    return bool(url and token)


def aiohttp_errors():
    import aiohttp

    return aiohttp.ClientError


def _session(limit: int):
    import aiohttp

    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=limit, limit_per_host=limit, ttl_dns_cache=None, use_dns_cache=True),
        timeout=aiohttp.ClientTimeout(total=30),
        cookie_jar=aiohttp.DummyCookieJar(),  # token auth only: no session cookies to keep
        auto_decompress=False,
        skip_auto_headers=("User-Agent",),
    )


async def closed_loop(*, base: str, slug: str, tokens: list, warmup: float, duration: float, seed: int,
                      cycle=one_cycle) -> Stats:
    stats = Stats()
    stop = asyncio.Event()
    async with _session(len(tokens)) as session:

        async def client(i: int) -> None:
            rng = random.Random(seed * 100_003 + i)
            errors_in_row = 0
            while not stop.is_set():
                outcome = await cycle(session, base, slug, tokens[i], rng, stats)
                if outcome == "exhausted":
                    return
                errors_in_row = errors_in_row + 1 if outcome == "error" else 0
                if errors_in_row:
                    await asyncio.sleep(min(0.01 * errors_in_row, 0.5))

        tasks = [asyncio.create_task(client(i)) for i in range(len(tokens))]
        now = time.perf_counter()
        stats.window = (now + warmup, now + warmup + duration)
        await asyncio.sleep(warmup + duration)
        stop.set()  # each client finishes its cycle (no lease left dangling), then stops
        await asyncio.gather(*tasks)
    return stats


async def human_pace(*, base: str, slug: str, tokens: list, think: float, warmup: float, duration: float, seed: int,
                     cycle=one_cycle) -> Stats:
    stats = Stats()
    stop = asyncio.Event()
    async with _session(len(tokens)) as session:

        async def annotator(i: int) -> None:
            rng = random.Random(seed * 100_003 + i)
            # Exponential offset: each annotator is a Poisson stream from the first second on.
            delay = rng.expovariate(1 / think)
            while True:
                # Checked first: an annotator behind schedule (delay 0, as all are on a saturated
                # server) would otherwise never see the stop, since wait_for with timeout 0 times
                # out before stop.wait() runs, and the phase would never end.
                if stop.is_set():
                    return
                try:
                    await asyncio.wait_for(stop.wait(), timeout=delay)
                    return
                except asyncio.TimeoutError:
                    pass
                started = time.perf_counter()
                if await cycle(session, base, slug, tokens[i], rng, stats) == "exhausted":
                    return
                delay = max(0.0, rng.expovariate(1 / think) - (time.perf_counter() - started))

        tasks = [asyncio.create_task(annotator(i)) for i in range(len(tokens))]
        now = time.perf_counter()
        stats.window = (now + warmup, now + warmup + duration)
        await asyncio.sleep(warmup + duration)
        stop.set()
        await asyncio.gather(*tasks)
    return stats


# --------------------------------------------------------------------------------------------
# Reporting
# --------------------------------------------------------------------------------------------


def _pct(samples: list[float], q: float) -> float | None:
    if not samples:
        return None
    s = sorted(samples)
    return round(1000 * s[min(len(s) - 1, int(q * len(s)))], 1)


def summarize(name: str, clients: int, stats: Stats, duration: float, cpu: dict, quiet: float,
              expected: float | None = None) -> dict:
    errors = {}
    for kind in ("next", "submit"):
        for outcome, n in stats.status[kind].items():
            if outcome not in ("200", "201", "204"):
                errors[f"{kind}:{outcome}"] = n

    def lat(kind: str) -> dict:
        s = stats.lat[kind]
        return {"p50": _pct(s, 0.50), "p90": _pct(s, 0.90), "p99": _pct(s, 0.99), "max": _pct(s, 1.0),
                "mean": round(1000 * sum(s) / len(s), 1) if s else None}

    return {
        "mode": name,
        "clients": clients,
        "duration_s": duration,
        "labels": stats.labels,
        "labels_per_s": round(stats.labels / duration, 1),
        "expected_labels_per_s": expected,
        "requests_per_s": round((len(stats.lat["next"]) + len(stats.lat["submit"])) / duration, 1),
        "next_ms": lat("next"),
        "submit_ms": lat("submit"),
        "statuses": stats.status,
        "errors": errors,
        "exhausted_204": stats.exhausted,
        "cpu_cores": cpu,
        # CPU per label: gunicorn's and PostgreSQL's core-seconds over the labels made.
        "cpu_ms_per_label": {g: round(1000 * cpu[g] * duration / stats.labels, 2) if stats.labels else None
                             for g in ("gunicorn", "postgres")},
        "other_load_before_cores": quiet,
    }


def print_table(rows: list[dict]) -> None:
    head = (f"{'mode':<18}{'clients':>8}{'labels/s':>10}{'next p50':>10}{'next p99':>10}"
            f"{'sub p50':>10}{'sub p99':>10}  {'errors':<16}{'cores: client gunicorn pg other':>32}"
            f"{'ms CPU/label: web pg':>22}{'WAL B/label':>13}")
    print()
    print(head)
    print("-" * len(head))
    for r in rows:
        errs = ",".join(f"{k}={v}" for k, v in r["errors"].items()) or "0"
        if r["exhausted_204"]:
            errs += f" 204x{r['exhausted_204']}"
        c = r["cpu_cores"]
        cpu = f"{c['client']:.2f}   {c['gunicorn']:.2f}   {c['postgres']:.2f}  {c['other']:.2f}"
        label = f"{r['labels_per_s']:.1f}" + (f"/{r['expected_labels_per_s']:g}" if r["expected_labels_per_s"] else "")
        per = r["cpu_ms_per_label"]
        per_label = f"{per['gunicorn'] or 0:.1f}  {per['postgres'] or 0:.1f}"
        print(f"{r['mode']:<18}{r['clients']:>8}{label:>10}"
              f"{r['next_ms']['p50'] or 0:>10.1f}{r['next_ms']['p99'] or 0:>10.1f}"
              f"{r['submit_ms']['p50'] or 0:>10.1f}{r['submit_ms']['p99'] or 0:>10.1f}  {errs:<16}{cpu:>32}"
              f"{per_label:>22}{r.get('wal_bytes_per_label') or 0:>13}")
    print("latencies in ms at the client; htmx: 'next' is the first item, 'submit' is submit + the next item")
    print("rendered; human pace shows achieved/offered labels/s; cores: average use during")
    print("the phase (other: the rest of the machine, e.g. another test suite; above ~0.2 the figures are skewed);")
    print("WAL B/label: write-ahead log bytes over the phase per judgment stored in it")


# --------------------------------------------------------------------------------------------
# Optional: py-spy profile of the gunicorn workers during one phase
# --------------------------------------------------------------------------------------------


@contextmanager
def py_spy(enabled: bool, pid: int, out: Path):
    """`py-spy record` of gunicorn and its workers (collapsed stacks). It takes CPU itself, so
    throughput under it is lower: profile runs are for where the time goes, not for figures."""
    if not enabled:
        yield None
        return
    exe = shutil.which("py-spy")
    if exe is None:
        print("  py-spy not found on PATH: no profile", flush=True)
        yield None
        return
    out.parent.mkdir(parents=True, exist_ok=True)
    proc = subprocess.Popen([exe, "record", "--pid", str(pid), "--subprocesses", "--rate", "200",
                             "--gil", "--format", "raw", "--output", str(out), "--nonblocking"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        yield out
    finally:
        proc.send_signal(signal.SIGINT)  # py-spy writes its file on SIGINT
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def summarize_profile(path: Path, top: int = 25) -> list[tuple[str, float]]:
    """Inclusive share of samples per frame of the project's own code, DRF and Django, from
    py-spy's collapsed stacks ("frame;frame;... count")."""
    total, inclusive = 0, {}
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        n = int(count)
        total += n
        seen = set()
        for frame in stack.split(";"):
            if frame in seen:
                continue
            seen.add(frame)
            inclusive[frame] = inclusive.get(frame, 0) + n
    if not total:
        return []
    interesting = ("/work/main/", "annotation/", "rest_framework/", "django/", "psycopg/", "gunicorn/")
    rows = sorted(((f, n / total) for f, n in inclusive.items() if any(k in f for k in interesting)),
                  key=lambda x: -x[1])
    return rows[:top]


# --------------------------------------------------------------------------------------------


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--clients", type=lambda s: [int(x) for x in s.split(",") if x], default=[8, 64],
                   help="closed-loop client counts, comma separated (default 8,64; '' skips closed loop)")
    p.add_argument("--duration", type=float, default=20, help="measured seconds per closed-loop run (default 20)")
    p.add_argument("--warmup", type=float, default=3, help="unmeasured seconds before each run (default 3)")
    p.add_argument("--human-annotators", type=lambda s: [int(x) for x in s.split(",") if x and int(x)], default=[1000],
                   help="human-pace annotator counts, comma separated (default 1000; 0 or '' skips human pace)")
    p.add_argument("--human-duration", type=float, default=60, help="measured seconds of human pace (default 60)")
    p.add_argument("--think", type=float, default=10, help="mean seconds between an annotator's labels (default 10)")
    p.add_argument("--items", type=int, default=30000, help="items imported into the fresh project (default 30000)")
    p.add_argument("--overlap", type=int, default=3, help="judgments per item, k (default 3)")
    p.add_argument("--response-chars", type=int, default=600, help="length of each response text (default 600)")
    p.add_argument("--workers", type=int, default=4, help="gunicorn workers (default 4: 2 per core)")
    p.add_argument("--worker-class", choices=["sync", "gthread"], default="gthread",
                   help="gunicorn worker class (default gthread: 10-20%% more labels/s than sync here, see bench/README.md)")
    p.add_argument("--threads", type=int, default=4, help="threads per gthread worker (default 4)")
    p.add_argument("--keep-alive", type=int, default=5, help="gthread keep-alive seconds (default 5)")
    p.add_argument("--wait-quiet", type=float, default=120,
                   help="before each phase, wait up to this many seconds for other work on the machine to stop (default 120)")
    p.add_argument("--quiet-threshold", type=float, default=0.2, help="cores of other work counted as quiet (default 0.2)")
    p.add_argument("--slug", default="", help="project slug (default: a fresh bench-<timestamp>-<hex>)")
    p.add_argument("--modes", type=lambda s: [m for m in s.split(",") if m], default=["api", "htmx"],
                   help="paths to load: api (token, next + submit), htmx (session, the label page: submit answers "
                        "with the next item rendered); default api,htmx")
    p.add_argument("--no-query-count", action="store_true", help="skip counting SQL queries per request")
    p.add_argument("--py-spy", action="store_true",
                   help="profile gunicorn with py-spy (on PATH) during each phase; lowers the figures")
    p.add_argument("--cleanup", action="store_true", help="delete the bench project at the end")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--output", default="", help="JSON path (default bench/results/annotate_load-<timestamp>.json)")
    return p.parse_args(argv)


def git_state() -> dict:
    """The code measured: other people may be changing it while this runs."""
    def git(*cmd: str) -> str:
        try:
            return subprocess.run(["git", *cmd], cwd=REPO, capture_output=True, text=True, timeout=10).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return ""
    return {"commit": git("rev-parse", "HEAD"), "modified": git("status", "--porcelain").splitlines()}


def _raise_interrupt(*_) -> None:
    raise KeyboardInterrupt


def main(argv=None) -> int:
    args = parse_args(argv)
    # A SIGTERM to this script unwinds like Ctrl-C: gunicorn is stopped either way.
    signal.signal(signal.SIGTERM, _raise_interrupt)
    env = load_env()
    dbname = urlsplit(env["DATABASE_URL"]).path.lstrip("/")
    django_setup()
    started_at = datetime.now(timezone.utc)
    code = git_state()
    stamp = f"{started_at:%Y%m%d-%H%M%S}"
    prepare_database()
    fixture = setup_fixture(args)
    queries = None if args.no_query_count else count_queries(fixture["slug"])
    from django.db import connections

    connections.close_all()  # the load generator itself never touches the database

    tokens = fixture["tokens"]
    slug = fixture["slug"]
    rows: list[dict] = []
    profiles: dict[str, list] = {}
    try:
        with gunicorn(args, env) as server:
            phases = [(path, "closed-loop", c) for path in args.modes for c in args.clients]
            phases += [(path, "human-pace", n) for path in args.modes for n in args.human_annotators]
            for path, loop, n in phases:
                # API: a token each, next + submit. htmx: a browser session each, the label page
                # once, then submit answering with the next item rendered.
                if path == "api":
                    credentials, cycle = tokens[:n], one_cycle
                else:
                    credentials = [{"session": key, "csrf": secrets.token_hex(16)} for key in fixture["sessions"][:n]]
                    cycle = page_cycle
                mode = f"{loop} {path}"
                if loop == "closed-loop":
                    print(f"closed loop ({path}): {n} clients, {args.warmup:g}s warm-up + {args.duration:g}s", flush=True)
                    run = closed_loop(base=server["base"], slug=slug, tokens=credentials, warmup=args.warmup,
                                      duration=args.duration, seed=args.seed + n, cycle=cycle)
                    duration, expected = args.duration, None
                else:
                    print(f"human pace ({path}): {n} annotators, one label per ~{args.think:g}s each, "
                          f"{args.warmup:g}s warm-up + {args.human_duration:g}s", flush=True)
                    run = human_pace(base=server["base"], slug=slug, tokens=credentials, think=args.think,
                                     warmup=args.warmup, duration=args.human_duration, seed=args.seed + 7 + n,
                                     cycle=cycle)
                    duration, expected = args.human_duration, round(n / args.think, 1)
                quiet = wait_until_quiet(args.wait_quiet, args.quiet_threshold)
                prof_path = RESULTS_DIR / f"annotate_load-{stamp}-{loop}-{path}-{n}.pyspy.txt"
                with py_spy(args.py_spy, server["pid"], prof_path) as prof:
                    with WalMeter(env["DATABASE_URL"], slug) as wal, CpuMeter(server["pid"], dbname) as meter:
                        stats = asyncio.run(run)
                    cpu = meter.split()
                rows.append(summarize(mode, n, stats, duration, cpu, quiet, expected))
                rows[-1]["wal_bytes_per_label"] = wal.per_label()
                r = rows[-1]
                print(f"  {r['labels_per_s']} labels/s; next p50/p99 {r['next_ms']['p50']}/{r['next_ms']['p99']} ms, "
                      f"submit p50/p99 {r['submit_ms']['p50']}/{r['submit_ms']['p99']} ms; errors {r['errors'] or 0}; "
                      f"cores {cpu}", flush=True)
                if prof is not None and prof.exists():
                    profiles[f"{loop}-{path}-{n}"] = summarize_profile(prof)
                    print(f"  profile: {prof}")
                    for frame, share in profiles[f"{loop}-{path}-{n}"][:15]:
                        print(f"    {100 * share:5.1f}%  {frame[:150]}")
    finally:
        if rows:
            print_table(rows)
            RESULTS_DIR.mkdir(parents=True, exist_ok=True)
            out = Path(args.output) if args.output else RESULTS_DIR / f"annotate_load-{stamp}.json"
            out.write_text(json.dumps({
                "started_at": started_at.isoformat(),
                "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
                "code": code,
                "config": vars(args),
                "fixture": {k: v for k, v in fixture.items() if k not in ("tokens", "sessions")},
                "queries_per_request": queries,
                "results": rows,
                "profiles": profiles or None,
            }, indent=2, default=str))
            print(f"results: {out}")
        if args.cleanup:
            try:
                cleanup_project(slug)
            except Exception as exc:  # noqa: BLE001 - the figures are written; say what is left behind
                print(f"cleanup of {slug} failed ({exc.__class__.__name__}: {exc}); delete it by hand", file=sys.stderr)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        print("interrupted (gunicorn stopped)", file=sys.stderr)
        sys.exit(130)
