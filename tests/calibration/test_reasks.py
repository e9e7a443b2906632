"""Swapped re-asks (calibration/services/reasks.py): an annotator is asked again, later, a comparison
they judged, with the sides swapped. The invariants tried here: a re-ask never counts toward any
item's k and never reaches anyone else; it is served like new work (same payload, handle, counts,
statements) with the other side on the left; it is in no set, count, agreement figure or lead's
list; the flip rate equals a hand count, with Wilson's interval (statsmodels as the oracle), and is
shown only after 40 re-asks; self-consistency moves the bias-aware aggregation's reliabilities."""
from __future__ import annotations

import random
import re
import uuid
from collections import Counter

import numpy as np
import pytest
from django.test import Client
from scipy.stats import ttest_rel
from statsmodels.stats.proportion import proportion_confint

from annotation.models import Assignment, AssignmentStatus, Item, Judgment, Role
from annotation.selectors import judgments_visible_to, project_overview
from annotation.services.judgments import JudgmentInput
from annotation.services.queue import queue_next, queue_submit
from annotation.services.routing import annotator_progress
from annotation.sides import other_side, to_shown
from calibration.models import CalibrationPolicy
from calibration.services import queue as calibration_queue
from calibration.services import reasks
from calibration.services.analytics import analytics_compute
from rewards.bias_aware import bias_aware_fit, consistency_prior
from tests.factories import ItemFactory, ProjectFactory, api_as, member, submit_payload

pytestmark = pytest.mark.django_db


@pytest.fixture
def seeded(monkeypatch):
    """The two draws (plan a re-ask after a submit; serve one on a request) from seeded generators,
    so a run is the same every time."""
    monkeypatch.setattr(reasks, "_rng", random.Random(3))
    monkeypatch.setattr(calibration_queue, "_rng", random.Random(5))


def _policy(project, **values):
    CalibrationPolicy.objects.update_or_create(project=project, defaults={"hidden_rate": 0.0, **values})


def _submit(annotator, assignment, choice: str) -> Judgment:
    """Answer through queue_submit (as the page and the API do: the hooks run) with a canonical
    choice turned into the side this assignment showed."""
    shown = to_shown(choice, shown_left=assignment.shown_left)
    return queue_submit(assignment_id=assignment.pk, annotator=annotator, client_token=uuid.uuid4(),
                        data=JudgmentInput(choice=shown, strength="clear" if shown in ("left", "right") else "",
                                           rationale="A reason that is long enough.")).judgment


def _answer(project, annotator, canonical) -> list[Judgment]:
    """Work through the queue, answering each comparison with canonical(assignment)."""
    made = []
    while (assignment := queue_next(project=project, annotator=annotator)) is not None:
        made.append(_submit(annotator, assignment, canonical(assignment)))
    return made


def test_reasks_never_count_toward_k_never_reach_anyone_else_and_swap_the_sides(seeded):
    project = ProjectFactory(overlap=2)
    _policy(project, reask_rate=0.3)
    ItemFactory.create_batch(40, project=project)
    people = [member(project, Role.ANNOTATOR) for _ in range(3)]
    for annotator in people:  # in turns, so they compete for the same items
        _answer(project, annotator, lambda a: "a")
    live = Judgment.objects.filter(project=project, reask_of__isnull=True)
    again = Judgment.objects.filter(project=project, reask_of__isnull=False).select_related("reask_of", "item")
    assert again.count() >= 5, "the seeded run served re-asks"

    # k: every live item has exactly its overlap of live judgments and of assignments counted.
    per_item = Counter(live.values_list("item_id", flat=True))
    originals = Item.objects.filter(project=project, reask_of__isnull=True)
    assert set(per_item.values()) == {2} and len(per_item) == originals.count() == 40
    for item in originals:
        assert (item.assigned_count, item.judgment_count) == (2, 2)

    for judgment in again:
        first = judgment.reask_of
        # Only the annotator who judged the pair gets it again, with the other side on the left.
        assert judgment.annotator_id == first.annotator_id
        assert judgment.shown_left == other_side(first.shown_left)
        assert (judgment.item.prompt_id, judgment.item.response_a_id, judgment.item.response_b_id) == (
            first.item.prompt_id, first.item.response_a_id, first.item.response_b_id)
        assert not judgment.item.in_live_queue and judgment.item.target_judgments == 1
        # Later: at least REASK_MIN_GAP of their own judgments came between the two.
        between = live.filter(annotator_id=first.annotator_id, id__gt=first.id,
                              created_at__lte=judgment.item.created_at).count()
        assert between >= reasks.REASK_MIN_GAP - 1, between
        assert first.item.reask_of_id is None, "a re-ask is never asked again"
    shadows = Item.objects.filter(project=project, reask_of__isnull=False)
    owners = dict(shadows.values_list("pk", "reask_of__annotator_id"))
    for assignment in Assignment.objects.filter(item__in=shadows):
        assert assignment.annotator_id == owners[assignment.item_id], "a re-ask reached someone else"
    # Each annotator's "N done" counts their re-asks as work, as it would new work.
    for annotator in people:
        done = Assignment.objects.filter(annotator=annotator, status=AssignmentStatus.SUBMITTED).count()
        assert annotator_progress(project=project, annotator=annotator)["done"] == done
        assert done == live.filter(annotator=annotator).count() + again.filter(annotator=annotator).count()


