"""Dynamic k (calibration/services/dynamic_k.py): a comparison starts at k_min judgments and gets one
more at a time while its winner is in doubt. Invariants tried through the real queue: never below
k_min, never above the overlap, hidden gold untouched; agreeing answers stop early and split ones
ask on; switching the policy brings every item's target in line; only leads change it."""
from __future__ import annotations

import math
import random
import uuid

import pytest

from annotation.models import Item, ItemKind, Judgment, Role
from annotation.services.judgments import JudgmentInput
from annotation.services.queue import queue_next, queue_skip, queue_submit
from annotation.sides import to_shown
from calibration.models import CalibrationPolicy
from calibration.services import dynamic_k
from tests.factories import ItemFactory, ProjectFactory, api_as, import_lines, make_anchor, member

pytestmark = pytest.mark.django_db


def _dynamic(project, **values):
    return dynamic_k.routing_update(project=project, changes={"dynamic_k": True, **values})


def _work(project, people, truth: dict[int, str], accuracy: float, rng: random.Random) -> None:
    """Annotators take turns asking for work and answer with the item's truth `accuracy` of the time."""
    busy = True
    while busy:
        busy = False
        for annotator in people:
            assignment = queue_next(project=project, annotator=annotator)
            if assignment is None:
                continue
            busy = True
            right = truth.get(assignment.item_id, "a")
            choice = right if rng.random() < accuracy else ("b" if right == "a" else "a")
            shown = to_shown(choice, shown_left=assignment.shown_left)
            queue_submit(assignment_id=assignment.pk, annotator=annotator, client_token=uuid.uuid4(),
                         data=JudgmentInput(choice=shown, strength="clear", rationale="A reason long enough."))


def test_the_posterior_and_the_next_target_by_hand():
    # Two raters at 0.8 for B, one at 0.9 for A: log-odds 2 ln 4 - ln 9.
    p = dynamic_k.winner_posterior([("b", 0.8), ("b", 0.8), ("a", 0.9), ("tie", 0.99)])
    assert p == pytest.approx(1 / (1 + math.exp(-(2 * math.log(4) - math.log(9)))))
    assert dynamic_k.winner_posterior([]) == 0.5
    project = ProjectFactory.build(overlap=5, k_min=2, stop_confidence=0.9)
    assert dynamic_k.next_target(judged=2, leased=2, posterior=0.94, no_winner=0, project=project) == 2
    assert dynamic_k.next_target(judged=2, leased=2, posterior=0.5, no_winner=0, project=project) == 3
    assert dynamic_k.next_target(judged=5, leased=5, posterior=0.6, no_winner=0, project=project) == 5  # the cap
    assert dynamic_k.next_target(judged=0, leased=0, posterior=0.5, no_winner=0, project=project) == 2  # the floor
    assert dynamic_k.next_target(judged=1, leased=4, posterior=0.99, no_winner=0, project=project) == 4  # leases stand
    assert dynamic_k.next_target(judged=3, leased=3, posterior=0.5, no_winner=2, project=project) == 3  # no winner


