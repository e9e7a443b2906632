#!/usr/bin/env python
"""How fast does a frozen preference set export, and does memory stay flat? Measures it.

    bash scripts/services.sh up && source var/services.env
    .venv/bin/python bench/export.py [--pairs 1000000]

Builds (once, reused on later runs) a frozen set of N synthetic pairs in PostgreSQL, written with
COPY. Then streams it to a file three times each:
- our export: rewards.services.sets.set_rows -> TRL JSONL (the path the API and export_set use);
- the physical reference: PostgreSQL's COPY (SELECT the same columns ORDER BY position) TO STDOUT.
Prints rows/s for both, their ratio, and peak memory (RSS growth over the run, and the Python heap
peak from tracemalloc). Aim (issue 6): at least half of COPY's rate, flat memory. Writes JSON to
bench/results/.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.local")

import django  # noqa: E402

django.setup()

from django.db import connection, transaction  # noqa: E402
from tqdm import tqdm  # noqa: E402

from annotation.models import Project  # noqa: E402
from annotation.services.projects import project_create  # noqa: E402
from rewards.curation import CurationPolicy  # noqa: E402
from rewards.formats import jsonl_line  # noqa: E402
from rewards.models import PreferenceSet, SetPair  # noqa: E402
from rewards.services.sets import set_jsonl, set_rows  # noqa: E402

WORDS = ("the answer is correct because the function returns a new list and keeps the original "
         "order while the other response invents a method that does not exist in python").split()


def rss_mb() -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def build(n: int) -> PreferenceSet:
    slug = f"bench-export-{n}"
    project = Project.objects.filter(slug=slug).first() or project_create(slug=slug, name=f"Bench export {n:,}")
    existing = PreferenceSet.objects.filter(project=project, counts__pairs=n, name="synthetic-2").first()
    if existing is not None:
        return existing
    rng = random.Random(7)
    policy = CurationPolicy()
    with transaction.atomic():
        version = PreferenceSet.objects.filter(project=project).count() + 1
        s = PreferenceSet.objects.create(project=project, version=version, policy=policy.to_dict(), content_hash="0" * 64,
                                         counts={"pairs": n, "by_split": {"train": n}}, name="synthetic-2")
        table = SetPair._meta.db_table
        cols = ("preference_set_id, position, key, messages, prompt_text, chosen, rejected, strength, margin, tag, "
                "flaw_type, domain, difficulty, confidence, votes, split, rationales")
        with connection.cursor() as cursor, cursor.connection.cursor().copy(f'COPY "{table}" ({cols}) FROM STDIN') as copy:
            for i in tqdm(range(n), desc="writing the set (COPY)", unit="pair", mininterval=2):
                prompt = " ".join(rng.choices(WORDS, k=rng.randint(8, 30))) + "?"
                chosen = " ".join(rng.choices(WORDS, k=rng.randint(20, 80)))
                rejected = " ".join(rng.choices(WORDS, k=rng.randint(20, 80)))
                copy.write_row((s.pk, i, f"item:{i}", json.dumps([{"role": "user", "content": prompt}]), prompt, chosen, rejected,
                                "clear", 0.666667, "comparison", "", "general", "", 1.0, 1, "train", "[]"))
    return s


def ours(s: PreferenceSet, path: str, *, fmt: str = "trl", python_path: bool = False) -> dict:
    """Our export to a file: the API's and export_set's path (set_jsonl), or with `python_path`
    the portable one every other database uses (set_rows + json). RSS sampled every chunk."""
    before = rss_mb()
    peak_rss = before
    t0 = time.perf_counter()
    rows = 0
    if python_path:
        chunks = (jsonl_line(r).encode() for r in set_rows(preference_set=s, fmt=fmt))
    else:
        chunks = set_jsonl(preference_set=s, fmt=fmt)
    with open(path, "wb") as sink:
        for i, chunk in enumerate(chunks):
            sink.write(chunk)
            rows += chunk.count(b"\n")
            if i % (2000 if python_path else 20) == 0:
                peak_rss = max(peak_rss, rss_mb())
    seconds = time.perf_counter() - t0
    peak_rss = max(peak_rss, rss_mb())
    return {"format": fmt, "python_path": python_path, "rows": rows, "seconds": seconds, "rows_per_s": rows / seconds,
            "rss_growth_mb": peak_rss - before, "bytes": os.path.getsize(path)}


def copy_reference(s: PreferenceSet, path: str) -> dict:
    table = SetPair._meta.db_table
    sql = (f'COPY (SELECT messages, chosen, rejected, margin, tag, flaw_type FROM "{table}" '
           f"WHERE preference_set_id = {int(s.pk)} ORDER BY position) TO STDOUT")
    t0 = time.perf_counter()
    rows = 0
    with open(path, "wb") as sink, connection.cursor() as cursor, cursor.connection.cursor().copy(sql) as copy:
        for chunk in copy:
            sink.write(chunk)
    seconds = time.perf_counter() - t0
    with open(path, "rb") as fh:
        rows = sum(1 for _ in fh)
    return {"rows": rows, "seconds": seconds, "rows_per_s": rows / seconds, "bytes": os.path.getsize(path)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pairs", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    if connection.vendor != "postgresql":
        sys.exit("bench/export.py measures PostgreSQL: source var/services.env first")
    s = build(args.pairs)
    results = {"pairs": args.pairs, "ours": [], "conversational": [], "copy": [], "python_path": []}
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.repeat):
            results["copy"].append(copy_reference(s, f"{tmp}/copy.txt"))
            results["ours"].append(ours(s, f"{tmp}/trl.jsonl"))
            results["conversational"].append(ours(s, f"{tmp}/conv.jsonl", fmt="trl-conversational"))
            o, v, c = results["ours"][-1], results["conversational"][-1], results["copy"][-1]
            print(f"run {i + 1}: ours trl {o['rows_per_s']:,.0f} rows/s ({o['seconds']:.1f} s, RSS +{o['rss_growth_mb']:.0f} MB), "
                  f"conversational {v['rows_per_s']:,.0f} rows/s (RSS +{v['rss_growth_mb']:.0f} MB); "
                  f"COPY {c['rows_per_s']:,.0f} rows/s ({c['seconds']:.1f} s)")
        # The portable path (SQLite and other databases), once: for the record.
        results["python_path"].append(ours(s, f"{tmp}/py.jsonl", python_path=True))
        p = results["python_path"][-1]
        print(f"portable Python path: {p['rows_per_s']:,.0f} rows/s (RSS +{p['rss_growth_mb']:.0f} MB)")
    ratio = statistics.median(o["rows_per_s"] for o in results["ours"]) / statistics.median(c["rows_per_s"] for c in results["copy"])
    results["ratio_median"] = ratio
    print(f"median ratio ours / COPY: {ratio:.2f} (aim: at least 0.5)")
    out = ROOT / "bench" / "results"
    out.mkdir(exist_ok=True)
    (out / f"export-{args.pairs}.json").write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