def test_a_pending_reask_waits_while_no_live_comparison_is_left(seeded):
    """As hidden anchors: once live work is over, an item arriving could only be a re-ask."""
    project = ProjectFactory(overlap=1)
    _policy(project, reask_rate=0.0)
    ItemFactory.create_batch(12, project=project)
    annotator = member(project)
    _answer(project, annotator, lambda a: "a")
    assert reasks.reask_plan(project_id=project.pk, annotator_id=annotator.pk) is not None
    _policy(project, reask_rate=0.3)
    calibration_queue._rng.random = lambda: 0.0  # every serving draw asks for a re-ask
    assert queue_next(project=project, annotator=annotator) is None
    ItemFactory(project=project)  # live work again: now the re-ask may come
    served = queue_next(project=project, annotator=annotator)
    assert served.item.reask_of_id is not None


def test_plan_never_picks_the_last_ten_an_anchor_or_a_judgment_twice(seeded):
    from tests.factories import make_anchor

    project = ProjectFactory(overlap=1)
    _policy(project, reask_rate=0.0)
    ItemFactory.create_batch(14, project=project)
    annotator = member(project)
    assert reasks.reask_plan(project_id=project.pk, annotator_id=annotator.pk) is None
    _answer(project, annotator, lambda a: "a")
    anchor = make_anchor(project)
    mine = list(Judgment.objects.filter(annotator=annotator).order_by("id"))
    assert len(mine) == 14
    planned = [reasks.reask_plan(project_id=project.pk, annotator_id=annotator.pk) for _ in range(6)]
    made = [p for p in planned if p is not None]
    assert len(made) == 4, "only the four judged before the last ten qualify, each once"
    assert {p.reask_of_id for p in made} == {j.pk for j in mine[:4]}
    assert all(p.reask_of.item_id != anchor.item_id for p in made)


