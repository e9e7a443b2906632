"""The routing reward model (training/services/item_scores.py): its margins are the reward model's own (checked
against the scorer directly), its MC-dropout spread is a real spread, unjudged pairs are served
hardest-first, pairs it cannot tell apart go to skill holders where someone holds the skill, and
hidden anchors, judged items' posteriors and other projects are left alone."""
from __future__ import annotations

import math
import uuid

import numpy as np
import pytest

from annotation.models import AnnotatorSkill, Item, Role
from calibration.models import CalibrationPolicy
from annotation.services.judgments import JudgmentInput
from annotation.services.queue import queue_next, queue_submit
from calibration.services.dynamic_k import informativeness_of
from rewards.formats import prompt_as_text
from rewards.models import PreferenceSet, RewardModel
from tests.factories import ItemFactory, ProjectFactory, api_as, make_anchor, member
from training.services import item_scores
from training.judge_backends import _reward_scorer
from training.models import ItemScoring

pytestmark = [pytest.mark.django_db, pytest.mark.train]


def _reward_model(project, path) -> RewardModel:
    preference_set = PreferenceSet.objects.create(project=project, version=1, policy={}, content_hash="0" * 64)
    return RewardModel.objects.create(project=project, preference_set=preference_set, name="router", base_model=path,
                                      path=path)


def test_margins_spread_order_and_skill_routing(tiny_backbone):
    project = ProjectFactory(overlap=3, skill_domains=["law"])
    items = [ItemFactory(project=project, prompt__domain="law" if i % 2 else "general") for i in range(8)]
    anchor = make_anchor(project)
    judged = items[0]
    person = member(project)
    holder = member(project)
    AnnotatorSkill.objects.create(project=project, user=holder, skill="law")
    # One item already judged by a person: people's judgments, not the model, say how informative it is.
    assignment = queue_next(project=project, annotator=person)
    while assignment.item_id != judged.pk:
        assignment = queue_next(project=project, annotator=member(project))
    queue_submit(assignment_id=assignment.pk, annotator=assignment.annotator, client_token=uuid.uuid4(),
                 data=JudgmentInput(choice="left", strength="clear", rationale="Left is better, surely."))
    before_judged = Item.objects.get(pk=judged.pk).informativeness
    reward_model = _reward_model(project, tiny_backbone)

    outcome = item_scores.items_score(project=project, reward_model=reward_model, mc_samples=6)

    assert outcome["scored"] == 8
    scorer = _reward_scorer(tiny_backbone)
    fresh = {i.pk: i for i in Item.objects.filter(pk__in=[i.pk for i in items]).select_related(
        "prompt", "response_a", "response_b")}
    prompts = [prompt_as_text(fresh[i.pk].prompt.messages) for i in items]
    oracle = scorer(prompts, [fresh[i.pk].response_a.text for i in items]) - scorer(
        prompts, [fresh[i.pk].response_b.text for i in items])
    assert [fresh[i.pk].rm_margin for i in items] == pytest.approx(list(oracle), abs=1e-5)
    spreads = np.array([fresh[i.pk].rm_spread for i in items])
    assert (spreads > 0).all(), "dropout on: the passes differ"
    for item in items[1:]:
        p = 1 / (1 + math.exp(-fresh[item.pk].rm_margin))
        assert fresh[item.pk].informativeness == informativeness_of(p)
    assert fresh[judged.pk].informativeness == before_judged
    uncertain = {i.pk for i in items if item_scores.rm_uncertain(fresh[i.pk].rm_margin, fresh[i.pk].rm_spread)}
    assert outcome["uncertain"] == len(uncertain)
    for item in items:
        law = fresh[item.pk].prompt.domain == "law"
        assert fresh[item.pk].needs_skill == (law and item.pk in uncertain)
    assert Item.objects.get(pk=anchor.item_id).rm_margin is None, "hidden anchors are never scored"
    # The queue serves the most informative open item first (priority being equal); no hidden
    # anchor may come instead (they are never scored).
    CalibrationPolicy.objects.update_or_create(project=project, defaults={"hidden_rate": 0.0})
    newcomer = member(project)
    served = queue_next(project=project, annotator=newcomer)
    open_for_newcomer = [i for i in fresh.values() if not i.needs_skill and i.pk != judged.pk]
    assert served.item.informativeness == max(i.informativeness for i in open_for_newcomer + [fresh[judged.pk]])


def test_zero_mc_passes_give_margins_only_and_the_job_reports_what_it_did(tiny_backbone):
    project = ProjectFactory()
    ItemFactory.create_batch(3, project=project)
    scoring = ItemScoring.objects.create(project=project, reward_model=_reward_model(project, tiny_backbone),
                                         mc_samples=0)
    done = item_scores.item_scoring_run(scoring_id=scoring.pk)
    assert done.status == "succeeded" and done.outcome["scored"] == 3 and done.percent == 100
    assert set(Item.objects.values_list("rm_spread", flat=True)) == {0.0}


def test_a_missing_model_fails_the_job_with_its_reason(tmp_path):
    project = ProjectFactory()
    ItemFactory(project=project)
    scoring = ItemScoring.objects.create(project=project, reward_model=_reward_model(project, str(tmp_path / "gone")))
    with pytest.raises(Exception):
        item_scores.item_scoring_run(scoring_id=scoring.pk)
    scoring.refresh_from_db()
    assert scoring.status == "failed" and "gone" in scoring.error


def test_leads_start_a_scoring_from_the_api_and_bad_requests_are_named(tiny_backbone):
    project = ProjectFactory()
    lead = member(project, Role.LEAD)
    reward_model = _reward_model(project, tiny_backbone)
    other = _reward_model(ProjectFactory(), tiny_backbone)
    client = api_as(lead)
    assert client.get(f"/api/projects/{project.slug}/routing/rm-scores/").status_code == 204
    wrong = client.post(f"/api/projects/{project.slug}/routing/rm-scores/", {"reward_model": other.pk}, format="json")
    assert wrong.status_code == 400 and "reward_model" in wrong.json()
    started = client.post(f"/api/projects/{project.slug}/routing/rm-scores/", {"reward_model": reward_model.pk,
                                                                             "mc_samples": 4}, format="json")
    assert started.status_code == 202 and started.json()["status"] == "queued"
    assert client.get(f"/api/projects/{project.slug}/routing/rm-scores/").json()["id"] == started.json()["id"]
