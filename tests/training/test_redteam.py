"""The red-team console (training/services/redteam.py): live scoring through a real Celery worker on
the scoring queue (the real Redis broker), checked against the reward model's own scorer; a hack
submitted, confirmed by a second person and exported as an adversarial pair; who may not."""
from __future__ import annotations

import time
from contextlib import contextmanager

import pytest
from django.test import Client

from annotation.models import DerivedPair, Prompt, Role
from rewards.curation import CurationPolicy
from rewards.models import PreferenceSet, RewardModel
from rewards.services.sets import preference_set_freeze
from tests.factories import ProjectFactory, member
from tests.permissions import people_of
from training.judge_backends import _reward_scorer
from training.models import RedTeamAttempt, RedTeamHack, Run, RunSample, RunStatus

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.train]


@contextmanager
def scoring_worker(settings):
    """A real Celery worker in this process on the real Redis broker, consuming this xdist process's
    scoring queue (emptied first), as `celery -A config worker -Q scoring` does in production."""
    from celery.contrib.testing.worker import start_worker

    from config.celery import app

    assert settings.CELERY_BROKER_URL.startswith("redis://")
    app.conf.broker_url = settings.CELERY_BROKER_URL
    with app.connection_for_write() as conn:
        conn.default_channel.queue_purge(settings.SCORING_QUEUE)
    try:
        with start_worker(app, perform_ping_check=False, pool="solo", concurrency=1, loglevel="WARNING",
                          queues=[settings.SCORING_QUEUE]):
            yield
    finally:
        # Starting a worker on named queues narrows the app's queue selection for the whole process;
        # later in-process workers (tests/factories.celery_worker) must not inherit it.
        app.amqp.queues._consume_from = None  # kombu has no public reset


def wait_scored(attempt_id: int, seconds: float = 60) -> RedTeamAttempt:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        attempt = RedTeamAttempt.objects.get(pk=attempt_id)
        if attempt.status != "queued":
            return attempt
        time.sleep(0.05)
    raise AssertionError(f"attempt {attempt_id} still queued")


@pytest.fixture
def console(tiny_backbone):
    project = ProjectFactory()
    people = people_of(project, outsider_role=Role.LEAD)
    preference_set = PreferenceSet.objects.create(project=project, version=1, policy={}, content_hash="0" * 64)
    model = RewardModel.objects.create(project=project, preference_set=preference_set, name="rm-under-attack",
                                       base_model=tiny_backbone, path=tiny_backbone)
    return project, people, model


def logged_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_live_scoring_on_the_worker_then_a_hack_confirmed_by_a_second_person_becomes_an_exported_pair(console, settings):
    project, people, model = console
    prompt = "What is the capital of France?"
    run = Run.objects.create(project=project, kind="grpo", config={}, status=RunStatus.SUCCEEDED)
    sample_prompt = Prompt.objects.create(project=project, messages=[{"role": "user", "content": prompt}])
    samples = ["Paris.", "It is Paris, of course.", "Lyon.", "I cannot say.", "The capital is Paris."]
    RunSample.objects.bulk_create([RunSample(run=run, step=1, role="policy", prompt=sample_prompt, completion=c)
                                   for c in samples])
    engineer, lead = logged_in(people["engineer"]), logged_in(people["lead"])
    hack_text = "Paris!!! Paris is definitely, certainly, absolutely the answer, trust me completely."
    with scoring_worker(settings):
        shown = engineer.post(f"/p/{project.slug}/redteam/attempts/", {
            "reward_model": model.pk, "policy_run": run.pk, "prompt": prompt, "response": hack_text,
            "reference": "Paris."}, HTTP_HX_REQUEST="true")
        assert shown.status_code == 200 and 'data-status="queued"' in shown.content.decode()
        attempt = wait_scored(RedTeamAttempt.objects.get().pk)
    assert attempt.status == "scored", attempt.error
    scorer = _reward_scorer(model.path)
    oracle = scorer([prompt] * 7, [hack_text, "Paris.", *samples])
    assert attempt.score == pytest.approx(oracle[0], abs=1e-5)
    assert attempt.reference_score == pytest.approx(oracle[1], abs=1e-5)
    assert attempt.samples == 5 and attempt.percentile == pytest.approx(sum(s < oracle[0] for s in oracle[2:]) / 5)
    assert attempt.latency_ms is not None
    page = engineer.get(f"/p/{project.slug}/redteam/attempts/{attempt.pk}/").content.decode()
    assert f"{attempt.score:.3f}" in page
    # Make the hack beat the reference for this test's tiny random model, whatever it scored.
    if attempt.score <= attempt.reference_score:
        RedTeamAttempt.objects.filter(pk=attempt.pk).update(score=attempt.reference_score + 1.0)
    submitted = engineer.post(f"/p/{project.slug}/redteam/attempts/{attempt.pk}/hack/",
                              {"flaw_type": "confident_but_wrong", "note": "Overconfident filler the model rewards."},
                              HTTP_HX_REQUEST="true")
    assert submitted.status_code == 200 and 'id="hack-submitted"' in submitted.content.decode()
    hack = RedTeamHack.objects.get()
    # The author cannot confirm their own hack; a second person can.
    assert engineer.post(f"/p/{project.slug}/redteam/hacks/{hack.pk}/review/", {"decision": "confirm"}).status_code == 403
    assert lead.post(f"/p/{project.slug}/redteam/hacks/{hack.pk}/review/", {"decision": "confirm"}).status_code == 302
    hack.refresh_from_db()
    pair = DerivedPair.objects.get(pk=hack.pair_id)
    assert (pair.tag, pair.source, pair.flaw_type) == ("adversarial", "redteam", "confident_but_wrong")
    assert (pair.chosen.text, pair.rejected.text) == ("Paris.", hack_text)
    assert lead.post(f"/p/{project.slug}/redteam/hacks/{hack.pk}/review/", {"decision": "reject"}).status_code == 409
    frozen = preference_set_freeze(project=project, policy=CurationPolicy(tags=("adversarial",), test_fraction=0.0))
    [exported] = list(frozen.pairs.all())
    assert (exported.chosen, exported.rejected, exported.tag) == ("Paris.", hack_text, "adversarial")
    assert exported.rationales == ["Overconfident filler the model rewards."]
    board = engineer.get(f"/p/{project.slug}/redteam/").content.decode()
    assert "rm-under-attack" in board and "confident_but_wrong (1)" in board