def test_a_reask_is_served_like_new_work(seeded, monkeypatch):
    """The same payload keys and types, a handle of the same form, the texts of the earlier item
    with the sides swapped; "done" moves by one; the annotator's own list shows it like any other."""
    project = ProjectFactory(overlap=1)
    _policy(project, reask_rate=0.0)
    ItemFactory.create_batch(14, project=project)
    annotator = member(project)
    client = api_as(annotator)

    def next_():
        response = client.post(f"/api/projects/{project.slug}/next/")
        assert response.status_code == 200, response.content
        return response.json()

    seen = {}
    for _ in range(11):
        body = next_()
        seen[body["assignment"]] = body
        answer = client.post(f"/api/assignments/{body['assignment']}/submit/", submit_payload("left"), format="json")
        assert answer.status_code == 201
        live_answer = answer.json()
    planned = reasks.reask_plan(project_id=project.pk, annotator_id=annotator.pk)
    earlier = seen[planned.reask_of.assignment.handle]
    live = next_()
    client.post(f"/api/assignments/{live['assignment']}/skip/")
    _policy(project, reask_rate=0.3)
    monkeypatch.setattr(calibration_queue._rng, "random", lambda: 0.0)
    again = next_()
    assert Assignment.objects.get(handle=again["assignment"]).item_id == planned.pk

    shape = lambda body: {k: type(v).__name__ for k, v in body.items()}  # noqa: E731
    assert shape(again) == shape(live) and set(again) == set(live)
    assert re.fullmatch(r"[A-Za-z0-9_-]+", again["assignment"]) and len(again["assignment"]) == len(live["assignment"])
    assert again["prompt"] == earlier["prompt"]
    assert (again["left"], again["right"]) == (earlier["right"], earlier["left"]), "sides swapped"

    done_before = client.get(f"/api/projects/{project.slug}/judgments/").json()["count"]
    answer = client.post(f"/api/assignments/{again['assignment']}/submit/", submit_payload("left"), format="json")
    assert answer.status_code == 201 and shape(answer.json()) == shape(live_answer)
    listed = client.get(f"/api/projects/{project.slug}/judgments/").json()
    assert listed["count"] == done_before + 1
    assert {shape(row) == shape(listed["results"][0]) for row in listed["results"]} == {True}
    assert annotator_progress(project=project, annotator=annotator)["done"] == 12


def test_reasks_are_in_no_set_count_agreement_or_lead_list(seeded):
    from dataclasses import replace

    from rewards.curation import CurationPolicy
    from rewards.selectors import export_sources
    from rewards.services.sets import preference_set_freeze

    project = ProjectFactory(overlap=2)
    _policy(project, reask_rate=0.3)
    ItemFactory.create_batch(30, project=project)
    people = [member(project, Role.ANNOTATOR) for _ in range(2)]
    for annotator in people:
        _answer(project, annotator, lambda a: "a")
    lead = member(project, Role.LEAD)
    live = Judgment.objects.filter(project=project, reask_of__isnull=True)
    reask_count = Judgment.objects.filter(project=project, reask_of__isnull=False).count()
    assert reask_count >= 2 and live.count() == 60

    assert project_overview(project=project)["judgments"] == 60
    assert project_overview(project=project)["items"] == 30
    assert judgments_visible_to(user=lead, project=project).count() == 60
    assert judgments_visible_to(user=people[0], project=project).filter(reask_of__isnull=False).exists()
    assert export_sources(project=project).comparisons == 60
    payload = analytics_compute(project=project)
    assert payload["counts"]["judgments"] == 60 and payload["counts"]["items"] == 30
    assert payload["consistency"]["reasks"] == reask_count
    client = Client()
    client.force_login(lead)
    page = client.get(f"/p/{project.slug}/items/?kind=comparison").content.decode()
    assert 'id="item-count">30 items' in page
    shadows = set(Item.objects.filter(project=project, reask_of__isnull=False).values_list("pk", flat=True))
    assert shadows and not any(f'id="item-{pk}"' in page for pk in shadows)

    for aggregation in ("dawid_skene", "bias_aware", "none"):
        frozen = preference_set_freeze(project=project, policy=replace(CurationPolicy(), aggregation=aggregation))
        keys = set(frozen.pairs.values_list("key", flat=True))
        assert len(keys) == (60 if aggregation == "none" else 30), (aggregation, len(keys))
        assert not any(key == f"item:{pk}" for key in keys for pk in shadows)
        reask_ids = set(Judgment.objects.filter(reask_of__isnull=False).values_list("pk", flat=True))
        assert not any(key == f"judgment:{pk}" for key in keys for pk in reask_ids)
        if aggregation == "bias_aware":  # their self-consistency went into the reliabilities, said in the report
            assert frozen.counts["annotators_with_reasks_in_reliability"] == 2, frozen.counts


def _serve_scripted_reasks(project, annotator, answers: list[str]) -> None:
    """Serve the annotator's pending re-asks one by one through the queue and answer each with the
    canonical choice scripted for it."""
    calibration_queue._rng.random = lambda: 0.0
    for choice in answers:
        assignment = queue_next(project=project, annotator=annotator)
        assert assignment.item.reask_of_id is not None
        _submit(annotator, assignment, choice)


