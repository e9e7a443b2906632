"""Grades a candidate solution against ground-truth Python tests so that the candidate cannot
forge, reach or fool the verdict. Pure: standard library only, no Django.

Two sandboxed processes (rewards/sandbox.py), started together:

- the candidate runs the solution, then serves calls on a pipe: the grader asks for its top-level
  names, calls its functions, reads attributes and items of its objects;
- the grader runs the tests, with the solution's names bound to proxies that make those calls.

Only canonical data crosses: exact builtin types (None, bool, int, float, complex, str, bytes and
list, tuple, dict, set, frozenset of them), rebuilt on the grader's side from a tagged JSON form.
Anything else (an int subclass, an object with its own __eq__) arrives as an opaque reference,
which refuses ==, <, truth value and hashing-by-value: a test that compares it fails. So an object
that lies about equality cannot pass `assert f(x) == y`, and the expected values never reach the
candidate's process (it cannot read the tests, from disk or from memory: they are not in its
filesystem view or address space).

The verdict comes from the grader alone, on a pipe the candidate never holds, tagged with a
per-run nonce, and counts the checks that ran: every `assert` (rewritten to count itself) and
every unittest test. It passes only if the test code ran to its end, at least one check ran, no
check failed, and the candidate broke no rule of the protocol (it died, exited, answered garbage
or out of turn). Exit tricks in the candidate (sys.exit, os._exit, atexit, signals, threads,
writing to inherited descriptors) can only end or garble its side of the conversation, which
fails the run.

What a test author must know:
- values cross by copy: a test that relies on the solution mutating an argument in place sees
  its own copy unchanged; compare what functions return instead;
- compare data: `assert f(x) == 3` works, `assert f(x)` works when f returns a bool; a solution's
  own objects (instances of its classes) can be used through attributes, methods, items, len()
  and iteration, and compared through what those return, never with == directly;
- functions and other test-side objects cannot be passed into the solution;
- builtin exception types raised by the solution are raised again on the test's side (a custom
  subclass as a subclass of its nearest builtin base), so assertRaises(ValueError) works.
"""
from __future__ import annotations

import ast
import json
import os
import secrets
import threading
from dataclasses import dataclass

from .sandbox import SandboxResult, read_available, run_python_parts