def test_through_the_queue_k_stays_within_its_bounds_gold_is_untouched_and_labels_are_saved():
    rng = random.Random(7)
    project = ProjectFactory(overlap=5)
    CalibrationPolicy.objects.update_or_create(project=project, defaults={"hidden_rate": 0.2})
    items = ItemFactory.create_batch(40, project=project)
    anchors = [make_anchor(project) for _ in range(4)]
    _dynamic(project, k_min=2, stop_confidence=0.9)
    assert {i.target_judgments for i in Item.objects.filter(pk__in=[i.pk for i in items])} == {2}
    truth = {item.pk: rng.choice("ab") for item in items}
    people = [member(project, Role.ANNOTATOR) for _ in range(8)]
    _work(project, people, truth, accuracy=0.85, rng=rng)

    live = Item.objects.filter(pk__in=[i.pk for i in items])
    counts = [item.judgment_count for item in live]
    assert all(2 <= n <= 5 for n in counts), counts
    assert all(2 <= item.target_judgments <= 5 and item.target_judgments == item.judgment_count for item in live)
    assert min(counts) == 2 and max(counts) > 2, "agreeing answers stopped at two, split ones asked on"
    # Most items that stopped early had votes agreeing (a 1-1 split can stop only when one of the
    # two raters is trusted far more than the other; the weights behind each decision have moved on
    # since, so the posterior is not recomputed here).
    early = [list(Judgment.objects.filter(item=item).values_list("choice", flat=True))
             for item in live.filter(judgment_count__lt=5)]
    assert sum(v.count("a") != v.count("b") for v in early) >= 0.8 * len(early), early
    assert sum(counts) < 5 * len(items) * 0.8, f"{sum(counts)} labels against {5 * len(items)} at k = 5"
    # Hidden gold: served, and its items keep their unlimited target.
    for anchor in anchors:
        anchor.item.refresh_from_db()
        assert anchor.item.target_judgments == Item.UNLIMITED_TARGET and not anchor.item.in_live_queue
    assert Judgment.objects.filter(item__anchor__isnull=False).exists()


def test_switching_the_policy_brings_every_target_in_line():
    project = ProjectFactory(overlap=4)
    items = ItemFactory.create_batch(3, project=project)
    import_lines(project, [{"prompt": "Rank these.", "responses": ["x", "y", "z"]}])
    assert all(i.target_judgments == 4 for i in items)
    _dynamic(project, k_min=2)
    assert {i.target_judgments for i in Item.objects.filter(pk__in=[i.pk for i in items])} == {2}
    assert Item.objects.get(project=project, kind=ItemKind.RANKING).target_judgments == 4, "rankings keep theirs"
    # New comparisons start at k_min while the policy is on.
    import_lines(project, [{"prompt": "New?", "responses": ["one", "two"]}])
    assert Item.objects.get(project=project, prompt__messages__icontains="New?").target_judgments == 2
    dynamic_k.routing_update(project=project, changes={"dynamic_k": False})
    assert set(Item.objects.filter(project=project, kind=ItemKind.COMPARISON).values_list(
        "target_judgments", flat=True)) == {4}


def test_only_leads_change_it_and_bad_values_are_refused_whole():
    project = ProjectFactory(overlap=3)
    lead, annotator, engineer = member(project, Role.LEAD), member(project), member(project, Role.ENGINEER)
    url = f"/api/projects/{project.slug}/routing/"
    assert api_as(lead).get(url).json() == {"dynamic_k": False, "k_min": 2, "stop_confidence": 0.95, "overlap": 3}
    for who in (annotator, engineer):
        assert api_as(who).patch(url, {"dynamic_k": True}, format="json").status_code == 403
    bad = api_as(lead).patch(url, {"dynamic_k": True, "k_min": 4}, format="json")
    assert bad.status_code in (400, 422) and "k_min" in str(bad.json())
    project.refresh_from_db()
    assert project.dynamic_k is False, "nothing saved"
    ok = api_as(lead).patch(url, {"dynamic_k": True, "stop_confidence": 0.9}, format="json")
    assert ok.status_code == 200 and ok.json()["dynamic_k"] is True


def test_the_weights_follow_what_the_aggregation_says_of_each_annotator():
    """Before anchors say anything, an annotator's weight is centred on Dawid-Skene's estimate of
    their accuracy from agreement: a rater who answers at random counts for less than careful ones."""
    from django.core.cache import cache

    rng = random.Random(3)
    project = ProjectFactory(overlap=4)
    items = ItemFactory.create_batch(40, project=project)
    truth = {item.pk: rng.choice("ab") for item in items}
    careful = [member(project) for _ in range(3)]
    coin = member(project)
    _work(project, careful, truth, accuracy=0.9, rng=rng)
    _work(project, [coin], truth, accuracy=0.5, rng=rng)
    cache.clear()
    weights = dynamic_k.annotator_accuracy(project_id=project.pk, annotator_ids=[p.pk for p in [*careful, coin]],
                                           project=project)
    assert weights[coin.pk] < 0.7 < min(weights[p.pk] for p in careful), weights
    # Without a fit (no project given) everyone starts at the prior's 0.8.
    assert set(dynamic_k.annotator_accuracy(project_id=project.pk, annotator_ids=[coin.pk]).values()) == {0.8}


