"""The code-execution sandbox: limits, isolation and clean-up, observed from outside (pure, no
database)."""
from __future__ import annotations

import os
import signal
import socket
import tempfile
import time
from collections.abc import Iterator

import pytest

from rewards.sandbox import SandboxResult, bwrap_path, run_python, run_python_parts

NETWORK_LAYERS = ("net-namespace", "seccomp", "audit-hook")
# To see one network layer on its own, switch the other groups off.
ONLY = {
    "net-namespace": ("seccomp", "audit-hook"),
    "seccomp": ("namespaces", "audit-hook"),
    "audit-hook": ("namespaces", "seccomp"),
}


def _run(code: str, disable: tuple[str, ...] = (), **limits) -> SandboxResult:
    return run_python_parts([("solution.py", code)], disable=disable, **limits)



def _processes_mentioning(text: str) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            for part in ("cmdline", "environ"):
                try:
                    with open(f"/proc/{entry}/{part}", "rb") as fh:
                        if text.encode() in fh.read():
                            found.append(int(entry))
                            break
                except OSError:
                    pass  # exited while we looked, or not ours to read
    return found


ISOLATIONS = ["basic"] + (["bwrap"] if bwrap_path() else [])


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    # Port 0: the kernel picks a free port, so parallel workers never collide.
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    server.setblocking(False)
    yield server
    server.close()


def _accepted_anything(server: socket.socket) -> bool:
    try:
        connection, _ = server.accept()
    except BlockingIOError:
        return False
    connection.close()
    return True


@pytest.mark.parametrize("code, status, in_output", [
    ("print(6 * 7)", "ok", "42"),
    ("import json; print(json.dumps({'a': [1, 2]}))", "ok", '{"a": [1, 2]}'),
    ("assert sorted([3, 1, 2]) == [1, 2, 3]", "ok", ""),
    ("assert 1 + 1 == 3, 'arithmetic is broken'", "error", "AssertionError: arithmetic is broken"),
    ("raise SystemExit(2)", "error", ""),
    ("def f(:\n    pass", "error", "SyntaxError"),
    ("import subprocess; subprocess.run(['true'])", "blocked", "subprocess.Popen"),
])
def test_good_code_passes_and_wrong_code_fails(code, status, in_output):
    result = run_python(code, timeout_s=5)
    assert result.status == status, result
    assert in_output in result.stdout + result.stderr
    assert result.ok is (status == "ok")


def test_error_reason_names_the_exception():
    result = run_python("import math\nmath.sqrt(-1)")
    assert result.returncode == 1
    assert result.reason == "exited with code 1: ValueError: math domain error"


@pytest.mark.parametrize("disable, isolation", [
    ((), "basic"), (("namespaces",), "basic"), (("namespaces", "seccomp"), "basic"), ((), "bwrap")],
    ids=["all-layers", "no-namespaces", "no-namespaces-no-seccomp", "bubblewrap"])
def test_infinite_loop_is_killed_at_the_limit_with_all_its_children(disable, isolation):
    if isolation not in ISOLATIONS:
        pytest.skip("bubblewrap is not installed here")
    # A child that tries to leave the process group, one that stays in it, and the loop itself
    # (forking allowed here on purpose: the verifier's runs refuse it, see test_sandbox_escapes).
    code = """
import os, time
print(os.environ["SANDBOX_RUN"], flush=True)
if os.fork() == 0:
    try:
        os.setsid()
    except OSError:
        pass
    time.sleep(60)
if os.fork() == 0:
    while True:
        pass
while True:
    pass
"""
    started = time.monotonic()
    result = _run(code, disable, timeout_s=1.0, isolation=isolation, allow_fork=True)
    elapsed = time.monotonic() - started
    workdir = result.stdout.split()[0]
    leftovers = _processes_mentioning(workdir)
    for pid in leftovers:
        os.kill(pid, signal.SIGKILL)
    assert result.status == "timeout"
    assert result.reason == "killed at the 1 s wall-clock limit"
    assert 0.9 <= result.duration_s < 2.5 and elapsed < 3.0
    with pytest.raises(ProcessLookupError):
        os.killpg(result.pid, 0)  # the process group is gone
    assert leftovers == []  # the one that called setsid() too


@pytest.mark.parametrize("allocation, memory_mb, status", [
    ("bytearray(1024 ** 3)", 128, "memory"),  # 1 GiB against 128 MB
    ("[0] * 10 ** 9", 256, "memory"),
    ("bytearray(40 * 1024 ** 2)", 256, "ok"),  # well under the limit
])
def test_memory_limit(allocation, memory_mb, status):
    result = run_python(f"x = {allocation}\nprint(len(x))", memory_mb=memory_mb)
    assert result.status == status, result
    if status == "memory":
        assert result.reason == f"MemoryError: over the {memory_mb} MB memory limit"