# Shared by both sides: the wire (length-prefixed JSON) and the data codec.
_CODEC = r'''
import json as _json, os as _os

_MAX_MESSAGE = 16 * 1024 * 1024
_MAX_DEPTH = 64
_MAX_DIGITS = 4000


class _ProtocolError(Exception):
    pass


def _send(fd, message):
    data = _json.dumps(message, allow_nan=False).encode()
    data = len(data).to_bytes(8, "big") + data
    while data:
        data = data[_os.write(fd, data):]


def _recv_exact(fd, n):
    chunks, left = [], n
    while left:
        chunk = _os.read(fd, min(left, 1 << 20))
        if not chunk:
            raise EOFError("the other side closed the channel")
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def _recv(fd):
    size = int.from_bytes(_recv_exact(fd, 8), "big")
    if size > _MAX_MESSAGE:
        raise _ProtocolError(f"a message of {size} bytes (limit {_MAX_MESSAGE})")
    try:
        return _json.loads(_recv_exact(fd, size))
    except ValueError as exc:
        raise _ProtocolError(f"not JSON: {exc}") from None


def _encode(value, ref, depth=0):
    """Exact builtin data as tagged JSON; anything else through ref(value)."""
    if depth > _MAX_DEPTH:
        raise ValueError("data nested too deep (or a cycle)")
    t = type(value)
    if value is None:
        return ["n"]
    if t is bool:
        return ["b", value]
    if t is int:
        text = str(value)
        if len(text) > _MAX_DIGITS:
            raise ValueError("an integer too long to compare")
        return ["i", text]
    if t is float:
        return ["f", value.hex()]
    if t is complex:
        return ["c", value.real.hex(), value.imag.hex()]
    if t is str:
        return ["s", value]
    if t is bytes:
        return ["y", value.hex()]
    tags = {list: "l", tuple: "t", set: "S", frozenset: "F"}
    if t in tags:
        return [tags[t], [_encode(v, ref, depth + 1) for v in value]]
    if t is dict:
        return ["d", [[_encode(k, ref, depth + 1), _encode(v, ref, depth + 1)] for k, v in value.items()]]
    return ref(value)


def _decode(node, deref, depth=0):
    """The inverse of _encode, checking every node: a malformed one is a protocol error."""
    if depth > _MAX_DEPTH or type(node) is not list or not node or type(node[0]) is not str:
        raise _ProtocolError("malformed value")
    tag, rest = node[0], node[1:]
    try:
        if tag == "n" and not rest:
            return None
        if tag == "b" and len(rest) == 1 and type(rest[0]) is bool:
            return rest[0]
        if tag == "i" and len(rest) == 1 and type(rest[0]) is str and len(rest[0]) <= _MAX_DIGITS + 1:
            return int(rest[0])
        if tag == "f" and len(rest) == 1 and type(rest[0]) is str:
            return float.fromhex(rest[0])
        if tag == "c" and len(rest) == 2 and all(type(x) is str for x in rest):
            return complex(float.fromhex(rest[0]), float.fromhex(rest[1]))
        if tag == "s" and len(rest) == 1 and type(rest[0]) is str:
            return rest[0]
        if tag == "y" and len(rest) == 1 and type(rest[0]) is str:
            return bytes.fromhex(rest[0])
        if tag in ("l", "t", "S", "F") and len(rest) == 1 and type(rest[0]) is list:
            items = [_decode(v, deref, depth + 1) for v in rest[0]]
            return {"l": list, "t": tuple, "S": set, "F": frozenset}[tag](items)
        if tag == "d" and len(rest) == 1 and type(rest[0]) is list:
            out = {}
            for pair in rest[0]:
                if type(pair) is not list or len(pair) != 2:
                    raise _ProtocolError("malformed dict")
                out[_decode(pair[0], deref, depth + 1)] = _decode(pair[1], deref, depth + 1)
            return out
        if tag in ("r", "R"):
            return deref(node)
    except (ValueError, TypeError, OverflowError) as exc:
        raise _ProtocolError(f"malformed {tag!r} value: {exc}") from None
    raise _ProtocolError(f"unknown value tag {tag!r}")
'''

# The candidate's side: after the solution ran, answer the grader's requests until it hangs up.
_SERVE = r'''
def __grader_serve(rfd, wfd, namespace):
    import builtins as _builtins
    objects = {}

    def ref(value):
        objects[id(value)] = value
        return ["r", id(value), type(value).__name__[:80], callable(value)]

    def deref(node):
        if node[0] != "R" or len(node) != 2 or node[1] not in objects:
            raise _ProtocolError("unknown reference")
        return objects[node[1]]

    def builtin_bases(exc):
        return [k.__name__ for k in type(exc).__mro__
                if getattr(_builtins, k.__name__, None) is k and issubclass(k, BaseException)]

    while True:
        try:
            request = _recv(rfd)
        except EOFError:
            return
        op, args = request[0], request[1:]
        try:
            if op == "names":
                value = {k: v for k, v in namespace.items() if not k.startswith("_")}
            else:
                target = deref(args[0])
                if op == "call":
                    value = target(*_decode(args[1], deref), **_decode(args[2], deref))
                elif op == "getattr":
                    value = getattr(target, args[1])
                elif op == "setattr":
                    setattr(target, args[1], _decode(args[2], deref))
                    value = None
                elif op == "getitem":
                    value = target[_decode(args[1], deref)]
                elif op == "setitem":
                    target[_decode(args[1], deref)] = _decode(args[2], deref)
                    value = None
                elif op == "len":
                    value = len(target)
                elif op == "contains":
                    value = _decode(args[1], deref) in target
                elif op == "iter":
                    value = iter(target)
                elif op == "next":
                    try:
                        value = next(target)
                    except StopIteration:
                        _send(wfd, ["stop"])
                        continue
                elif op == "repr":
                    value = repr(target)
                else:
                    raise _ProtocolError(f"unknown request {op!r}")
            if op == "names":
                reply = ["ok", ["d", [[["s", k], _encode(v, ref)] for k, v in value.items()]]]
            else:
                reply = ["ok", _encode(value, ref)]
        except BaseException as exc:  # noqa: BLE001 - every failure goes back as data
            try:
                message = str(exc)[:2000]
            except BaseException:  # noqa: BLE001
                message = ""
            reply = ["raise", type(exc).__name__[:80], builtin_bases(exc), message]
        _send(wfd, reply)


__grader_serve(__GRADER_RFD__, __GRADER_WFD__, globals())
'''