def test_the_flip_rate_equals_a_hand_count_and_shows_after_forty(seeded):
    project = ProjectFactory(overlap=1)
    _policy(project, reask_rate=0.0)
    ItemFactory.create_batch(60, project=project)
    annotator = member(project)
    firsts = ["a", "b", "tie", "both_bad"]
    done = 0

    def first_answer(_assignment):
        nonlocal done
        done += 1
        return firsts[done % 4] if done <= 55 else "a"

    calibration_queue._rng.random = lambda: 1.0
    for _ in range(55):  # 55 live judgments, 5 live items left so re-asks can be served
        assignment = queue_next(project=project, annotator=annotator)
        _submit(annotator, assignment, first_answer(assignment))
    for _ in range(39):
        assert reasks.reask_plan(project_id=project.pk, annotator_id=annotator.pk) is not None
    _policy(project, reask_rate=0.3)
    # Re-asks are served oldest plan first; answer every third one differently from the first time.
    plans = list(Item.objects.filter(project=project, reask_of__isnull=False).order_by("id").select_related("reask_of"))
    scripted = []
    for n, plan in enumerate(plans):
        before = plan.reask_of.choice
        scripted.append(("b" if before == "a" else "a") if n % 3 == 0 else before)
    _serve_scripted_reasks(project, annotator, scripted)
    by_hand = sum(1 for plan, answer in zip(plans, scripted) if answer != plan.reask_of.choice)
    assert by_hand == 13

    row = reasks.self_consistency(project=project)[annotator.pk]
    assert (row.reasks, row.flips, row.pending) == (39, 13, 0)
    assert not row.enough, "39 re-asks: not yet shown"
    payload = analytics_compute(project=project)["consistency"]["annotators"][0]
    assert payload["shown"] is False and payload["reasks"] == 39

    assert reasks.reask_plan(project_id=project.pk, annotator_id=annotator.pk) is not None
    _serve_scripted_reasks(project, annotator, ["b" if plans[0].reask_of.choice == "a" else "a"])  # a 40th, a flip
    # The 40th re-ask's earlier answer differs from "a"/"b" as scripted; count it by hand too.
    last = Judgment.objects.filter(project=project, reask_of__isnull=False).order_by("-id").first()
    flips = 13 + (last.choice != last.reask_of.choice)
    row = reasks.self_consistency(project=project)[annotator.pk]
    assert (row.reasks, row.flips) == (40, flips) and row.enough
    low, high = proportion_confint(flips, 40, alpha=0.05, method="wilson")
    assert row.interval == pytest.approx((low, high), abs=1e-9)
    payload = analytics_compute(project=project)["consistency"]["annotators"][0]
    assert payload["shown"] is True and payload["flip_rate"] == round(flips / 40, 4)
    assert payload["ci_low"] == round(low, 4) and payload["ci_high"] == round(high, 4)


def test_the_dashboard_shows_the_flip_rate_with_its_interval(seeded):
    from calibration.services.analytics import snapshot_request, snapshot_run

    project = ProjectFactory(overlap=1)
    _policy(project, reask_rate=0.0)
    ItemFactory.create_batch(55, project=project)
    annotator = member(project, username="steady")
    calibration_queue._rng.random = lambda: 1.0
    for _ in range(52):
        _submit(annotator, queue_next(project=project, annotator=annotator), "a")
    for _ in range(40):
        reasks.reask_plan(project_id=project.pk, annotator_id=annotator.pk)
    _policy(project, reask_rate=0.3)
    _serve_scripted_reasks(project, annotator, ["a"] * 40)
    snapshot_run(snapshot_id=snapshot_request(project=project).pk)  # what the worker does
    lead = member(project, Role.LEAD)
    client = Client()
    client.force_login(lead)
    html = client.get(f"/p/{project.slug}/analytics/?section=annotators").content.decode()
    row = re.search(r'<table class="data" id="consistency-table">.*?</table>', html, re.S).group(0)
    flips = reasks.self_consistency(project=project)[annotator.pk]
    low, high = flips.interval
    assert "steady" in row and f"({round(low, 4)}–{round(high, 4)})" in row, row
    assert 'id="chart-consistency"' in html
    # Annotators may not see it: the analytics pages are for leads and engineers.
    other = Client()
    other.force_login(annotator)
    assert other.get(f"/p/{project.slug}/analytics/?section=annotators").status_code in (403, 404)


