"""The code verifier's verdict, its isolation requirement and the hack signals it reports. Pure:
no Django.

A verdict is a score (1.0 pass, 0.0 fail, None: not applicable or refused) with its reason and the
suspicious patterns found in the code (static, never a reason to fail on its own: a monitor counts
them per step and alerts when they rise). The verifier refuses (None, with the reason) where the
sandbox here is weaker than REQUIRED_LAYERS, unless the run allows weaker isolation explicitly.
"""
from __future__ import annotations

import ast
import functools
from dataclasses import dataclass, field

from .grader import grade
from .sandbox import run_python

# What a verification needs from the sandbox (see rewards/sandbox.py for each layer): its own
# filesystem view, PID and network namespaces, a size-limited disk, one process, the kernel filter,
# no capabilities and the resource limits.
REQUIRED_LAYERS = ("minimal-fs", "pid-namespace", "net-namespace", "disk-tmpfs", "no-fork", "seccomp",
                   "no-capabilities", "no-new-privs", "rlimits")


@dataclass(frozen=True)
class CodeVerdict:
    score: float | None
    reason: str
    refused: bool = False  # the sandbox here is weaker than required: nothing ran
    suspicious: tuple[str, ...] = field(default=())


@functools.cache
def sandbox_layers() -> tuple[str, ...]:
    """The isolation a verification gets on this machine (probed once per process)."""
    return run_python("pass", timeout_s=10).layers


def isolation_shortfall() -> str | None:
    """What the sandbox here lacks of REQUIRED_LAYERS, in words; None when it has them all."""
    missing = [layer for layer in REQUIRED_LAYERS if layer not in sandbox_layers()]
    if not missing:
        return None
    hint = " (install bubblewrap, and let the worker use user namespaces)" if "minimal-fs" in missing else ""
    return f"the code sandbox here lacks {', '.join(missing)}{hint}"


def code_verdict(solution: str, tests: str, *, timeout_s: float = 5.0, memory_mb: int = 256,
                 allow_weak_sandbox: bool = False) -> CodeVerdict:
    suspicious = suspicious_patterns(solution)
    shortfall = isolation_shortfall()
    if shortfall and not allow_weak_sandbox:
        return CodeVerdict(None, f"refused: {shortfall}", refused=True, suspicious=suspicious)
    result = grade(solution, tests, timeout_s=timeout_s, memory_mb=memory_mb,
                   isolation="auto" if not shortfall else "basic")
    return CodeVerdict(1.0 if result.passed else 0.0, result.reason, suspicious=suspicious)


# Names whose use in a solution is a known reward-hacking move (exit tricks, descriptor writes,
# introspection of the grader, patching the runtime), grouped by what they try.
_SUSPICIOUS_CALLS = {
    "exit": "exit call", "quit": "exit call", "sys.exit": "exit call", "os._exit": "exit call",
    "os.abort": "exit call", "os.kill": "signal", "signal.signal": "signal", "signal.alarm": "signal",
    "os.write": "fd write", "os.fdopen": "fd write", "os.dup2": "fd write", "os.dup": "fd write",
    "os.close": "fd write", "os.closerange": "fd write",
    "atexit.register": "exit hook", "sys.settrace": "introspection", "sys.setprofile": "introspection",
    "sys._getframe": "introspection", "inspect.stack": "introspection", "inspect.currentframe": "introspection",
    "gc.get_objects": "introspection", "gc.get_referrers": "introspection", "sys.addaudithook": "introspection",
    "setattr": "runtime patching",
}
_SUSPICIOUS_MODULES = {"ctypes": "native code", "builtins": "runtime patching", "unittest.mock": "runtime patching",
                       "threading": "threads", "_thread": "threads", "inspect": "introspection", "gc": "introspection",
                       "atexit": "exit hook", "signal": "signal", "pytest": "runtime patching"}


def suspicious_patterns(code: str) -> tuple[str, ...]:
    """The hack patterns present in `code`, sorted, each once (a static scan: cheap, and
    approximate on purpose: it feeds a rate, not a verdict)."""
    try:
        tree = ast.parse(code)
    except (SyntaxError, ValueError):
        return ()
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            name = _dotted(node.func)
            if name in _SUSPICIOUS_CALLS:
                found.add(_SUSPICIOUS_CALLS[name])
        elif isinstance(node, ast.Import | ast.ImportFrom):
            modules = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
            for module in modules:
                for prefix, label in _SUSPICIOUS_MODULES.items():
                    if module == prefix or module.startswith(prefix + "."):
                        found.add(label)
        elif isinstance(node, ast.Name) and node.id == "__builtins__":
            found.add("runtime patching")
        elif isinstance(node, ast.FunctionDef) and node.name in ("__eq__", "__ne__", "__hash__", "__bool__"):
            returns = [n for n in ast.walk(node) if isinstance(n, ast.Return)]
            if returns and all(isinstance(r.value, ast.Constant) for r in returns):
                found.add("constant comparison")
    return tuple(sorted(found))


def _dotted(node: ast.AST) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        inner = _dotted(node.value)
        return f"{inner}.{node.attr}" if inner else ""
    return ""
