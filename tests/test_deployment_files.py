"""The deployment files keep the code verifier's sandbox workable and the services unprivileged.

Pure checks of Dockerfile, docker-compose.yml and deploy/seccomp-sandbox.json (no database, no
Docker engine). Each check is a function that returns its problems for a given text or mapping,
so the tests also feed it a broken variant and assert that it objects.
"""
from __future__ import annotations

import json
import re
import shlex
import tomllib
from pathlib import Path

import pytest

# PyYAML comes with drf-spectacular (a core dependency); skip rather than fail if that changes.
yaml = pytest.importorskip("yaml", reason="PyYAML is not installed: cannot parse docker-compose.yml")

ROOT = Path(__file__).resolve().parent.parent
SANDBOX_SERVICES = ("worker", "gpu-worker")
PROFILE = "deploy/seccomp-sandbox.json"
# bwrap makes a user namespace, mounts, pivots and unmounts inside it.
MUST_ALLOW = ("unshare", "clone", "clone3", "mount", "umount2", "pivot_root", "setns")
MUST_DENY = ("keyctl", "add_key", "request_key", "bpf", "perf_event_open", "kexec_load",
             "init_module", "finit_module", "open_by_handle_at", "userfaultfd", "io_uring_setup")


# --- Dockerfile ---------------------------------------------------------------------------------

def dockerfile_instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs: comments dropped, backslash continuations joined."""
    out: list[tuple[str, str]] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if pending and line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line, pending = pending + line, ""
        if line.strip():
            word, _, rest = line.strip().partition(" ")
            out.append((word.upper(), rest.strip()))
    if pending.strip():
        word, _, rest = pending.strip().partition(" ")
        out.append((word.upper(), rest.strip()))
    return out


def _created_users(run: str) -> set[str]:
    """Names and uids that a RUN's useradd/adduser commands create."""
    created: set[str] = set()
    for command in re.split(r"&&|;|\|\|", run):
        try:
            words = shlex.split(command)
        except ValueError:
            continue
        if not words or words[0] not in ("useradd", "adduser"):
            continue
        takes_value = {"-u", "--uid", "-g", "--gid", "-d", "--home-dir", "--home", "-s", "--shell",
                       "-G", "--groups", "-c", "--comment", "--gecos", "--ingroup", "-k", "--skel",
                       "-e", "--expiredate", "-f", "--inactive", "-K", "--key", "-p", "--password"}
        positional: list[str] = []
        i = 1
        while i < len(words):
            word = words[i]
            if word in ("-u", "--uid") and i + 1 < len(words):
                created.add(words[i + 1])
            if word.startswith("--uid="):
                created.add(word.split("=", 1)[1])
            if word in takes_value:
                i += 2
                continue
            if not word.startswith("-"):
                positional.append(word)
            i += 1
        if positional:
            created.add(positional[-1])
    return created


def dockerfile_problems(text: str) -> list[str]:
    problems: list[str] = []
    instructions = dockerfile_instructions(text)
    users = [(i, args) for i, (word, args) in enumerate(instructions) if word == "USER"]
    if not users:
        return ["no USER instruction: the image runs as root"]
    index, user = users[-1]
    name = user.split(":", 1)[0].strip()
    group = user.split(":", 1)[1].strip() if ":" in user else ""
    if name in ("root", "0") or group in ("root", "0"):
        problems.append(f"the last USER is root ({user!r})")
    created: set[str] = set()
    for word, args in instructions[:index]:
        if word == "RUN":
            created |= _created_users(args)
    if name not in created:
        problems.append(f"USER {name!r} is not created with useradd/adduser before it")
    runs = [args for word, args in instructions if word == "RUN"]
    apt = [run for run in runs if re.search(r"apt-get\s+install", run)]
    if not any(re.search(r"apt-get\s+install\b[^&;|]*\bbubblewrap\b", run) for run in apt):
        problems.append("bubblewrap is not installed with apt-get")
    for run in apt:
        if "--no-install-recommends" not in run:
            problems.append("apt-get install without --no-install-recommends")
        if "rm -rf /var/lib/apt/lists" not in run:
            problems.append("apt-get install without cleaning /var/lib/apt/lists")
    if not any(word == "ARG" and args.startswith("EXTRAS") for word, args in instructions):
        problems.append("no EXTRAS build argument (the gpu-worker build needs it)")
    return problems


def test_dockerfile_runs_unprivileged_with_bubblewrap():
    assert dockerfile_problems((ROOT / "Dockerfile").read_text()) == []


def test_dockerfile_copies_every_packaged_app():
    text = (ROOT / "Dockerfile").read_text()
    copied = {args.split()[0].rstrip("/") for word, args in dockerfile_instructions(text) if word == "COPY"}
    include = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]["find"]["include"]
    packages = {pattern.rstrip("*").rstrip(".") for pattern in include}
    assert packages - copied == set()


GOOD_DOCKERFILE = """FROM python:3.11-slim
RUN apt-get update \\
    && apt-get install -y --no-install-recommends bubblewrap \\
    && rm -rf /var/lib/apt/lists/*
RUN useradd --system --uid 10001 --home-dir /home/app --create-home --shell /usr/sbin/nologin app
ARG EXTRAS=""
USER app
"""