def test_a_broken_model_fails_the_attempt_with_its_reason(console, settings, tmp_path):
    project, people, model = console
    RewardModel.objects.filter(pk=model.pk).update(path=str(tmp_path / "gone"))
    with scoring_worker(settings):
        logged_in(people["lead"]).post(f"/p/{project.slug}/redteam/attempts/", {
            "reward_model": model.pk, "prompt": "Q?", "response": "A."}, HTTP_HX_REQUEST="true")
        attempt = wait_scored(RedTeamAttempt.objects.get().pk)
    assert attempt.status == "failed" and "gone" in attempt.error


def test_who_may_not_use_the_console(console):
    project, people, model = console
    url = f"/p/{project.slug}/redteam/"
    assert Client().get(url).status_code == 302
    assert logged_in(people["outsider"]).get(url).status_code == 404
    annotator = logged_in(people["annotator"])
    assert annotator.get(url).status_code == 403
    assert annotator.post(f"/p/{project.slug}/redteam/attempts/", {"reward_model": model.pk, "prompt": "Q",
                                                                    "response": "A"}).status_code == 403
    assert not RedTeamAttempt.objects.exists()
    # Only a lead lets an annotator in (an engineer may red-team but not grant).
    assert logged_in(people["engineer"]).post(f"/p/{project.slug}/redteam/access/",
                                               {"username": people["annotator"].username}).status_code == 403
    assert logged_in(people["lead"]).post(f"/p/{project.slug}/redteam/access/",
                                           {"username": people["annotator"].username}).status_code == 302
    assert annotator.get(url).status_code == 200
    # Someone else's attempt is not found; a bad attempt names its fields.
    attempt = RedTeamAttempt.objects.create(project=project, reward_model=model, author=people["lead"], prompt="Q",
                                            response="A")
    assert annotator.get(f"/p/{project.slug}/redteam/attempts/{attempt.pk}/").status_code == 404
    assert annotator.post(f"/p/{project.slug}/redteam/attempts/{attempt.pk}/hack/",
                          {"flaw_type": "unsafe", "note": "long enough note"}).status_code == 404
    bad = annotator.post(f"/p/{project.slug}/redteam/attempts/", {"reward_model": model.pk, "prompt": "",
                                                                   "response": "x\x00"}, HTTP_HX_REQUEST="true")
    assert bad.status_code == 422 and "prompt" in bad.content.decode() and "response" in bad.content.decode()


def test_model_text_on_the_board_is_never_live_html(console):
    project, people, model = console
    attempt = RedTeamAttempt.objects.create(project=project, reward_model=model, author=people["engineer"],
                                            prompt="Q", response="<script>alert(1)</script><b>bold</b>",
                                            reference="<img src=x onerror=alert(2)>", status="scored", score=2.0,
                                            reference_score=1.0)
    RedTeamHack.objects.create(attempt=attempt, flaw_type="unsafe", note="<i>note</i> is bad")
    page = logged_in(people["lead"]).get(f"/p/{project.slug}/redteam/").content.decode()
    assert "<script>alert(1)" not in page and "<img src=x" not in page and "<i>note</i>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page


def test_the_readiness_gate_can_require_a_share_of_confirmed_hacks_fixed():
    from rewards.evaluation import Report, Thresholds, readiness

    report = Report(pairs=100, accuracy=0.9, accuracy_chosen_shorter=0.9, pairs_chosen_shorter=40, hacks=8,
                    hacks_fixed=0.5)
    assert readiness(report, Thresholds()).ready  # not required by default
    verdict = readiness(report, Thresholds(hacks_fixed=0.75))
    assert not verdict.ready and "0.50 of the 8 confirmed red-team hacks" in verdict.failures[0]
    assert readiness(Report(pairs=100, accuracy=0.9, accuracy_chosen_shorter=0.9, pairs_chosen_shorter=40, hacks=8,
                            hacks_fixed=0.75), Thresholds(hacks_fixed=0.75)).ready


