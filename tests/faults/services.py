"""Real parts for the fault tests, each private to the test that starts it, on ports chosen free at
run time (so xdist processes never share one): a PostgreSQL cluster (initdb into a temporary
folder, as scripts/services.sh does), a redis-server, a gunicorn web process and a Celery worker
process. Never the shared PostgreSQL on :54329 or Redis on :63799: other tests run against those."""
from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(predicate, *, timeout: float, what: str, log: Path | None = None, every: float = 0.2):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(every)
    tail = f"\nlog {log}:\n{log.read_text()[-4000:]}" if log is not None and log.exists() else ""
    raise AssertionError(f"timed out after {timeout} s waiting for {what}{tail}")


def base_env(**extra: str) -> dict[str, str]:
    """This environment without the shared services' URLs, plus `extra`."""
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL",
                                                              "CELERY_RESULT_BACKEND", "DJANGO_SETTINGS_MODULE")}
    env.update({"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "PYTHONUNBUFFERED": "1"})
    env.update(extra)
    return env


def stop_group(process: subprocess.Popen, sig: int = signal.SIGTERM, wait: float = 20) -> None:
    if process.poll() is None:
        try:
            os.killpg(process.pid, sig)
            process.wait(timeout=wait)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)
        except ProcessLookupError:
            pass


# ---------------------------------------------------------------- PostgreSQL


def _pg_bin() -> Path | None:
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parts[-3]))
    return found[-1].parent if found else None


@dataclass
class PrivateCluster:
    bin: Path
    data: Path
    port: int
    log: Path

    def _as_postgres(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        # PostgreSQL refuses to run as root.
        prefix = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        return subprocess.run([*prefix, *args], check=check, capture_output=True, text=True, timeout=60)

    def start(self) -> None:
        self._as_postgres(str(self.bin / "pg_ctl"), "-D", str(self.data), "-l", str(self.log), "-w", "start", "-o",
                          f"-p {self.port} -k {self.data} -c listen_addresses=127.0.0.1 -c max_connections=200 "
                          "-c fsync=off -c full_page_writes=off")

    def stop(self, mode: str = "immediate") -> None:
        """`immediate` is a crash as far as clients can tell: every connection dropped, no checkpoint,
        recovery from the WAL on the next start."""
        self._as_postgres(str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "stop", check=False)

    def url(self, db: str) -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/{db}"

    def createdb(self, name: str, *, schema_from: dict | None = None) -> str:
        """A database; with `schema_from` (a Django settings_dict), a copy of that database
        (pg_dump: seconds, where `migrate` from nothing takes ten)."""
        subprocess.run([str(self.bin / "createdb"), "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", name],
                       check=True, capture_output=True, timeout=60)
        if schema_from is not None:
            dump = subprocess.run(
                [str(self.bin / "pg_dump"), "-h", schema_from["HOST"], "-p", str(schema_from["PORT"]),
                 "-U", schema_from["USER"], "--no-owner", "--no-privileges", schema_from["NAME"]],
                check=True, capture_output=True, timeout=120,
                env={**os.environ, "PGPASSWORD": schema_from["PASSWORD"] or ""})
            subprocess.run([str(self.bin / "psql"), "-q", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1", "-p",
                            str(self.port), "-U", "postgres", name], input=dump.stdout, check=True,
                           capture_output=True, timeout=120)
        return self.url(name)


@contextmanager
def private_postgres() -> Iterator[PrivateCluster]:
    import pytest

    pg_bin = _pg_bin()
    if pg_bin is None or (os.geteuid() == 0 and shutil.which("runuser") is None):
        pytest.skip("PostgreSQL server binaries are not installed (scripts/services.sh installs them)")
    home = Path(tempfile.mkdtemp(prefix="prefstudio-faults-pg-", dir="/tmp"))
    home.chmod(0o755)
    data = home / "data"
    data.mkdir()
    if os.geteuid() == 0:
        shutil.chown(data, "postgres", "postgres")
    cluster = PrivateCluster(bin=pg_bin, data=data, port=free_port(), log=home / "server.log")
    if os.geteuid() == 0:
        cluster.log.touch()
        shutil.chown(cluster.log, "postgres", "postgres")
    try:
        cluster._as_postgres(str(pg_bin / "initdb"), "-D", str(data), "-U", "postgres", "-A", "trust",
                             "--no-instructions", "--no-sync")
        cluster.start()
        yield cluster
    finally:
        cluster.stop()
        shutil.rmtree(home, ignore_errors=True)


# ---------------------------------------------------------------- Redis


@dataclass
class PrivateRedis:
    port: int
    folder: Path
    process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        # No persistence, like scripts/services.sh: a restart loses every message it held.
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", str(self.folder)],
            stdout=open(self.folder / "redis.log", "a"), stderr=subprocess.STDOUT, start_new_session=True)
        wait_until(self.ping, timeout=10, what="redis-server to answer")

    def ping(self) -> bool:
        import redis

        try:
            return bool(redis.Redis(port=self.port, socket_connect_timeout=0.5).ping())
        except redis.RedisError:
            return False

    def stop(self) -> None:
        if self.process is not None:
            stop_group(self.process, signal.SIGKILL)  # as a crash: nothing saved, nothing flushed
            self.process = None