def test_dockerfile_check_accepts_a_good_variant():
    assert dockerfile_problems(GOOD_DOCKERFILE) == []


@pytest.mark.parametrize(("broken", "expected"), [
    (GOOD_DOCKERFILE.replace("USER app\n", ""), "no USER instruction"),
    (GOOD_DOCKERFILE + "USER root\n", "the last USER is root"),
    (GOOD_DOCKERFILE.replace("USER app", "USER 0"), "the last USER is root"),
    (GOOD_DOCKERFILE.replace("USER app", "USER app:0"), "the last USER is root"),
    (GOOD_DOCKERFILE.replace("USER app", "USER nobody2"), "is not created"),
    (GOOD_DOCKERFILE.replace("RUN useradd", "# RUN useradd"), "is not created"),
    (GOOD_DOCKERFILE.replace("RUN useradd", "# RUN useradd") + "RUN useradd app\n", "is not created"),
    (GOOD_DOCKERFILE.replace(" bubblewrap", " curl"), "bubblewrap is not installed"),
    (GOOD_DOCKERFILE.replace(" --no-install-recommends", ""), "--no-install-recommends"),
    (GOOD_DOCKERFILE.replace("rm -rf /var/lib/apt/lists/*", "true"), "cleaning /var/lib/apt/lists"),
    (GOOD_DOCKERFILE.replace('ARG EXTRAS=""\n', ""), "EXTRAS"),
])
def test_dockerfile_check_rejects(broken, expected):
    assert any(expected in problem for problem in dockerfile_problems(broken)), dockerfile_problems(broken)


# --- seccomp profile ----------------------------------------------------------------------------

def profile_problems(profile: dict) -> list[str]:
    problems: list[str] = []
    default = profile.get("defaultAction")
    if default not in ("SCMP_ACT_ALLOW", "SCMP_ACT_ERRNO", "SCMP_ACT_KILL", "SCMP_ACT_KILL_PROCESS",
                       "SCMP_ACT_KILL_THREAD", "SCMP_ACT_TRAP", "SCMP_ACT_LOG"):
        return [f"unknown defaultAction {default!r}"]
    denied: set[str] = set()
    denied_sometimes: set[str] = set()
    allowed: set[str] = set()
    for rule in profile.get("syscalls", []):
        names = set(rule.get("names", [])) | ({rule["name"]} if "name" in rule else set())
        conditional = bool(rule.get("args")) or bool(rule.get("includes")) or bool(rule.get("excludes"))
        if rule.get("action") in ("SCMP_ACT_ALLOW", "SCMP_ACT_LOG"):
            if not conditional:
                allowed |= names
        elif conditional:
            denied_sometimes |= names
        else:
            denied |= names
    permissive = default in ("SCMP_ACT_ALLOW", "SCMP_ACT_LOG")
    for name in MUST_ALLOW:
        if name in denied or name in denied_sometimes or (not permissive and name not in allowed):
            problems.append(f"{name} is denied (bwrap needs it)")
    for name in MUST_DENY:
        if name not in denied and not (not permissive and name not in allowed):
            problems.append(f"{name} is allowed")
    return problems


def test_profile_lets_bwrap_work_and_denies_the_dangerous_calls():
    profile = json.loads((ROOT / PROFILE).read_text())
    assert profile_problems(profile) == []


def test_profile_is_documented():
    profile = json.loads((ROOT / PROFILE).read_text())
    readme = (ROOT / "deploy" / "README.md").read_text()
    denied = {name for rule in profile["syscalls"] if rule["action"] != "SCMP_ACT_ALLOW" for name in rule["names"]}
    assert {name for name in denied if f"`{name}`" not in readme} == set()


def _allow_list(names) -> dict:
    return {"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": list(names), "action": "SCMP_ACT_ALLOW"}]}