# The grader's side: proxies for the solution, counted asserts, unittest, and the verdict.
_GRADE = r'''
import builtins as _builtins, sys as _sys, types as _types, unittest as _unittest, io as _io

_RFD, _WFD, _RESULT_FD, _NONCE = __GRADER_FDS__
_state = {"checks": 0, "violations": [], "dead": False}


class SolutionDied(BaseException):
    """The solution's process ended or broke the protocol: nothing it says counts any more."""


class SolutionError(Exception):
    """The solution raised an exception that is not a builtin type."""


def _violation(text):
    if len(_state["violations"]) < 10:
        _state["violations"].append(text)


def _ref(value):
    if type(value) is Remote:
        return ["R", object.__getattribute__(value, "_id")]
    raise TypeError(f"a test passed a {type(value).__name__} to the solution: only data and the solution's own objects cross")


def _deref(node):
    if node[0] != "r" or len(node) != 4 or type(node[1]) is not int or type(node[2]) is not str or type(node[3]) is not bool:
        raise _ProtocolError("malformed reference")
    return Remote(node[1], node[2], node[3])


def _rpc(*request):
    if _state["dead"]:
        raise SolutionDied("the solution is no longer answering")
    try:
        _send(_WFD, list(request))
        reply = _recv(_RFD)
        if type(reply) is not list or not reply or reply[0] not in ("ok", "raise", "stop"):
            raise _ProtocolError("malformed reply")
        if reply[0] == "stop":
            if request[0] != "next" or len(reply) != 1:
                raise _ProtocolError("a stop out of turn")
            raise StopIteration
        if reply[0] == "raise":
            if len(reply) != 4 or type(reply[1]) is not str or type(reply[2]) is not list or type(reply[3]) is not str:
                raise _ProtocolError("malformed exception")
            name, bases, message = reply[1], reply[2], reply[3]
            for base in bases:
                klass = getattr(_builtins, base, None) if type(base) is str else None
                if isinstance(klass, type) and issubclass(klass, Exception):
                    if klass.__name__ == name:
                        raise klass(message)
                    raise type(name if name.isidentifier() else "SolutionException", (klass,), {})(message)
            raise SolutionError(f"{name}: {message}")
        if len(reply) != 2:
            raise _ProtocolError("malformed reply")
        return _decode(reply[1], _deref)
    except (EOFError, _ProtocolError, OSError) as exc:
        _state["dead"] = True
        _violation(f"{request[0]}: {type(exc).__name__}: {exc}")
        raise SolutionDied(str(exc)) from None


def _not_data(what, value):
    kind = object.__getattribute__(value, "_type")
    return TypeError(f"a test {what} a {kind} object from the solution; tests compare data "
                     "(exact builtin types), not the solution's own objects")


class Remote:
    """One of the solution's objects, by reference."""
    __slots__ = ("_id", "_type", "_callable")

    def __init__(self, ident, kind, is_callable):
        object.__setattr__(self, "_id", ident)
        object.__setattr__(self, "_type", kind)
        object.__setattr__(self, "_callable", is_callable)

    def __call__(self, *args, **kwargs):
        return _rpc("call", ["R", self._id], _encode(list(args), _ref), _encode(dict(kwargs), _ref))

    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        return _rpc("getattr", ["R", self._id], name)

    def __setattr__(self, name, value):
        _rpc("setattr", ["R", self._id], name, _encode(value, _ref))

    def __getitem__(self, key):
        return _rpc("getitem", ["R", self._id], _encode(key, _ref))

    def __setitem__(self, key, value):
        _rpc("setitem", ["R", self._id], _encode(key, _ref), _encode(value, _ref))

    def __len__(self):
        value = _rpc("len", ["R", self._id])
        if type(value) is not int:
            raise TypeError("len() of a solution object did not give an int")
        return value

    def __contains__(self, item):
        value = _rpc("contains", ["R", self._id], _encode(item, _ref))
        if type(value) is not bool:
            raise TypeError("'in' on a solution object did not give a bool")
        return value

    def __iter__(self):
        iterator = _rpc("iter", ["R", self._id])
        if type(iterator) is not Remote:
            raise TypeError("iter() of a solution object gave data")
        while True:
            try:
                yield _rpc("next", ["R", object.__getattribute__(iterator, "_id")])
            except StopIteration:
                return

    def __repr__(self):
        value = _rpc("repr", ["R", self._id])
        return value if type(value) is str else "<solution object>"

    def __bool__(self):
        raise _not_data("used the truth value of", self)

    def __eq__(self, other):
        raise _not_data("compared", self)

    __ne__ = __lt__ = __le__ = __gt__ = __ge__ = __eq__
    __hash__ = object.__hash__


def __grader_truth__(value):
    """Every assert comes here: it counts, and it judges data only."""
    _state["checks"] += 1
    if type(value) is Remote:
        raise _not_data("asserted", value)
    return bool(value)


def _finish(ran, failures, note=""):
    passed = ran and failures == 0 and _state["checks"] > 0 and not _state["violations"] and not _state["dead"]
    line = _json.dumps({"nonce": _NONCE, "passed": passed, "ran": ran, "checks": _state["checks"],
                        "failures": failures, "violations": _state["violations"], "note": note[:500]})
    _os.write(_RESULT_FD, line.encode() + b"\n")


def _grade(source):
    names = _rpc("names")
    if type(names) is not dict:
        raise SolutionDied("the solution's names were not a mapping")
    module = _types.ModuleType("solution")
    for key, value in names.items():
        if type(key) is str:
            setattr(module, key, value)
    _sys.modules["solution"] = module
    _unittest.main = lambda *a, **k: None  # the grader runs the tests itself
    namespace = {"__name__": "__tests__", "__builtins__": _builtins, "__grader_truth__": __grader_truth__}
    namespace.update({k: v for k, v in names.items() if type(k) is str})
    try:
        exec(compile(source, "tests.py", "exec"), namespace)  # noqa: S102 - the trusted tests
        for name, value in list(namespace.items()):
            if name.startswith("test") and isinstance(value, _types.FunctionType) and value.__code__.co_filename == "tests.py":
                if value.__code__.co_argcount == 0:
                    value()
        cases = [v for v in namespace.values() if isinstance(v, type) and issubclass(v, _unittest.TestCase)
                 and v is not _unittest.TestCase]
        failures = 0
        if cases:
            suite = _unittest.TestSuite(_unittest.defaultTestLoader.loadTestsFromTestCase(c) for c in cases)
            stream = _io.StringIO()
            result = _unittest.TextTestRunner(stream=stream, verbosity=0).run(suite)
            _state["checks"] += result.testsRun
            failures = len(result.failures) + len(result.errors) + len(result.unexpectedSuccesses)
            if failures:
                _sys.stderr.write(stream.getvalue()[-3000:])
        _finish(True, failures)
    except BaseException as exc:  # noqa: BLE001 - any failure of a test is a failed run
        import traceback
        traceback.print_exception(type(exc), exc, exc.__traceback__)
        _finish(False, 1, f"{type(exc).__name__}: {exc}")


_grade(__GRADER_TESTS__)
'''


