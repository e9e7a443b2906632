"""A judge's work on a real Celery worker (the real Redis broker, the test PostgreSQL database),
started from the API as a lead would, against a real loopback chat-completions server; a job that
cannot go on ends failed with its reason. And the two model kinds of judge: a reward model from the
registry and a local causal LM, each labelling through the same submit path."""
from __future__ import annotations

import pytest

from annotation.models import Item, Judgment, Role
from rewards.models import PreferenceSet, RewardModel
from tests.factories import ItemFactory, ProjectFactory, api_as, celery_worker, job_wait, make_anchor, member
from tests.judge_server import judge_server
from training.services import judges
from training.models import JudgeCall, JudgeJob, JudgeKind, JudgeUse

pytestmark = pytest.mark.django_db(transaction=True)


def _wait(job_id: int, seconds: float = 60) -> JudgeJob:
    return job_wait(JudgeJob, job_id, seconds)


def test_a_lead_starts_calibration_and_prelabels_from_the_api_and_a_worker_does_them(settings):
    project = ProjectFactory(overlap=3)
    for _ in range(3):
        make_anchor(project, in_set=True, choice="a")
    items = [ItemFactory(project=project) for _ in range(5)]
    lead = member(project, Role.LEAD)
    client = api_as(lead)
    with judge_server(lambda left, right: ("A", 0.9) if left.startswith("Answer A") else ("B", 0.9)) as server, \
            celery_worker(settings):
        made = client.post(f"/api/projects/{project.slug}/judges/", {
            "name": "loopback", "kind": "endpoint", "endpoint_url": server.url, "endpoint_model": "m",
            "cost_per_call": 0.002}, format="json")
        assert made.status_code == 201, made.content
        judge_id = made.json()["id"]
        # Live work before calibration: the worker fails the job with the reason.
        early = client.post(f"/api/judges/{judge_id}/jobs/", {"use": "prelabel"}, format="json")
        assert early.status_code == 202
        failed = _wait(early.json()["id"])
        assert failed.status == "failed" and "calibration round comes first" in failed.error
        for use in ("calibration", "prelabel"):
            started = client.post(f"/api/judges/{judge_id}/jobs/", {"use": use}, format="json")
            assert started.status_code == 202 and started.json()["status"] == "queued"
            job = _wait(started.json()["id"])
            assert job.status == "succeeded", job.error
        assert job.outcome == {"labelled": 5} and (job.done, job.total, job.percent) == (5, 5, 100)
        seen = client.get(f"/api/judge-jobs/{job.pk}/").json()
        assert seen["status"] == "succeeded" and seen["outcome"] == {"labelled": 5}
    report = client.get(f"/api/judges/{judge_id}/").json()
    assert report["standing"] == "active" and report["labels"] == 5 and report["calls"] == 8
    assert report["cost"] == pytest.approx(8 * 0.002)
    labels = Judgment.objects.filter(item__in=items, by_judge=True)
    assert labels.count() == 5 and set(labels.values_list("choice", flat=True)) == {"a"}
    assert set(Item.objects.filter(pk__in=[i.pk for i in items]).values_list("judgment_count", "assigned_count")) == {(0, 0)}


@pytest.mark.train
def test_a_reward_model_from_the_registry_and_a_local_causal_lm_judge_through_the_submit_path(tiny_backbone, tmp_path):
    from training.generators.tiny import build_tiny_policy

    project = ProjectFactory(overlap=2)
    item = ItemFactory(project=project)
    preference_set = PreferenceSet.objects.create(project=project, version=1, policy={}, content_hash="0" * 64)
    reward_model = RewardModel.objects.create(project=project, preference_set=preference_set, name="tiny rm",
                                              base_model=tiny_backbone, path=tiny_backbone)
    by_rm = judges.judge_create(project=project, name="rm", kind=JudgeKind.REWARD_MODEL, reward_model=reward_model)
    policy_dir = build_tiny_policy(tmp_path / "policy")
    by_lm = judges.judge_create(project=project, name="lm", kind=JudgeKind.LOCAL_MODEL, model_dir=str(policy_dir))
    missing = judges.judge_create(project=project, name="gone", kind=JudgeKind.LOCAL_MODEL, model_dir=str(tmp_path / "no"))
    for judge in (by_rm, by_lm, missing):  # no calibration set: every rater is active at once
        call = judges.judge_label(judge=judge, item=item, purpose=JudgeUse.PRELABEL)
        if judge is missing:
            assert not call.ok and "is not there" in call.error and call.judgment_id is None
            continue
        assert call.ok, call.error
        assert 0.0 < call.p_a < 1.0
        assert call.choice == ("a" if call.p_a > 0.5 else "b" if call.p_a < 0.5 else "tie")
        judgment = Judgment.objects.get(pk=call.judgment_id)
        assert judgment.by_judge and judgment.annotator == judge.user and judgment.choice == call.choice
    assert "Reward model tiny rm: reward" in Judgment.objects.get(annotator=by_rm.user).rationale
    item.refresh_from_db()
    assert (item.judgment_count, item.assigned_count, item.target_judgments) == (0, 0, 2)
    assert JudgeCall.objects.filter(judge=by_lm, ok=True).get().tokens_in > 0
