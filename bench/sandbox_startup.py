"""Start-up cost of one sandboxed run and of one code verification (median and p90 of N, in ms),
for each isolation mode available here. Run by hand: `python bench/sandbox_startup.py [N]`.

- run_python basic: the in-house layers (namespaces by unshare, seccomp, rlimits, audit hook).
- run_python bwrap: the same inside bubblewrap's minimal view with a size-limited tmpfs.
- grade: what the code verifier does per completion: two sandboxes (solution, tests) at once and
  the data exchange between them, for a three-assert test.
"""
from __future__ import annotations

import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from rewards.grader import grade  # noqa: E402
from rewards.sandbox import bwrap_path, run_python  # noqa: E402

SOLUTION = "def add(a, b):\n    return a + b\n"
TESTS = "assert add(2, 3) == 5\nassert add(-1, 1) == 0\nassert add(10, 5) == 15\n"


def measure(label: str, call, n: int) -> None:
    call()  # warm the page cache
    times = []
    for i in range(n):
        started = time.perf_counter()
        ok = call()
        times.append((time.perf_counter() - started) * 1000)
        assert ok, label
        print(f"\r{label}: {i + 1}/{n}", end="", file=sys.stderr)
    print("\r", end="", file=sys.stderr)
    times.sort()
    print(f"{label:<28} median {statistics.median(times):7.1f} ms   p90 {times[int(0.9 * (n - 1))]:7.1f} ms   (n={n})")


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 100
    modes = ["basic"] + (["bwrap"] if bwrap_path() else [])
    for mode in modes:
        measure(f"run_python {mode}", lambda m=mode: run_python("x = 1", isolation=m).ok, n)
    for mode in modes:
        measure(f"grade {mode}", lambda m=mode: grade(SOLUTION, TESTS, isolation=m).passed, n)


if __name__ == "__main__":
    main()