class _CountAsserts(ast.NodeTransformer):
    """`assert test, msg` becomes `if not __grader_truth__(test): raise AssertionError(msg)`, so
    the grader counts every check that ran and judges only data."""

    def visit_Assert(self, node: ast.Assert) -> ast.AST:
        call = ast.Call(func=ast.Name("__grader_truth__", ast.Load()), args=[self.visit(node.test)], keywords=[])
        error = ast.Call(func=ast.Name("AssertionError", ast.Load()), args=[node.msg] if node.msg else [], keywords=[])
        return ast.copy_location(ast.If(test=ast.UnaryOp(ast.Not(), call), body=[ast.Raise(exc=error)], orelse=[]), node)


def instrument_tests(tests: str) -> str:
    tree = _CountAsserts().visit(ast.parse(tests))
    return ast.unparse(ast.fix_missing_locations(tree))


@dataclass(frozen=True)
class Grade:
    passed: bool
    reason: str  # one line in words
    checks: int = 0  # asserts and unittest tests that ran
    candidate: SandboxResult | None = None
    grader: SandboxResult | None = None

    @property
    def layers(self) -> tuple[str, ...]:
        """The isolation both processes had (the weaker of the two counts)."""
        if self.candidate is None or self.grader is None:
            return ()
        return tuple(layer for layer in self.candidate.layers if layer in self.grader.layers)