def test_the_consistency_prior_follows_the_flip_rate():
    assert consistency_prior(0, 0) == (1.0, 0.5)
    centres = [consistency_prior(40, flips)[0] for flips in (0, 4, 10, 16, 20)]
    assert centres == sorted(centres, reverse=True) and centres[-1] == pytest.approx(0.0, abs=0.05)
    # By hand: f = 0.1 -> p = (1 + sqrt(0.8)) / 2 = 0.947214 -> logit 2.887271.
    assert consistency_prior(40, 4)[0] == pytest.approx(np.log(0.947214 / 0.052786), abs=1e-4)
    # More re-asks, more weight.
    assert consistency_prior(80, 8)[1] > consistency_prior(40, 4)[1] > 0.5


def _pool(seed: int, ps: np.ndarray, n_items: int, k: int = 3, reasks_each: int = 40):
    rng = np.random.default_rng(seed)
    truth = rng.integers(0, 2, n_items)
    item, annotator, chose_b = [], [], []
    for i in range(n_items):
        for a in rng.choice(ps.size, k, replace=False):
            item.append(i)
            annotator.append(a)
            chose_b.append(truth[i] if rng.random() < ps[a] else 1 - truth[i])
    flips = [int((rng.random(reasks_each) < 2 * p * (1 - p)).sum()) for p in ps]
    return np.array(item), np.array(annotator), np.array(chose_b, dtype=float), truth, flips


def _accuracy_with_and_without(seed: int, ps: np.ndarray, n_items: int) -> tuple[float, float]:
    item, annotator, y, truth, flips = _pool(seed, ps, n_items)
    cues = np.zeros((y.size, 1))
    plain = bias_aware_fit(item, annotator, y, cues, n_items=n_items, n_annotators=ps.size)
    priors = [consistency_prior(40, f) for f in flips]
    informed = bias_aware_fit(item, annotator, y, cues, n_items=n_items, n_annotators=ps.size,
                              reliability_centre=np.array([p[0] for p in priors]),
                              reliability_weight=np.array([p[1] for p in priors]))
    accuracy = lambda fit: float(((fit.posterior_b > 0.5) == truth).mean())  # noqa: E731
    return accuracy(plain), accuracy(informed)


def test_self_consistency_lifts_the_aggregation_where_judgments_per_rater_are_few(capsys):
    """Six careful raters (right 90% of the time) and six careless ones (55%), three per item, 40
    items: each rater has about ten judgments, too few for EM to tell them apart from agreement
    alone; 40 re-asks each do. Paired over 30 pools."""
    ps = np.array([0.9] * 6 + [0.55] * 6)
    pairs = np.array([_accuracy_with_and_without(seed, ps, 40) for seed in range(30)])
    gain = pairs[:, 1] - pairs[:, 0]
    with capsys.disabled():
        print(f"\n[consistency prior] truth accuracy {pairs[:, 0].mean():.3f} -> {pairs[:, 1].mean():.3f}"
              f" (gain {gain.mean():+.3f}, paired t p = {ttest_rel(pairs[:, 1], pairs[:, 0]).pvalue:.2g})")
    assert gain.mean() > 0.02 and ttest_rel(pairs[:, 1], pairs[:, 0], alternative="greater").pvalue < 0.01


def test_self_consistency_does_not_hurt_when_everyone_is_alike():
    """Twelve raters right 80% of the time, 150 items: the prior may only help (it does a little,
    as its centre, the alpha their flip rate implies, is nearer theirs than the default 1)."""
    ps = np.full(12, 0.8)
    pairs = np.array([_accuracy_with_and_without(seed, ps, 150) for seed in range(20)])
    assert (pairs[:, 1] - pairs[:, 0]).mean() >= -0.005