@contextmanager
def private_redis() -> Iterator[PrivateRedis]:
    import pytest

    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed (scripts/services.sh installs it)")
    folder = Path(tempfile.mkdtemp(prefix="prefstudio-faults-redis-"))
    server = PrivateRedis(port=free_port(), folder=folder)
    try:
        server.start()
        yield server
    finally:
        server.stop()
        shutil.rmtree(folder, ignore_errors=True)


# ---------------------------------------------------------------- web and worker processes


def database_url(settings_dict: dict) -> str:
    db = settings_dict
    return f"postgres://{db['USER']}:{db['PASSWORD'] or ''}@{db['HOST']}:{db['PORT']}/{db['NAME']}"


@contextmanager
def web_server(env: dict[str, str], log: Path, *, threads: int = 16) -> Iterator[str]:
    """gunicorn (what production serves with) on a free port; yields its base URL."""
    port = free_port()
    out = open(log, "w")
    process = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "config.wsgi:application", "--bind", f"127.0.0.1:{port}", "--workers", "1",
         "--threads", str(threads), "--timeout", "60", "--graceful-timeout", "5", "--access-logfile", "-"],
        cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: process.poll() is not None or http("GET", base + "/accounts/login/").status == 200,
                   timeout=30, what="gunicorn to serve", log=log)
        assert process.poll() is None, log.read_text()[-4000:]
        yield base
    finally:
        stop_group(process)
        out.close()


@contextmanager
def worker_process(env: dict[str, str], log: Path, *, queue: str) -> Iterator[subprocess.Popen]:
    """`celery -A config worker -Q <queue> --concurrency 1` (prefork: a parent and one pool process)
    in its own process group, so the test can SIGKILL the whole of it."""
    out = open(log, "a")
    process = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "config", "worker", "-Q", queue, "--concurrency", "1",
         "--pool", "prefork", "-n", f"faults-{uuid.uuid4().hex[:8]}@%h", "--loglevel", "INFO",
         "--without-gossip", "--without-mingle", "--without-heartbeat"],
        cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        yield process
    finally:
        stop_group(process)
        out.close()


class TableLock:
    """LOCK TABLE on a PostgreSQL connection of its own, held until release(): a job that needs the
    table waits there, so a fault can be made to land in the middle of it, not by timing."""

    def __init__(self, settings_dict: dict, table: str, mode: str):
        import psycopg

        self.conn = psycopg.connect(database_url(settings_dict).replace("postgres://", "postgresql://"))
        self.conn.execute(f"LOCK TABLE {table} IN {mode} MODE")

    def release(self) -> None:
        if not self.conn.closed:
            self.conn.rollback()
            self.conn.close()


# ---------------------------------------------------------------- HTTP, as a client would


@dataclass
class Answer:
    status: int  # 0: no HTTP answer at all (refused, reset, timed out)
    body: bytes = b""
    headers: dict = field(default_factory=dict)

    def json(self):
        return json.loads(self.body) if self.body else None


def http(method: str, url: str, *, body: dict | None = None, token: str = "", cookie: str = "",
         timeout: float = 15) -> Answer:
    headers = {"Accept": "application/json"} if "/api/" in url else {}
    if token:
        headers["Authorization"] = f"Token {token}"
    if cookie:
        headers["Cookie"] = cookie
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        headers["Content-Type"] = "application/json"
    request = urllib.request.Request(url, data=data, headers=headers, method=method)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return Answer(response.status, response.read(), dict(response.headers))
    except urllib.error.HTTPError as exc:
        return Answer(exc.code, exc.read(), dict(exc.headers))
    except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
        return Answer(0)


def multipart(url: str, *, token: str, filename: str, content: bytes) -> Answer:
    boundary = uuid.uuid4().hex
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{filename}\"\r\n"
            "Content-Type: application/jsonl\r\n\r\n").encode() + content + f"\r\n--{boundary}--\r\n".encode()
    request = urllib.request.Request(url, data=body, method="POST", headers={
        "Authorization": f"Token {token}", "Content-Type": f"multipart/form-data; boundary={boundary}"})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return Answer(response.status, response.read(), dict(response.headers))
    except urllib.error.HTTPError as exc:
        return Answer(exc.code, exc.read(), dict(exc.headers))
    except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
        return Answer(0)


def submit_url(base: str, assignment: dict) -> str:
    """Where a judgment on a leased assignment is posted (assignments are addressed by their opaque
    handle; the one place to change if that address changes)."""
    return f"{base}/api/assignments/{assignment['assignment']}/submit/"


def jsonl(rows: list[dict]) -> bytes:
    return "".join(json.dumps(row) + "\n" for row in rows).encode()


def labelled_project(items: int = 6):
    """A project with `items` comparisons, each judged once (enough to freeze and to analyse)."""
    from tests.factories import ItemFactory, ProjectFactory, label_all, member

    project = ProjectFactory(overlap=1)
    ItemFactory.create_batch(items, project=project)
    label_all(project, [member(project)])
    return project