def test_a_lead_turns_it_on_from_the_settings_page():
    from django.test import Client

    project = ProjectFactory(overlap=4)
    item = ItemFactory(project=project)
    client = Client()
    client.force_login(member(project, Role.LEAD))
    page = client.get(f"/p/{project.slug}/settings/").content.decode()
    assert 'action="/p/%s/settings/routing/"' % project.slug in page and 'name="dynamic_k"' in page
    answer = client.post(f"/p/{project.slug}/settings/routing/", {"dynamic_k": "on", "k_min": "2",
                                                                   "stop_confidence": "0.9"})
    assert answer.status_code == 302
    project.refresh_from_db()
    item.refresh_from_db()
    assert (project.dynamic_k, project.k_min, project.stop_confidence, item.target_judgments) == (True, 2, 0.9, 2)
    client.post(f"/p/{project.slug}/settings/routing/", {"dynamic_k": "on", "k_min": "9", "stop_confidence": "0.9"})
    project.refresh_from_db()
    assert project.k_min == 2, "a floor above the overlap is refused whole"


def test_the_one_coin_fit_agrees_with_the_full_dawid_skene_on_a_two_class_pool():
    import numpy as np

    from rewards.aggregation import dawid_skene

    rng = np.random.default_rng(5)
    accuracy = np.array([0.9, 0.9, 0.85, 0.8, 0.6, 0.5])
    truth = rng.integers(0, 2, 300)
    item = np.repeat(np.arange(300), 4)
    annotator = np.concatenate([rng.choice(6, 4, replace=False) for _ in range(300)])
    chose_b = np.where(rng.random(item.size) < accuracy[annotator], truth[item], 1 - truth[item])
    ours = dynamic_k.one_coin_accuracy(item, annotator, chose_b)
    _labels, confusion = dawid_skene([(int(i), int(a), "ab"[c]) for i, a, c in zip(item, annotator, chose_b)])
    for a in range(6):
        assert ours[a] == pytest.approx(float(np.mean(np.diag(confusion[a]))), abs=0.03)
        assert ours[a] == pytest.approx(accuracy[a], abs=0.08)


@pytest.mark.parametrize("anyone_skilled", [True, False])
def test_a_contested_comparison_in_a_skill_domain_goes_to_skill_holders(anyone_skilled):
    """After more than k_min judgments without a winner, an item of a skill domain is asked only of
    annotators holding the skill, if anyone holds it (else everyone may still answer)."""
    from annotation.models import AnnotatorSkill
    from tests.factories import PromptFactory

    project = ProjectFactory(overlap=5, skill_domains=["legal"])
    _dynamic(project, k_min=2, stop_confidence=0.95)
    prompt = PromptFactory(project=project, domain="Legal")
    item = ItemFactory(project=project, prompt=prompt, target_judgments=2)
    crowd = [member(project) for _ in range(4)]
    lawyer = member(project)
    if anyone_skilled:
        AnnotatorSkill.objects.create(project=project, user=lawyer, skill="legal")
    for annotator, choice in zip(crowd, ["a", "b", "a"]):  # 2-1: still in doubt at three
        assignment = queue_next(project=project, annotator=annotator)
        assert assignment.item_id == item.pk
        queue_submit(assignment_id=assignment.pk, annotator=annotator, client_token=uuid.uuid4(),
                     data=JudgmentInput(choice=to_shown(choice, shown_left=assignment.shown_left), strength="clear",
                                        rationale="A reason long enough."))
    item.refresh_from_db()
    assert item.target_judgments == 4 and item.needs_skill is anyone_skilled
    served = queue_next(project=project, annotator=crowd[3])
    assert (served is None) is anyone_skilled
    if anyone_skilled:
        assert queue_next(project=project, annotator=lawyer).item_id == item.pk


