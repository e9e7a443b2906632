#!/usr/bin/env python
"""Can response time tell a hidden anchor from a live item? Measures it.

    bash scripts/services.sh up && source var/services.env
    .venv/bin/python bench/hidden_gold_timing.py [--cycles 1500]

One annotator labels --cycles items through the whole Django stack in process (URL routing,
middleware, session auth, DRF, templates; timed until the response is ready to send) against
PostgreSQL, with the project's
hidden-anchor rate at its default 10% and the natural random draw. Each next (the htmx fragment
and the API JSON, alternating) and each submit is timed and labelled afterwards by what it served.
Prints median / p90 / p99 per kind and a Mann-Whitney U test of "same distribution"; writes JSON to
bench/results/. The project it creates (slug bench-hidden-*) is left in the database: judgments
are protected from deletion by design.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.local")

import django  # noqa: E402

django.setup()

from django.core.handlers.wsgi import WSGIHandler  # noqa: E402
from django.test import Client, RequestFactory  # noqa: E402
from scipy.stats import mannwhitneyu  # noqa: E402

from annotation.models import Assignment, Role  # noqa: E402
from annotation.services.imports import import_file  # noqa: E402
from annotation.services.projects import membership_add, project_create  # noqa: E402
from calibration.services.anchors import anchors_import  # noqa: E402
from calibration.services.policy import policy_update  # noqa: E402


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--cycles", type=int, default=1500)
    args = parser.parse_args()
    from django.conf import settings
    from django.contrib.auth import get_user_model

    settings.ALLOWED_HOSTS = ["*"]  # the in-process test client's host
    slug = f"bench-hidden-{uuid.uuid4().hex[:8]}"
    project = project_create(slug=slug, name=slug, spec_text="# Bench", overlap=1, min_rationale_chars=5)
    tmp = ROOT / "var" / f"{slug}.jsonl"
    tmp.parent.mkdir(exist_ok=True)
    live_lines = [json.dumps({"prompt": f"Question {i}?", "responses": [f"Answer one to {i}.", f"Answer two to {i}."]})
                  for i in range(args.cycles + 10)]
    tmp.write_text("\n".join(live_lines) + "\n")
    import_file(project=project, path=tmp)
    anchor_lines = [json.dumps({"prompt": f"Gold question {i}?", "responses": [f"Right answer {i}.", f"Wrong answer {i}."],
                                "expert": {"choice": "a", "strength": "clear", "explanation": "A is right."}})
                    for i in range(args.cycles // 5)]
    anchors_import(project=project, lines=anchor_lines)
    # The bench answers blindly (about half its anchor answers are wrong): keep the drift
    # monitors from taking it off live work mid-run.
    policy_update(project=project, changes={"window_size": 1000, "window_min": 1000, "cusum_h": 100.0})
    tmp.unlink()
    User = get_user_model()
    user, _ = User.objects.get_or_create(username="bench-hidden-annotator")
    membership_add(project=project, user=user, role=Role.ANNOTATOR)
    client = Client()
    client.force_login(user)
    session_key = client.cookies[settings.SESSION_COOKIE_NAME].value
    factory = RequestFactory()
    factory.cookies[settings.SESSION_COOKIE_NAME] = session_key
    handler = WSGIHandler()

    def timed_post(path: str, body: dict | None = None) -> tuple[float, object]:
        """Time until the response is ready to send: what a WSGI server would then write. The
        test client would also count response.close(), where work deferred past the response
        runs, after the bytes have left in a real server."""
        if body is None:
            request = factory.post(path)
        else:
            request = factory.post(path, json.dumps(body), content_type="application/json")
        request._dont_enforce_csrf_checks = True
        started = time.perf_counter()
        response = handler.get_response(request)
        elapsed = (time.perf_counter() - started) * 1000
        response.close()
        return elapsed, response

    timings: dict[str, list[float]] = {"next live": [], "next anchor": [], "submit live": [], "submit anchor": []}
    for cycle in range(args.cycles):
        next_ms, response = timed_post(f"/api/projects/{slug}/next/" if cycle % 2 else f"/p/{slug}/label/next/")
        assert response.status_code == 200, response.status_code
        assignment = Assignment.objects.select_related("item").get(annotator=user, project=project, status="leased")
        kind = "live" if assignment.item.in_live_queue else "anchor"
        payload = {"choice": "left", "strength": "clear", "rationale": "Timing run answer.",
                   "client_token": str(uuid.uuid4())}
        submit_ms, done = timed_post(f"/api/assignments/{assignment.handle}/submit/", payload)
        assert done.status_code == 201, done.content
        if cycle >= 20:  # warm-up
            timings[f"next {kind}"].append(next_ms)
            timings[f"submit {kind}"].append(submit_ms)

    report = {}
    print(f"{'':14} {'n':>5} {'median':>8} {'p90':>8} {'p99':>8}  (ms)")
    for name, values in timings.items():
        report[name] = {"n": len(values), "median": statistics.median(values), "p90": percentile(values, 0.9),
                        "p99": percentile(values, 0.99)}
        r = report[name]
        print(f"{name:14} {r['n']:>5} {r['median']:>8.2f} {r['p90']:>8.2f} {r['p99']:>8.2f}")
    for step in ("next", "submit"):
        test = mannwhitneyu(timings[f"{step} live"], timings[f"{step} anchor"])
        delta = report[f"{step} anchor"]["median"] - report[f"{step} live"]["median"]
        report[f"{step} mann_whitney_p"] = test.pvalue
        print(f"{step}: anchor - live median = {delta:+.2f} ms, Mann-Whitney p = {test.pvalue:.3g}")
    out = ROOT / "bench" / "results" / f"hidden_gold_timing-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(report, indent=2))
    print(f"written {out}")


if __name__ == "__main__":
    main()
