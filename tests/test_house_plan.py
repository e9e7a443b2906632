"""The house plan (README "Layout", ARCHITECTURE.md): imports flow one way between the apps, no
two modules import each other, production code leaves the test/demo generators alone, and
importing settings writes nothing.

Apps, highest first: frontend -> training -> rewards -> calibration -> annotation. An app may
import the apps after it, never one before it. Within the whole tree no import cycle exists, with
one documented exception: a service module may import its own app's `tasks` inside a function (the
task module imports the service at module level to run it; the service queues the task). Pure
checks on the source with `ast`; nothing is imported.
"""
from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
ORDER = ["frontend", "training", "rewards", "calibration", "annotation"]
RANK = {app: i for i, app in enumerate(ORDER)}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _modules(root: Path = ROOT, apps: tuple[str, ...] = (*ORDER, "config")) -> dict[str, Path]:
    found = {}
    for app in apps:
        for path in (root / app).rglob("*.py"):
            if "migrations" in path.parts:
                continue
            found[_module_name(path)] = path
    return found


def imports_of(name: str, source: str, *, is_package: bool, known: set[str]) -> list[tuple[str, int, bool]]:
    """(imported module, line, at module level?) for each import of a module in `known`. `from x
    import y` counts as x.y when that is a module, else x; relative imports are resolved."""
    tree = ast.parse(source)
    package = name if is_package else name.rpartition(".")[0]
    top_level = {id(node) for node in tree.body}
    # Imports under `if TYPE_CHECKING:` at module level are not run and are not counted.
    type_only = set()
    for node in tree.body:
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            type_only |= {id(child) for child in ast.walk(node)}
    out = []
    for node in ast.walk(tree):
        if id(node) in type_only:
            continue
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - (node.level - 1)] if node.level > 1 else anchor
                base = ".".join([*anchor, base] if base else anchor)
            targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base for alias in node.names]
        else:
            continue
        for target in targets:
            while target and target not in known:
                target = target.rpartition(".")[0]
            if target and target != name:
                out.append((target, node.lineno, id(node) in top_level))
    return out


def import_graph(modules: dict[str, Path]) -> list[tuple[str, str, int, bool]]:
    known = set(modules)
    edges = []
    for name, path in modules.items():
        for target, line, top in imports_of(name, path.read_text(), is_package=path.name == "__init__.py", known=known):
            edges.append((name, target, line, top))
    return edges


def upward_imports(edges) -> list[str]:
    problems = []
    for source, target, line, _ in edges:
        a, b = source.split(".")[0], target.split(".")[0]
        if a in RANK and b in RANK and RANK[b] < RANK[a]:
            problems.append(f"{source}:{line} imports {target} ({a} may not import {b})")
    return problems


# Test and demo data generators (simulated pools, synthetic pairs, tiny models) live in each app's
# `generators` package; production code does not import them, the demo seed excepted.
GENERATOR_USERS = {"training.management.commands.seed_demo"}


def generator_imports(edges) -> list[str]:
    return [f"{source}:{line} imports {target}" for source, target, line, _ in edges
            if ".generators" in f".{target}." and ".generators" not in f".{source}."
            and source not in GENERATOR_USERS]


def _lazy_task_import(source: str, target: str, top: bool) -> bool:
    """The one documented exception: app.services.x importing app.tasks inside a function."""
    app = source.split(".")[0]
    return not top and source.startswith(f"{app}.services.") and target == f"{app}.tasks"


def cycles(edges) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan), the exception left out."""
    graph: dict[str, set[str]] = {}
    for source, target, _, top in edges:
        if not _lazy_task_import(source, target, top):
            graph.setdefault(source, set()).add(target)
            graph.setdefault(target, set())
    index, low, stack, on_stack, found = {}, {}, [], set(), []
    counter = [0]

    def visit(node: str) -> None:
        index[node] = low[node] = counter[0]
        counter[0] += 1
        stack.append(node)
        on_stack.add(node)
        for nxt in graph[node]:
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10_000))
    for node in list(graph):
        if node not in index:
            visit(node)
    return found


@pytest.fixture(scope="module")
def edges():
    return import_graph(_modules())


def test_the_graph_is_read(edges):
    # A parser that found nothing would pass everything below.
    assert len(edges) > 500
    assert any(s.startswith("calibration.") and t.startswith("annotation.") for s, t, _, _ in edges)


def test_no_app_imports_an_app_above_it(edges):
    assert upward_imports(edges) == []


def test_no_import_cycles_between_modules(edges):
    assert cycles(edges) == []


def test_production_code_does_not_import_the_generators(edges):
    assert generator_imports(edges) == []
    assert any(".generators" in target for source, target, _, _ in edges if source in GENERATOR_USERS)


def _tree(tmp_path: Path, files: dict[str, str]) -> list:
    for name, text in files.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    modules = {}
    for path in tmp_path.rglob("*.py"):
        parts = list(path.relative_to(tmp_path).with_suffix("").parts)
        modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    known = set(modules)
    return [(n, t, line, top) for n, p in modules.items()
            for t, line, top in imports_of(n, p.read_text(), is_package=p.name == "__init__.py", known=known)]


def test_the_checks_catch_what_they_are_for(tmp_path):
    edges = _tree(tmp_path, {
        "annotation/__init__.py": "",
        "annotation/models.py": "from calibration.models import Anchor\n",  # upward
        "calibration/__init__.py": "",
        "calibration/models.py": "",
        "calibration/a.py": "def f():\n    from . import b\n",  # a cycle through a function-level import
        "calibration/b.py": "from calibration import a\n",
        "calibration/tasks.py": "from .services import runs\n",
        "calibration/services/__init__.py": "",
        "calibration/services/runs.py": "def go():\n    from calibration import tasks\n",  # the exception
        "calibration/generators/__init__.py": "",
        "calibration/generators/pool.py": "",
        "calibration/selectors.py": "from .generators import pool\n",  # production importing a generator
    })
    assert upward_imports(edges) == ["annotation.models:1 imports calibration.models (annotation may not import calibration)"]
    assert cycles(edges) == [["calibration.a", "calibration.b"]]
    assert generator_imports(edges) == ["calibration.selectors:1 imports calibration.generators.pool"]


def test_importing_settings_creates_no_folders_and_the_broker_keeps_its_files_under_var(tmp_path):
    """Settings are read by every process; they must not write. The embedded broker's folders
    (exchange tables included: Kombu's default is ./control wherever the process starts) live under
    var/ and appear when a task is first sent."""
    var = tmp_path / "var"
    code = (
        "import os, django; django.setup()\n"
        f"assert not os.path.exists({str(var)!r}), os.listdir({str(var)!r})\n"
        "from django.conf import settings\n"
        "options = settings.CELERY_BROKER_TRANSPORT_OPTIONS\n"
        f"assert all(options[k].startswith({str(var)!r}) for k in ('data_folder_in', 'data_folder_out', 'processed_folder', 'control_folder')), options\n"
        "from config.celery import app\n"
        "app.send_task('nothing.here', queue='default')\n"
        f"print(sorted(os.listdir({str(var / 'celery')!r})))\n"
    )
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings.local", "PREFSTUDIO_VAR_DIR": str(var),
           "REDIS_URL": "", "PYTHONPATH": str(ROOT)}
    env.pop("CELERY_BROKER_URL", None)  # the embedded filesystem broker
    result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "['control', 'processed', 'queue']"
    assert not (tmp_path / "control").exists()