def test_switching_on_reads_the_judgments_already_made_and_off_clears_the_skill_routing():
    project = ProjectFactory(overlap=4)
    agreed, split, fresh = ItemFactory.create_batch(3, project=project)
    people = [member(project) for _ in range(2)]
    for annotator, answers in zip(people, [{agreed.pk: "a", split.pk: "a"}, {agreed.pk: "a", split.pk: "b"}]):
        for _ in range(2):
            assignment = queue_next(project=project, annotator=annotator)
            choice = answers[assignment.item_id]
            queue_submit(assignment_id=assignment.pk, annotator=annotator, client_token=uuid.uuid4(),
                         data=JudgmentInput(choice=to_shown(choice, shown_left=assignment.shown_left),
                                            strength="clear", rationale="A reason long enough."))
    assert Item.objects.get(pk=fresh.pk).judgment_count == 0
    Item.objects.filter(pk=split.pk).update(needs_skill=True)
    _dynamic(project, k_min=2, stop_confidence=0.9)
    targets = dict(Item.objects.filter(project=project).values_list("pk", "target_judgments"))
    # 2-0 at the prior's 0.8 each: 0.94, done; 1-1: one more; none yet: k_min.
    assert (targets[agreed.pk], targets[split.pk], targets[fresh.pk]) == (2, 3, 2)
    dynamic_k.routing_update(project=project, changes={"dynamic_k": False})
    assert not Item.objects.filter(project=project, needs_skill=True).exists()


def test_the_queue_serves_the_comparison_most_in_doubt_first():
    """Under dynamic k an item's informativeness is 1000·(1 − |2P − 1|): a 1–1 split (P = 0.5) comes
    before a fresh item (500), which comes before one whose first two judgments agree. The lead's
    priority still comes first, and switching dynamic k off forgets the posterior's ordering."""
    project = ProjectFactory(overlap=5)
    split, agreed, fresh = (ItemFactory(project=project) for _ in range(3))
    urgent = ItemFactory(project=project, priority=5)
    _dynamic(project, k_min=2)
    people = [member(project) for _ in range(4)]

    def answer(who, item, canonical):
        assignment = queue_next(project=project, annotator=who)
        while assignment.item_id != item.pk:  # skip to the item wanted (skipped items never come back)
            queue_skip(assignment_id=assignment.pk, annotator=who)
            assignment = queue_next(project=project, annotator=who)
        queue_submit(assignment_id=assignment.pk, annotator=who, client_token=uuid.uuid4(), data=JudgmentInput(
            choice=to_shown(canonical, shown_left=assignment.shown_left), strength="clear", rationale="My reason."))

    answer(people[0], split, "a")
    answer(people[1], split, "b")
    answer(people[2], agreed, "a")
    answer(people[3], agreed, "a")
    values = dict(Item.objects.filter(pk__in=[split.pk, agreed.pk, fresh.pk]).values_list("pk", "informativeness"))
    assert values[split.pk] == 1000 and values[fresh.pk] == 500 and values[agreed.pk] < 500
    newcomer = member(project)
    order = []
    while (a := queue_next(project=project, annotator=newcomer)) is not None:
        order.append(a.item_id)
        queue_skip(assignment_id=a.pk, annotator=newcomer)
    assert order[:2] == [urgent.pk, split.pk]
    assert order.index(fresh.pk) < order.index(agreed.pk)  # two agreeing at the prior's 0.8 are not yet 0.95
    dynamic_k.routing_update(project=project, changes={"dynamic_k": False})
    assert set(Item.objects.filter(pk__in=[split.pk, agreed.pk]).values_list("informativeness", flat=True)) == {500}
