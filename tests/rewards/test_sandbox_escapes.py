"""Escapes tried from inside the verifier's sandbox (bubblewrap view, one process, size-limited
disk), each checked from outside. Skipped, with the reason, where bubblewrap cannot run here."""
from __future__ import annotations

import os
import signal
import site
import subprocess
import sys
from pathlib import Path

import pytest

from rewards.sandbox import bwrap_path, run_python

pytestmark = pytest.mark.skipif(bwrap_path() is None, reason="bubblewrap (bwrap) is not installed or cannot start here")
REPO = Path(__file__).resolve().parents[2]


def _run(code: str, **options):
    return run_python(code, isolation="bwrap", **options)


def _tries(paths: list[str], action: str) -> str:
    return f"""
import os
for path in {paths!r}:
    try:
        {action}
        print("DID", path)
    except OSError as exc:
        print("NO", path, type(exc).__name__)
"""


def test_writes_outside_land_nowhere(tmp_path):
    site_dir = site.getsitepackages()[0]
    targets = [str(REPO / "escaped.txt"), str(tmp_path / "escaped.txt"), "/tmp/escaped.txt",
               os.path.join(site_dir, "escaped.pth"), str(REPO / "var" / "escaped.txt"), "/root/escaped.txt"]
    result = _run(_tries(targets, "open(path, 'w').write('import os; os.system(\"id\")')"))
    assert result.status == "ok", result
    assert "DID" not in result.stdout, result.stdout
    for target in targets:
        assert not os.path.exists(target), target


def test_project_files_settings_and_secrets_are_not_there():
    targets = [str(REPO / "config" / "settings" / "base.py"), str(REPO / "manage.py"), str(REPO / "var"),
               "/root/.bashrc", "/root/.ssh", "/root/.cache", "/etc/passwd", "/etc/shadow", "/home", sys.executable if ".venv" in sys.executable else str(REPO / ".venv")]
    result = _run(_tries(targets, "os.listdir(path) if os.path.isdir(path) else open(path).read()"))
    assert result.status == "ok", result
    assert "DID" not in result.stdout, result.stdout
    # Directories above the interpreter's prefix hold that one path and nothing else.
    prefix = os.path.realpath(sys.base_prefix).strip("/").split("/")
    ancestors = {"/" + "/".join(prefix[:i]): prefix[i] for i in range(1, len(prefix))}
    seen = _run(f"import os\nprint({{p: sorted(os.listdir(p)) for p in {list(ancestors)!r}}})").stdout
    assert eval(seen) == {p: [child] for p, child in ancestors.items()}, seen
    listing = _run("import os\nprint(sorted(os.listdir('/')))").stdout
    assert set(eval(listing)) <= {"usr", "bin", "lib", "lib32", "lib64", "sbin", "proc", "dev", "work", "src",
                                  "sandbox", "root", "opt", "home"}, listing  # prefixes of the interpreter only


def test_the_database_files_and_socket_are_out_of_reach():
    candidates = ["/var/run/postgresql", "/run/postgresql", str(REPO / "var"), "/var/lib/postgresql"]
    result = _run(_tries(candidates, "os.listdir(path)"))
    assert "DID" not in result.stdout, result.stdout


def test_only_the_standard_library_is_importable():
    result = _run("import json, sqlite3, decimal\nimport importlib.util as u\n"
                  "print([m for m in ('django', 'numpy', 'rewards', 'torch') if u.find_spec(m)])")
    assert result.status == "ok", result
    assert result.stdout.strip() == "[]"


def test_outside_processes_cannot_be_killed():
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        result = _run(f"import os, signal\ntry:\n    os.kill({sleeper.pid}, signal.SIGKILL)\n    print('SENT')\n"
                      f"except OSError as exc:\n    print('NO', type(exc).__name__)\n"
                      "print(sorted(int(p) for p in os.listdir('/proc') if p.isdigit()))")
        assert "SENT" not in result.stdout
        assert sleeper.poll() is None  # still running
        assert all(pid < 10 for pid in eval(result.stdout.splitlines()[-1]))  # its own namespace only
    finally:
        sleeper.send_signal(signal.SIGKILL)
        sleeper.wait()


def test_it_runs_without_privileges():
    result = _run("import os\nprint(os.getuid(), os.geteuid(), open('/proc/self/status').read().split('CapEff:')[1].split()[0])")
    uid, euid, caps = result.stdout.split()
    assert int(caps, 16) == 0
    if os.geteuid() == 0:
        assert uid == euid == "65534" and "unprivileged-uid" in result.layers


