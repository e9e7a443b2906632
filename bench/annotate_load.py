#!/usr/bin/env python
"""Load test of the labelling API: next -> submit, against gunicorn + PostgreSQL on this machine.

    bash scripts/services.sh up && source var/services.env
    .venv/bin/python bench/annotate_load.py                      # full run (~3 min)
    .venv/bin/python bench/annotate_load.py --duration 5 --human-duration 15   # quick look

What it does, all against 127.0.0.1 only:
  1. creates a fresh project (new slug every run), its annotators (bench-annotator-NNNN, reused
     between runs), their API tokens and --items comparison items (bulk JSONL import);
  2. counts the SQL queries of one next and one submit (in process, Django test client);
  3. starts gunicorn itself on a free port, waits for it to answer, and always stops it;
  4. closed loop: for each C in --clients, C annotators each loop next -> submit as fast as they
     can for --duration seconds (after --warmup seconds that are not measured);
  5. human pace: --human-annotators annotators, each doing next -> submit on average every
     --think seconds (exponential think time, exponential initial offset: a Poisson stream per
     annotator), for --human-duration seconds;
  6. prints a table (labels/s, p50/p99 of next and of submit in ms, errors by status, CPU split
     between the load generator, gunicorn and PostgreSQL) and writes it as JSON to
     bench/results/annotate_load-<timestamp>.json.

The load generator is a single asyncio process (aiohttp, one connection pool sized to the
clients). On a 2-core machine it competes with gunicorn and PostgreSQL for CPU; the CPU split in
the table shows how much it took.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path

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
    os.environ.setdefault("DJANGO_SECRET_KEY", "bench")
    os.environ.setdefault("DJANGO_SECURE_COOKIES", "0")
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

    django.setup()


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
    from rest_framework.authtoken.models import Token

    from annotation.models import Membership
    from annotation.services.imports import import_file
    from annotation.services.projects import project_create

    User = get_user_model()
    t0 = time.perf_counter()
    slug = args.slug or f"bench-{datetime.now():%Y%m%d-%H%M%S}-{uuid.uuid4().hex[:4]}"
    n_users = max([*args.clients, args.human_annotators, 1])
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
        have_token = set(Token.objects.filter(user__in=users).values_list("user_id", flat=True))
        Token.objects.bulk_create(
            [Token(user=u, key=Token.generate_key()) for u in users if u.pk not in have_token],
            batch_size=1000,
        )
        tokens = dict(Token.objects.filter(user__in=users).values_list("user__username", "key"))
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
        "items": result.items_created,
        "setup_s": round(t_total, 2),
    }


def count_queries(slug: str) -> dict:
    """SQL queries of one next and one submit, in process (Django test client), for a probe user
    who is also an annotator of the bench project."""
    from django.contrib.auth import get_user_model
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext
    from rest_framework.authtoken.models import Token

    from annotation.models import Project
    from annotation.services.projects import membership_add

    user, _ = get_user_model().objects.get_or_create(username="bench-probe")
    membership_add(project=Project.objects.get(slug=slug), user=user, role="annotator")
    token, _ = Token.objects.get_or_create(user=user)
    client = Client(HTTP_HOST="127.0.0.1", HTTP_AUTHORIZATION=f"Token {token.key}")
    out: dict = {}
    with CaptureQueriesContext(connection) as ctx:
        r = client.post(f"/api/projects/{slug}/next/")
    out["next"] = {"status": r.status_code, "queries": len(ctx.captured_queries),
                   "sql": [q["sql"][:160] for q in ctx.captured_queries]}
    assignment = r.json()["assignment"]
    with CaptureQueriesContext(connection) as ctx:
        r = client.post(
            f"/api/assignments/{assignment}/submit/",
            data=json.dumps(_submit_body(random.Random(0))),
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


def _postgres_pids() -> set[int]:
    pids = set()
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/comm") as fh:
                    if fh.read().strip() in ("postgres", "postmaster"):
                        pids.add(int(entry))
            except OSError:
                pass
    return pids


def cpu_snapshot(gunicorn_pid: int) -> dict:
    # Postgres backends come and go (sync workers reconnect rarely; CONN_MAX_AGE keeps them), so
    # exited ones are missed: a lower bound. Total machine time comes from /proc/stat.
    with open("/proc/stat") as fh:
        parts = fh.readline().split()[1:]
    busy = sum(int(x) for i, x in enumerate(parts[:8]) if i not in (3, 4)) / _CLK  # minus idle, iowait
    return {
        "t": time.monotonic(),
        "client": sum(os.times()[:2]),
        "gunicorn": sum(_proc_cpu(p) for p in _descendants(gunicorn_pid)),
        "postgres": sum(_proc_cpu(p) for p in _postgres_pids()),
        "machine": busy,
    }


def cpu_split(before: dict, after: dict) -> dict:
    wall = after["t"] - before["t"]
    return {k: round((after[k] - before[k]) / wall, 2) for k in ("client", "gunicorn", "postgres", "machine")}


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


async def one_cycle(session, base: str, slug: str, token: str, rng: random.Random, stats: Stats) -> str:
    """next -> submit for one annotator. Returns 'ok', 'exhausted' or 'error'."""
    import aiohttp

    headers = {"Authorization": f"Token {token}"}
    t0 = time.perf_counter()
    try:
        status, payload = await _post(session, f"{base}/api/projects/{slug}/next/", headers, None)
    except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
        stats.record("next", t0, time.perf_counter(), type(exc).__name__)
        return "error"
    t1 = time.perf_counter()
    stats.record("next", t0, t1, str(status))
    if status == 204:
        if stats.in_window(t1):
            stats.exhausted += 1
        return "exhausted"
    if status != 200:
        return "error"
    assignment = json.loads(payload)["assignment"]
    body = json.dumps(_submit_body(rng)).encode()
    sheaders = {**headers, "Content-Type": "application/json"}
    t2 = time.perf_counter()
    try:
        status, _ = await _post(session, f"{base}/api/assignments/{assignment}/submit/", sheaders, body)
    except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
        stats.record("submit", t2, time.perf_counter(), type(exc).__name__)
        return "error"
    t3 = time.perf_counter()
    stats.record("submit", t2, t3, str(status))
    if status in (200, 201):
        if stats.in_window(t3):
            stats.labels += 1
        return "ok"
    return "error"


def _session(limit: int):
    import aiohttp

    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=limit, limit_per_host=limit, ttl_dns_cache=None, use_dns_cache=True),
        timeout=aiohttp.ClientTimeout(total=30),
        cookie_jar=aiohttp.DummyCookieJar(),  # token auth only: no session cookies to keep
        auto_decompress=False,
        skip_auto_headers=("User-Agent",),
    )


async def closed_loop(*, base: str, slug: str, tokens: list[str], warmup: float, duration: float, seed: int) -> Stats:
    stats = Stats()
    stop = asyncio.Event()
    async with _session(len(tokens)) as session:

        async def client(i: int) -> None:
            rng = random.Random(seed * 100_003 + i)
            errors_in_row = 0
            while not stop.is_set():
                outcome = await one_cycle(session, base, slug, tokens[i], rng, stats)
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


async def human_pace(*, base: str, slug: str, tokens: list[str], think: float, warmup: float, duration: float, seed: int) -> Stats:
    stats = Stats()
    stop = asyncio.Event()
    async with _session(len(tokens)) as session:

        async def annotator(i: int) -> None:
            rng = random.Random(seed * 100_003 + i)
            # Exponential offset: each annotator is a Poisson stream from the first second on.
            delay = rng.expovariate(1 / think)
            while True:
                try:
                    await asyncio.wait_for(stop.wait(), timeout=delay)
                    return
                except asyncio.TimeoutError:
                    pass
                started = time.perf_counter()
                if await one_cycle(session, base, slug, tokens[i], rng, stats) == "exhausted":
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


def summarize(name: str, clients: int, stats: Stats, duration: float, cpu: dict, expected: float | None = None) -> dict:
    errors = {}
    for kind in ("next", "submit"):
        for outcome, n in stats.status[kind].items():
            if outcome not in ("200", "201", "204"):
                errors[f"{kind}:{outcome}"] = n
    out = {
        "mode": name,
        "clients": clients,
        "duration_s": duration,
        "labels": stats.labels,
        "labels_per_s": round(stats.labels / duration, 1),
        "expected_labels_per_s": expected,
        "next_n": len(stats.lat["next"]),
        "submit_n": len(stats.lat["submit"]),
        "next_ms": {"p50": _pct(stats.lat["next"], 0.50), "p90": _pct(stats.lat["next"], 0.90),
                    "p99": _pct(stats.lat["next"], 0.99), "max": _pct(stats.lat["next"], 1.0)},
        "submit_ms": {"p50": _pct(stats.lat["submit"], 0.50), "p90": _pct(stats.lat["submit"], 0.90),
                      "p99": _pct(stats.lat["submit"], 0.99), "max": _pct(stats.lat["submit"], 1.0)},
        "statuses": stats.status,
        "errors": errors,
        "exhausted_204": stats.exhausted,
        "cpu_cores": cpu,
    }
    return out


def print_table(rows: list[dict]) -> None:
    head = (f"{'mode':<12}{'clients':>8}{'labels/s':>10}{'next p50':>10}{'next p99':>10}"
            f"{'sub p50':>10}{'sub p99':>10}  {'errors':<18}{'cpu: client/gunicorn/pg/total':>31}")
    print()
    print(head)
    print("-" * len(head))
    for r in rows:
        errs = ",".join(f"{k}={v}" for k, v in r["errors"].items()) or "0"
        if r["exhausted_204"]:
            errs += f" 204x{r['exhausted_204']}"
        c = r["cpu_cores"]
        cpu = f"{c['client']:.2f}/{c['gunicorn']:.2f}/{c['postgres']:.2f}/{c['machine']:.2f}"
        print(f"{r['mode']:<12}{r['clients']:>8}{r['labels_per_s']:>10.1f}"
              f"{r['next_ms']['p50'] or 0:>10.1f}{r['next_ms']['p99'] or 0:>10.1f}"
              f"{r['submit_ms']['p50'] or 0:>10.1f}{r['submit_ms']['p99'] or 0:>10.1f}  {errs:<18}{cpu:>31}")
    print("(latencies in ms, measured at the client; cpu in cores used on average during the phase)")


# --------------------------------------------------------------------------------------------


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--clients", type=lambda s: [int(x) for x in s.split(",") if x], default=[8, 64],
                   help="closed-loop client counts, comma separated (default 8,64; empty string: skip)")
    p.add_argument("--duration", type=float, default=20, help="measured seconds per closed-loop run (default 20)")
    p.add_argument("--warmup", type=float, default=3, help="unmeasured seconds before each run (default 3)")
    p.add_argument("--human-annotators", type=int, default=1000, help="human-pace annotators (default 1000; 0: skip)")
    p.add_argument("--human-duration", type=float, default=60, help="measured seconds of human pace (default 60)")
    p.add_argument("--think", type=float, default=10, help="mean seconds between an annotator's labels (default 10)")
    p.add_argument("--items", type=int, default=30000, help="items imported into the fresh project (default 30000)")
    p.add_argument("--overlap", type=int, default=3, help="judgments per item, k (default 3)")
    p.add_argument("--response-chars", type=int, default=600, help="length of each response text (default 600)")
    p.add_argument("--workers", type=int, default=4, help="gunicorn workers (default 4: 2 per core)")
    p.add_argument("--worker-class", choices=["sync", "gthread"], default="sync",
                   help="gunicorn worker class (default sync: measured faster here, see bench/README.md)")
    p.add_argument("--threads", type=int, default=4, help="threads per gthread worker (default 4)")
    p.add_argument("--keep-alive", type=int, default=5, help="gthread keep-alive seconds (default 5)")
    p.add_argument("--slug", default="", help="project slug (default: a fresh bench-<timestamp>-<hex>)")
    p.add_argument("--no-query-count", action="store_true", help="skip counting SQL queries per request")
    p.add_argument("--cleanup", action="store_true", help="delete the bench project at the end")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--output", default="", help="JSON path (default bench/results/annotate_load-<timestamp>.json)")
    return p.parse_args(argv)


def _raise_interrupt(*_) -> None:
    raise KeyboardInterrupt


def main(argv=None) -> int:
    args = parse_args(argv)
    # A SIGTERM to this script unwinds like Ctrl-C, so gunicorn is always stopped.
    signal.signal(signal.SIGTERM, _raise_interrupt)
    env = load_env()
    django_setup()
    started_at = datetime.now(timezone.utc)
    fixture = setup_fixture(args)
    queries = None if args.no_query_count else count_queries(fixture["slug"])
    from django.db import connections

    connections.close_all()  # the load generator itself never touches the database

    tokens = fixture["tokens"]
    rows: list[dict] = []
    try:
        with gunicorn(args, env) as server:
            for c in args.clients:
                print(f"closed loop: {c} clients, {args.warmup:g}s warm-up + {args.duration:g}s ...", flush=True)
                before = cpu_snapshot(server["pid"])
                stats = asyncio.run(closed_loop(base=server["base"], slug=fixture["slug"], tokens=tokens[:c],
                                                warmup=args.warmup, duration=args.duration, seed=args.seed + c))
                rows.append(summarize("closed-loop", c, stats, args.duration, cpu_split(before, cpu_snapshot(server["pid"]))))
                print(f"  {rows[-1]['labels_per_s']} labels/s", flush=True)
            if args.human_annotators:
                n = args.human_annotators
                print(f"human pace: {n} annotators, one label per ~{args.think:g}s each, "
                      f"{args.warmup:g}s warm-up + {args.human_duration:g}s ...", flush=True)
                before = cpu_snapshot(server["pid"])
                stats = asyncio.run(human_pace(base=server["base"], slug=fixture["slug"], tokens=tokens[:n],
                                               think=args.think, warmup=args.warmup, duration=args.human_duration,
                                               seed=args.seed + 7))
                rows.append(summarize("human-pace", n, stats, args.human_duration,
                                      cpu_split(before, cpu_snapshot(server["pid"])), expected=round(n / args.think, 1)))
                print(f"  {rows[-1]['labels_per_s']} labels/s", flush=True)
    finally:
        if args.cleanup:
            cleanup_project(fixture["slug"])
        if rows:
            print_table(rows)
            RESULTS_DIR.mkdir(parents=True, exist_ok=True)
            out = Path(args.output) if args.output else RESULTS_DIR / f"annotate_load-{started_at:%Y%m%d-%H%M%S}.json"
            out.write_text(json.dumps({
                "started_at": started_at.isoformat(),
                "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
                "config": {k: v for k, v in vars(args).items()},
                "fixture": {k: v for k, v in fixture.items() if k != "tokens"},
                "queries_per_request": queries,
                "results": rows,
            }, indent=2, default=str))
            print(f"results: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