def test_the_reask_rate_is_a_lead_setting_with_bounds():
    project = ProjectFactory()
    lead, annotator = member(project, Role.LEAD), member(project)
    url = f"/api/projects/{project.slug}/calibration/policy/"
    assert api_as(lead).patch(url, {"reask_rate": 0.1}, format="json").json()["reask_rate"] == 0.1
    too_high = api_as(lead).patch(url, {"reask_rate": 0.4}, format="json")
    assert too_high.status_code == 400 and "reask_rate" in too_high.json(), too_high.json()
    assert api_as(annotator).patch(url, {"reask_rate": 0.0}, format="json").status_code == 403
    assert CalibrationPolicy.objects.get(project=project).reask_rate == 0.1
    page = Client()
    page.force_login(lead)
    page.post(f"/p/{project.slug}/calibration/policy/", {"reask_rate": "0.02", "hidden_rate": "0.1"})
    assert CalibrationPolicy.objects.get(project=project).reask_rate == 0.02


def test_edits_cannot_erase_a_flip_and_a_skipped_reask_stops_waiting(seeded):
    from annotation.services.judgments import judgment_edit
    from annotation.services.queue import queue_skip

    project = ProjectFactory(overlap=1, edit_window_hours=24)
    _policy(project, reask_rate=0.0)
    ItemFactory.create_batch(16, project=project)
    annotator = member(project)
    calibration_queue._rng.random = lambda: 1.0
    for _ in range(12):
        _submit(annotator, queue_next(project=project, annotator=annotator), "a")
    first, second = (reasks.reask_plan(project_id=project.pk, annotator_id=annotator.pk) for _ in range(2))
    _policy(project, reask_rate=0.3)
    _serve_scripted_reasks(project, annotator, ["b"])  # a flip of the older plan
    assert reasks.self_consistency(project=project)[annotator.pk].flips == 1
    # Making the two agree afterwards, by editing either one, leaves the flip counted.
    flipped = Judgment.objects.get(reask_of=first.reask_of)
    judgment_edit(judgment_id=first.reask_of_id, editor=annotator,
                  data=JudgmentInput(choice=to_shown("b", shown_left=first.reask_of.shown_left), strength="clear",
                                     rationale="On second thoughts."))
    judgment_edit(judgment_id=flipped.pk, editor=annotator,
                  data=JudgmentInput(choice=to_shown("a", shown_left=flipped.shown_left), strength="clear",
                                     rationale="On second thoughts."))
    row = reasks.self_consistency(project=project)[annotator.pk]
    assert (row.reasks, row.flips, row.pending) == (1, 1, 1)
    # The second re-ask is skipped: it is over, not waiting any more, and never served again.
    served = queue_next(project=project, annotator=annotator)
    assert served.item_id == second.pk
    queue_skip(assignment_id=served.pk, annotator=annotator)
    assert Item.objects.get(pk=second.pk).status == "paused"
    assert reasks.self_consistency(project=project)[annotator.pk].pending == 0
    assert queue_next(project=project, annotator=annotator).item.reask_of_id is None


def test_a_quarantined_reask_is_on_the_items_page(seeded):
    from annotation.services.quarantine import item_quarantine

    project = ProjectFactory(overlap=1)
    _policy(project, reask_rate=0.0)
    ItemFactory.create_batch(13, project=project)
    annotator = member(project)
    for _ in range(12):
        _submit(annotator, queue_next(project=project, annotator=annotator), "a")
    shadow = reasks.reask_plan(project_id=project.pk, annotator_id=annotator.pk)
    client = Client()
    client.force_login(member(project, Role.LEAD))
    assert f'id="item-{shadow.pk}"' not in client.get(f"/p/{project.slug}/items/").content.decode()
    _policy(project, reask_rate=0.3)
    calibration_queue._rng.random = lambda: 0.0
    served = queue_next(project=project, annotator=annotator)
    assert served.item_id == shadow.pk
    item_quarantine(assignment=served, reason="Would not render.")
    assert f'id="item-{shadow.pk}"' in client.get(f"/p/{project.slug}/items/").content.decode()