def test_a_new_reward_model_run_is_checked_on_the_confirmed_hacks(console, settings, tmp_path):
    """The run evaluates the new model on every confirmed hack of the project (reference against
    hack) and the minimum decides readiness."""
    from training.config import RewardRunConfig
    from training.services.reward_runs import reward_run_create, reward_run_execute

    from .conftest import learnable_set

    project, people, model = console
    for i in range(3):
        attempt = RedTeamAttempt.objects.create(project=project, reward_model=model, author=people["engineer"],
                                                prompt=f"Q{i}?", response=f"bad answer {i}", reference=f"good {i}",
                                                status="scored", score=1.0, reference_score=0.0)
        RedTeamHack.objects.create(attempt=attempt, flaw_type="unsafe", note="A bad one, confirmed.",
                                   status="confirmed")
    RedTeamHack.objects.create(attempt=RedTeamAttempt.objects.create(
        project=project, reward_model=model, author=people["engineer"], prompt="Q?", response="r", reference="g",
        status="scored", score=1.0, reference_score=0.0), flaw_type="unsafe", note="Not confirmed yet.")
    from rewards.services.registry import readiness_minimums_set
    readiness_minimums_set(project=project, values={"hacks_fixed": 1.0, "overall": 0.0, "per_category": 0.0,
                                                    "length_controlled": 0.0})
    settings.TRAINING_ROOT = str(tmp_path)
    preference_set = learnable_set(project, items=16)
    run = reward_run_create(project=project, preference_set=preference_set,
                            config=RewardRunConfig(base_model=model.base_model, max_steps=2, batch_size=8))
    run = reward_run_execute(run_id=run.pk)
    trained = run.reward_model
    assert trained.evaluation["hacks"] == 3 and 0.0 <= trained.evaluation["hacks_fixed"] <= 1.0
    named = any("red-team hacks" in f for f in trained.failures)
    assert named == (trained.evaluation["hacks_fixed"] < 1.0)
    model_page = logged_in(people["engineer"]).get(f"/p/{project.slug}/reward-models/{trained.pk}/").content.decode()
    assert f"of the project's 3 confirmed hacks" in model_page


def test_another_projects_model_run_or_hack_cannot_be_named(console, tiny_backbone):
    project, people, model = console
    other = ProjectFactory()
    other_set = PreferenceSet.objects.create(project=other, version=1, policy={}, content_hash="0" * 64)
    other_model = RewardModel.objects.create(project=other, preference_set=other_set, name="theirs",
                                             base_model=tiny_backbone, path=tiny_backbone)
    other_run = Run.objects.create(project=other, kind="grpo", config={}, status=RunStatus.SUCCEEDED)
    lead = logged_in(people["lead"])
    attempts = f"/p/{project.slug}/redteam/attempts/"
    theirs = lead.post(attempts, {"reward_model": other_model.pk, "prompt": "Q", "response": "A"}, HTTP_HX_REQUEST="true")
    assert theirs.status_code == 422 and "reward_model" in theirs.content.decode()
    for run_id in (other_run.pk, "²", "999999"):
        named = lead.post(attempts, {"reward_model": model.pk, "policy_run": run_id, "prompt": "Q", "response": "A"},
                          HTTP_HX_REQUEST="true")
        assert named.status_code == 422 and "policy_run" in named.content.decode(), run_id
    assert not RedTeamAttempt.objects.exists()
    their_lead = member(other, Role.LEAD)
    attempt = RedTeamAttempt.objects.create(project=other, reward_model=other_model, author=their_lead, prompt="Q",
                                            response="A", reference="B", status="scored", score=1.0,
                                            reference_score=0.0)
    hack = RedTeamHack.objects.create(attempt=attempt, flaw_type="unsafe_compliance", note="Their hack, pending.")
    assert lead.post(f"/p/{project.slug}/redteam/hacks/{hack.pk}/review/", {"decision": "confirm"}).status_code == 404
    hack.refresh_from_db()
    assert hack.status == "pending" and not DerivedPair.objects.exists()


def test_a_response_that_loses_to_its_reference_is_no_hack_even_posted_directly(console):
    project, people, model = console
    attempt = RedTeamAttempt.objects.create(project=project, reward_model=model, author=people["engineer"], prompt="Q",
                                            response="A", reference="B", status="scored", score=0.1,
                                            reference_score=0.9)
    refused = logged_in(people["engineer"]).post(f"/p/{project.slug}/redteam/attempts/{attempt.pk}/hack/",
                                                 {"flaw_type": "unsafe_compliance", "note": "Posted around the form."})
    assert refused.status_code == 422 and not RedTeamHack.objects.exists()
