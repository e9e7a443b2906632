#!/usr/bin/env python
"""How long does the analytics dashboard take on a large project? Measures it.

    bash scripts/services.sh up && source var/services.env
    .venv/bin/python bench/analytics.py [--items 10000 --annotators 200 --per-item 100]

Fills PostgreSQL with a simulated pool (calibration.generators.simulation: honest experts, noisy and biased
annotators; 1,000,000 judgments by default) in a project named after the sizes, reused on later
runs. Then prints:
- the whole dashboard from scratch (load + every statistic + storing the snapshot), per phase;
- the dashboard from cache: the lead's page and the API's JSON through the whole Django stack
  in process (median of 10);
- Krippendorff's α (nominal) on the same data: ours from long-form pairs, against the
  `krippendorff` package on its dense annotators x items matrix and on a value-counts matrix.
Writes JSON to bench/results/.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.local")

import django  # noqa: E402

django.setup()

import numpy as np  # noqa: E402
from django.db import transaction  # noqa: E402
from django.test import Client  # noqa: E402
from tqdm import tqdm  # noqa: E402

from annotation.models import Project, Role  # noqa: E402
from annotation.services.projects import membership_add, project_create  # noqa: E402
from calibration import agreement  # noqa: E402
from calibration.generators import simulation as sm  # noqa: E402
from calibration.models import AnalyticsSnapshot  # noqa: E402
from calibration.services.analytics import dataset_load, snapshot_request, snapshot_run  # noqa: E402
from calibration.generators.simulation_store import simulation_store  # noqa: E402


def timed(fn, repeat: int = 1) -> tuple[float, object]:
    times, result = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), result


def kinds_for(n: int) -> list[str]:
    # Mostly honest, a few of each bias: 70% experts, 10% noisy, the rest spread over the biases.
    biased = ["length", "position", "assertive", "formatting", "fast"]
    kinds = ["expert"] * int(n * 0.7) + ["noisy"] * int(n * 0.1)
    while len(kinds) < n:
        kinds.append(biased[len(kinds) % len(biased)])
    return kinds


def project_for(items: int, annotators: int, per_item: int) -> Project:
    slug = f"bench-analytics-{items}x{per_item}-{annotators}"
    project = Project.objects.filter(slug=slug).first()
    if project and project.judgments.count() == items * per_item:
        print(f"reusing {slug}")
        return project
    if project:
        raise SystemExit(f"{slug} exists but is incomplete: drop it (or the database) and run again")
    print(f"simulating {items * per_item:,} judgments ...", flush=True)
    sim = sm.simulate(kinds=kinds_for(annotators), n_items=items, per_item=per_item, seed=0, days=56)
    project = project_create(slug=slug, name=slug, spec_text="# Bench", overlap=per_item, min_rationale_chars=5)
    bar = tqdm(total=sim.item.size, unit="judgment", desc="storing")
    t0 = time.perf_counter()
    with transaction.atomic():
        simulation_store(project=project, sim=sim, prefix=slug, batch_size=10_000,
                         progress=lambda done, total: bar.update(done - bar.n))
    bar.close()
    print(f"stored in {time.perf_counter() - t0:.0f} s")
    return project


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--items", type=int, default=10_000)
    parser.add_argument("--annotators", type=int, default=200)
    parser.add_argument("--per-item", type=int, default=100)
    args = parser.parse_args()
    from django.conf import settings
    from django.contrib.auth import get_user_model

    settings.ALLOWED_HOSTS = ["*"]
    project = project_for(args.items, args.annotators, args.per_item)
    result: dict = {"items": args.items, "annotators": args.annotators,
                    "judgments": args.items * args.per_item}

    # 1. From scratch: queue, compute, store.
    def scratch():
        snapshot = snapshot_request(project=project)
        return snapshot_run(snapshot_id=snapshot.pk)

    # snapshot_request enqueues on commit; in this script there is no worker, so run it here.
    from calibration import tasks

    tasks.compute_analytics.delay = lambda *a, **k: None
    seconds, snapshot = timed(scratch)
    result["scratch_s"] = round(seconds, 3)
    result["phases_ms"] = snapshot.payload["timings_ms"]
    result["payload_mb"] = round(len(json.dumps(snapshot.payload)) / 1e6, 2)
    print(f"\ndashboard from scratch: {seconds:.2f} s (snapshot {result['payload_mb']} MB)")
    for phase, ms in snapshot.payload["timings_ms"].items():
        print(f"  {phase:>18}: {ms} ms")

    # 2. From cache, through the whole Django stack.
    User = get_user_model()
    lead, _ = User.objects.get_or_create(username=f"{project.slug}-lead")
    if not project.memberships.filter(user=lead).exists():
        membership_add(project=project, user=lead, role=Role.LEAD)
    client = Client()
    client.force_login(lead)
    client.get(f"/p/{project.slug}/analytics/")  # warm up templates and connections
    page_s, page = timed(lambda: client.get(f"/p/{project.slug}/analytics/"), repeat=10)
    api_s, api = timed(lambda: client.get(f"/api/projects/{project.slug}/analytics/"), repeat=10)
    assert page.status_code == 200 and api.status_code == 200
    result["cached_page_ms"] = round(page_s * 1000, 1)
    result["cached_api_ms"] = round(api_s * 1000, 1)
    result["page_kb"] = round(len(page.content) / 1e3)
    print(f"dashboard from cache: page {page_s * 1000:.0f} ms ({result['page_kb']} kB), API JSON {api_s * 1000:.0f} ms")

    # 3. Krippendorff's alpha against the package on the same data.
    import krippendorff

    data = dataset_load(project=project)
    item, who, value = data.judgments.item, data.judgments.annotator, data.judgments.choice
    ours_s, ours = timed(lambda: agreement.krippendorff_alpha(
        agreement.value_counts(item, value, 4, len(data.item_ids)), "nominal"), repeat=5)
    dense = np.full((len(data.annotator_ids), len(data.item_ids)), np.nan)
    dense[who, item] = value
    pkg_s, pkg = timed(lambda: krippendorff.alpha(reliability_data=dense, level_of_measurement="nominal",
                                                   value_domain=[0, 1, 2, 3]), repeat=5)
    counts = agreement.value_counts(item, value, 4, len(data.item_ids))
    pkg_vc_s, _ = timed(lambda: krippendorff.alpha(value_counts=counts, level_of_measurement="nominal"), repeat=5)
    ours_vc_s, _ = timed(lambda: agreement.krippendorff_alpha(counts, "nominal"), repeat=5)
    boot_s, summary = timed(lambda: agreement.agreement_summary(counts, samples=200))
    assert abs(ours - pkg) < 1e-9, (ours, pkg)
    result.update({"alpha": round(ours, 6), "alpha_ours_ms": round(ours_s * 1000, 1),
                   "alpha_package_dense_ms": round(pkg_s * 1000, 1), "alpha_package_counts_ms": round(pkg_vc_s * 1000, 1),
                   "alpha_ours_counts_ms": round(ours_vc_s * 1000, 1),
                   "summary_with_200_bootstrap_ms": round(boot_s * 1000, 1)})
    print(f"Krippendorff's alpha = {ours:.4f} (package: {pkg:.4f})")
    print(f"  ours from (item, value) pairs: {ours_s * 1000:.1f} ms")
    print(f"  package, dense {dense.shape[0]}x{dense.shape[1]} matrix: {pkg_s * 1000:.1f} ms "
          f"({pkg_s / ours_s:.1f}x ours)")
    print(f"  both given the items x values count matrix: package {pkg_vc_s * 1000:.1f} ms, ours {ours_vc_s * 1000:.1f} ms")
    print(f"  all four pooled statistics with 200-sample bootstrap intervals: {boot_s * 1000:.0f} ms")

    out = ROOT / "bench" / "results"
    out.mkdir(exist_ok=True)
    path = out / f"analytics-{time.strftime('%Y%m%d-%H%M%S')}.json"
    path.write_text(json.dumps(result, indent=2))
    print(f"wrote {path.relative_to(ROOT)}")
    print(f"snapshots kept for this project: {AnalyticsSnapshot.objects.filter(project=project).count()}")


if __name__ == "__main__":
    main()