@pytest.mark.parametrize(("profile", "expected"), [
    ({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": []}, "keyctl is allowed"),
    ({"defaultAction": "SCMP_ACT_ALLOW",
      "syscalls": [{"names": list(MUST_DENY) + ["mount"], "action": "SCMP_ACT_ERRNO"}]}, "mount is denied"),
    ({"defaultAction": "SCMP_ACT_ALLOW",
      "syscalls": [{"names": list(MUST_DENY), "action": "SCMP_ACT_ERRNO"},
                   {"names": ["clone"], "action": "SCMP_ACT_ERRNO",
                    "args": [{"index": 0, "value": 0x10000000, "op": "SCMP_CMP_MASKED_EQ"}]}]},
     "clone is denied"),
    (_allow_list(n for n in MUST_ALLOW if n != "pivot_root"), "pivot_root is denied"),
    (_allow_list(list(MUST_ALLOW) + ["bpf"]), "bpf is allowed"),
    ({"defaultAction": "SCMP_ACT_NOPE"}, "unknown defaultAction"),
])
def test_profile_check_rejects(profile, expected):
    assert any(expected in problem for problem in profile_problems(profile)), profile_problems(profile)


def test_profile_check_accepts_an_allow_list_profile():
    assert profile_problems(_allow_list(MUST_ALLOW)) == []


# --- docker-compose.yml -------------------------------------------------------------------------

def compose_problems(compose: dict, root: Path) -> list[str]:
    problems: list[str] = []
    services = compose.get("services") or {}
    settings = (compose.get("x-app") or {}).get("environment", {}).get("DJANGO_SETTINGS_MODULE")
    if settings != "config.settings.production":
        problems.append(f"x-app DJANGO_SETTINGS_MODULE is {settings!r}, not config.settings.production")
    for name, service in services.items():
        service = service or {}
        if service.get("privileged"):
            problems.append(f"{name} is privileged")
        if service.get("cap_add"):
            problems.append(f"{name} adds capabilities {service['cap_add']}")
        if name in ("web", "worker", "beat", "gpu-worker"):
            env = service.get("environment") or {}
            if env.get("DJANGO_SETTINGS_MODULE") != "config.settings.production":
                problems.append(f"{name} does not use config.settings.production")
    for name in SANDBOX_SERVICES:
        if name not in services:
            problems.append(f"no {name} service")
            continue
        options = [str(option) for option in (services[name] or {}).get("security_opt") or []]
        seccomp = [option.split("=", 1)[1] if "=" in option else option.split(":", 1)[1]
                   for option in options if re.match(r"seccomp[=:]", option)]
        if not seccomp:
            problems.append(f"{name} has no seccomp profile")
        for path in seccomp:
            if Path(path).is_absolute() or (root / path).resolve() != (root / PROFILE).resolve():
                problems.append(f"{name} uses seccomp={path}, not {PROFILE}")
            elif not (root / path).is_file():
                problems.append(f"{name}'s seccomp profile {path} does not exist")
        if not any(re.fullmatch(r"apparmor[=:]unconfined", option) for option in options):
            problems.append(f"{name} is not apparmor=unconfined (docker-default denies mount)")
    return problems


def _compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def test_compose_gives_the_verifier_workers_the_sandbox_profile():
    assert compose_problems(_compose(), ROOT) == []


def test_web_and_beat_keep_dockers_default_profiles():
    services = _compose()["services"]
    for name in ("web", "beat"):
        assert not any("seccomp" in str(option) or "unconfined" in str(option)
                       for option in services[name].get("security_opt") or []), name


@pytest.mark.parametrize(("change", "expected"), [
    (lambda c: c["services"]["worker"].__setitem__("privileged", True), "worker is privileged"),
    (lambda c: c["services"]["gpu-worker"].__setitem__("cap_add", ["SYS_ADMIN"]), "adds capabilities"),
    (lambda c: c["services"]["web"].__setitem__("cap_add", ["NET_ADMIN"]), "web adds capabilities"),
    (lambda c: c["services"]["worker"].__setitem__("security_opt", ["apparmor=unconfined"]),
     "worker has no seccomp profile"),
    (lambda c: c["services"]["gpu-worker"].__setitem__(
        "security_opt", ["seccomp=./deploy/other.json", "apparmor=unconfined"]), "not deploy/seccomp-sandbox.json"),
    (lambda c: c["services"]["worker"].__setitem__("security_opt", ["seccomp=./deploy/seccomp-sandbox.json"]),
     "not apparmor=unconfined"),
    (lambda c: c["services"].pop("gpu-worker"), "no gpu-worker service"),
    (lambda c: c["x-app"]["environment"].__setitem__("DJANGO_SETTINGS_MODULE", "config.settings.local"),
     "not config.settings.production"),
    (lambda c: c["services"]["beat"]["environment"].__setitem__("DJANGO_SETTINGS_MODULE", "config.settings.test"),
     "beat does not use config.settings.production"),
])
def test_compose_check_rejects(change, expected):
    compose = json.loads(json.dumps(_compose()))  # a deep copy without YAML anchors shared
    change(compose)
    problems = compose_problems(compose, ROOT)
    assert any(expected in problem for problem in problems), problems


def test_compose_check_rejects_a_missing_profile_file(tmp_path):
    assert any("does not exist" in problem for problem in compose_problems(_compose(), tmp_path))


def test_collectstatic_succeeds_under_production_settings(tmp_path):
    """docker-compose's web service runs collectstatic with production settings (whitenoise's
    manifest storage): a vendored file that names a missing source map failed it."""
    import os
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings.production",
           "DJANGO_SECRET_KEY": "x" * 64 + "-not-weak-9f3b2c", "DJANGO_STATIC_ROOT": str(tmp_path / "static"),
           "DJANGO_ALLOWED_HOSTS": "localhost"}
    done = subprocess.run([sys.executable, "manage.py", "collectstatic", "--noinput", "-v", "0"], cwd=root, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    manifest = json.loads((tmp_path / "static" / "staticfiles.json").read_text())
    assert "frontend/app.css" in manifest["paths"] and "frontend/vendor/chart-4.6.1.umd.min.js" in manifest["paths"]