def grade(solution: str, tests: str, *, timeout_s: float = 5.0, memory_mb: int = 256,
          isolation: str = "auto", disk_mb: int = 32) -> Grade:
    """Run `tests` against `solution` in two sandboxes; see the module docstring."""
    try:
        instrumented = instrument_tests(tests)
    except (SyntaxError, ValueError) as exc:
        return Grade(False, f"the tests do not parse: {exc}")
    nonce = secrets.token_hex(16)
    to_candidate = os.pipe()
    to_grader = os.pipe()
    result_pipe = os.pipe()
    serve = _CODEC + _SERVE.replace("__GRADER_RFD__", str(to_candidate[0])).replace("__GRADER_WFD__", str(to_grader[1]))
    grader = (_CODEC + _GRADE.replace("__GRADER_FDS__", repr((to_grader[0], to_candidate[1], result_pipe[1], nonce)))
              .replace("__GRADER_TESTS__", repr(instrumented)))
    options = {"timeout_s": timeout_s, "memory_mb": memory_mb, "isolation": isolation, "disk_mb": disk_mb,
               "max_output": 4000, "allow_fork": False}
    results: dict[str, SandboxResult] = {}

    def run(name: str, parts: list[tuple[str, str]], fds: tuple[int, ...]) -> None:
        results[name] = run_python_parts(parts, pass_fds=fds, hand_over_fds=True, **options)

    threads = [
        threading.Thread(target=run, args=("candidate", [("solution.py", solution), ("serve.py", serve)],
                                           (to_candidate[0], to_grader[1]))),
        threading.Thread(target=run, args=("grader", [("grader.py", grader)],
                                           (to_grader[0], to_candidate[1], result_pipe[1]))),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    report = _read_result(result_pipe[0])
    candidate, graded = results.get("candidate"), results.get("grader")
    return _verdict(report, nonce, candidate, graded)


def _read_result(fd: int) -> dict | None:
    try:
        data = read_available(fd, limit=65536)
    finally:
        os.close(fd)
    lines = data.splitlines()
    if len(lines) != 1:
        return None
    try:
        report = json.loads(lines[0])
    except ValueError:
        return None
    return report if isinstance(report, dict) else None


def _verdict(report: dict | None, nonce: str, candidate: SandboxResult | None, graded: SandboxResult | None) -> Grade:
    if candidate is None or graded is None:
        return Grade(False, "a sandbox did not start", candidate=candidate, grader=graded)
    if graded.status == "timeout" or candidate.status == "timeout":
        return Grade(False, "timed out", candidate=candidate, grader=graded)
    if report is None or report.get("nonce") != nonce:
        return Grade(False, f"the tests gave no verdict ({graded.reason})", candidate=candidate, grader=graded)
    checks = report.get("checks") if type(report.get("checks")) is int else 0
    if report.get("violations"):
        return Grade(False, f"the solution broke the protocol: {report['violations'][0]}", checks, candidate, graded)
    if not report.get("ran"):
        return Grade(False, f"the tests failed: {report.get('note') or graded.reason}", checks, candidate, graded)
    if report.get("failures"):
        return Grade(False, f"{report['failures']} unittest test(s) failed", checks, candidate, graded)
    if checks < 1:
        return Grade(False, "no check ran", checks, candidate, graded)
    if report.get("passed") is not True or graded.status != "ok":
        return Grade(False, f"the tests did not finish cleanly ({graded.reason})", checks, candidate, graded)
    return Grade(True, f"{checks} check(s) passed", checks, candidate, graded)