CONNECT = """
import socket
try:
    socket.create_connection(("127.0.0.1", {port}), timeout=2)
    print("CONNECTED")
except OSError as exc:
    print("refused:", type(exc).__name__, exc)
"""


def test_network_call_is_blocked(listener):
    port = listener.getsockname()[1]
    result = run_python(CONNECT.format(port=port))
    assert "CONNECTED" not in result.stdout
    assert result.status == "blocked"
    assert not _accepted_anything(listener)


@pytest.mark.parametrize("layer", NETWORK_LAYERS)
def test_each_network_layer_blocks_on_its_own(listener, layer):
    port = listener.getsockname()[1]
    result = _run(CONNECT.format(port=port), ONLY[layer])
    if layer not in result.layers:
        pytest.skip(f"{layer} is not available on this machine (layers: {', '.join(result.layers)})")
    assert "refused:" in result.stdout, result
    assert not _accepted_anything(listener)


def test_the_same_connection_works_without_the_sandbox(listener):
    # The control: the listener does accept a plain connection, so the blocks above mean something.
    port = listener.getsockname()[1]
    with socket.create_connection(("127.0.0.1", port), timeout=2):
        time.sleep(0.05)
        assert _accepted_anything(listener)


@pytest.mark.parametrize("lookup", [
    "socket.getaddrinfo('example.com', 80)",
    "socket.gethostbyname('pypi.org')",
])
def test_dns_lookup_fails(lookup):
    result = run_python(f"import socket\n{lookup}\nprint('RESOLVED')")
    assert "RESOLVED" not in result.stdout
    assert result.status == "blocked"


def test_runs_in_a_temp_dir_that_is_removed_and_sees_none_of_our_environment(monkeypatch):
    monkeypatch.setenv("DATABASE_URL", "postgres://studio:hunter2@db/studio")
    code = """
import os
print(os.getcwd())
print(os.environ["SANDBOX_RUN"], file=__import__("sys").stderr)
with open("scratch.txt", "w") as fh:
    fh.write("temporary")
print(sorted(os.listdir(".")))
print(os.environ.get("DATABASE_URL"))
print(sorted(os.environ))
"""
    result = run_python(code)
    assert result.status == "ok", result
    workdir, listing, database_url, names = result.stdout.splitlines()
    if "bwrap" in result.layers:
        assert workdir == "/work"  # its own tmpfs, gone with the mount namespace
    else:
        assert os.path.dirname(workdir) == tempfile.gettempdir() and workdir != os.getcwd()
        assert not os.path.exists(workdir)
    assert "scratch.txt" in listing
    assert database_url == "None"
    assert "hunter2" not in result.stdout
    assert "DATABASE_URL" not in names and "DJANGO_SETTINGS_MODULE" not in names
    assert not os.path.exists(os.path.join(tempfile.gettempdir(), result.stderr.strip()))  # the sources' dir


def test_filesystem_outside_the_temp_dir_is_read_only(tmp_path):
    target = tmp_path / "written-by-sandbox.txt"
    result = run_python(f"open({str(target)!r}, 'w').write('x')", isolation="basic")
    if "readonly-fs" not in result.layers:
        pytest.skip("no mount namespace here: the sandbox can write where its user can")
    assert result.status == "error"
    assert "Read-only file system" in result.stderr
    assert not target.exists()


def test_host_processes_are_invisible():
    result = run_python(f"import os\nprint(os.path.exists('/proc/{os.getpid()}/environ'))")
    if "private-proc" not in result.layers:
        pytest.skip("no PID namespace with its own /proc here")
    assert result.stdout.strip() == "False"


def test_output_is_clipped_to_max_output():
    result = run_python("print('x' * 100_000)", max_output=1000)
    assert result.status == "ok"
    assert len(result.stdout) < 1100
    assert "characters cut" in result.stdout


@pytest.mark.parametrize("code, completed", [
    ("x = 1", True),
    ("import sys\nsys.exit(0)\nx = 1", False),
    ("import os\nos._exit(0)", False),
])
def test_completed_tells_an_early_exit_from_a_full_run(code, completed):
    result = run_python(code)
    assert result.status == "ok"
    assert result.completed is completed


@pytest.mark.parametrize("limits", [{"timeout_s": 0}, {"memory_mb": 8}, {"max_output": -1}])
def test_nonsense_limits_are_refused(limits):
    with pytest.raises(ValueError):
        run_python("pass", **limits)


def test_the_always_available_layers_are_reported():
    layers = set(run_python("pass").layers)
    assert {"process", "temp-dir", "clean-env", "rlimits", "audit-hook"} <= layers