def test_no_new_processes_so_fork_bombs_stop_at_one():
    result = _run("import os\ntry:\n    os.fork()\n    print('FORKED')\nexcept OSError as exc:\n    print('NO', exc.errno)\n")
    assert result.stdout.split() == ["NO", "13"], result  # EACCES from the kernel filter
    threads = _run("import threading\nt = threading.Thread(target=print, args=('thread ok',))\nt.start(); t.join()")
    assert threads.stdout.strip() == "thread ok", threads  # threads are still allowed


def test_memory_holds_for_the_whole_process_with_threads():
    code = """
import threading
held, errors = [], []
def grab():
    try:
        held.append(bytearray(100 * 1024 * 1024))
    except MemoryError:
        errors.append(1)
threads = [threading.Thread(target=grab) for _ in range(6)]
[t.start() for t in threads]
[t.join() for t in threads]
print(len(held), len(errors))
"""
    result = _run(code, memory_mb=256)
    held, errors = map(int, result.stdout.split())
    assert held <= 2 and errors >= 4, result  # 256 MB in all, not per thread


def test_disk_is_limited_and_temporary():
    code = """
import os
written = 0
try:
    for i in range(1000):
        with open(f"f{i}", "wb") as fh:
            fh.write(b"x" * (1024 * 1024))
        written += 1
except OSError as exc:
    print("STOPPED", exc.errno, written)
"""
    result = _run(code, disk_mb=8)
    word, errno_, written = result.stdout.split()
    assert word == "STOPPED" and errno_ == "28" and int(written) <= 8, result  # ENOSPC at 8 MB


def test_network_namespace_has_no_route_even_without_the_filters():
    result = run_python("import socket\ns = socket.socket()\ns.settimeout(1)\ntry:\n    s.connect(('1.1.1.1', 80))\n"
                        "    print('CONNECTED')\nexcept OSError as exc:\n    print('NO', type(exc).__name__)\n",
                        isolation="bwrap", disable=("seccomp", "audit-hook"))
    assert "CONNECTED" not in result.stdout and "net-namespace" in result.layers


SYSTEM_PYTHON = "/usr/bin/python3"


@pytest.mark.skipif(os.geteuid() != 0 or not os.access(SYSTEM_PYTHON, os.X_OK),
                    reason="needs root (to become another user) and a system Python that user can run")
def test_as_a_non_root_worker_it_holds_the_same():
    """The shipped container runs the worker as a non-root user: there bwrap makes a user
    namespace. Run the sandbox module as uid 65534 with the system interpreter and check every
    layer the verifier requires is in force."""
    from rewards.code_verifier import REQUIRED_LAYERS

    import shutil
    import tempfile

    tmp_path = Path(tempfile.mkdtemp(prefix="sandbox-nonroot-"))  # pytest's own tmp dirs are 0700
    try:
        _probe_as_nobody(tmp_path, REQUIRED_LAYERS)
    finally:
        shutil.rmtree(tmp_path, ignore_errors=True)


def _probe_as_nobody(tmp_path: Path, required: tuple[str, ...]) -> None:
    tmp_path.chmod(0o755)
    module = tmp_path / "sandbox.py"
    module.write_text((REPO / "rewards" / "sandbox.py").read_text())
    script = tmp_path / "probe.py"
    script.write_text(
        "import json, sys\nsys.path.insert(0, %r)\nimport sandbox\n"
        "r = sandbox.run_python(\"import os\\ntry:\\n    os.fork()\\nexcept OSError as e:\\n    print(e.errno)\\n"
        "print(os.getuid(), sorted(os.listdir('/')))\", isolation='bwrap')\n"
        "print(json.dumps({'status': r.status, 'stdout': r.stdout, 'layers': r.layers}))\n" % str(tmp_path))
    for path in (module, script):
        path.chmod(0o644)
    done = subprocess.run([SYSTEM_PYTHON, str(script)], capture_output=True, text=True, timeout=60,
                          user=65534, group=65534, extra_groups=[], cwd=str(tmp_path))
    assert done.returncode == 0, done.stderr
    import json

    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["status"] == "ok", report
    assert set(required) | {"user-namespace", "bwrap"} <= set(report["layers"]), report["layers"]
    errno_line, listing = report["stdout"].splitlines()
    assert errno_line == "13"
    assert "work" in listing and "home" not in listing and "etc" not in listing
