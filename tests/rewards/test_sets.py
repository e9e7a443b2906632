"""Preference sets on PostgreSQL: the default policy beats raw majority on a simulated pool whose
truth is known; frozen sets never change; re-exports are byte-identical; versions diff; the split
is stratified; each policy knob changes the set as documented."""
from __future__ import annotations

import uuid
from collections import Counter

import numpy as np
import pytest

from annotation.models import Choice, Item, Judgment
from annotation.services.judgments import JudgmentInput, judgment_submit
from annotation.services.queue import queue_next
from calibration.generators import simulation as sm
from calibration.models import Standing, StandingState
from calibration.generators.simulation_store import simulation_store
from rewards.curation import CurationPolicy
from rewards.formats import jsonl_line
from rewards.models import FrozenSetError, SetPair
from rewards.services.sets import PolicyError, preference_set_diff, preference_set_freeze, set_rows
from tests.factories import ProjectFactory, label_all

pytestmark = pytest.mark.django_db

POOL = ["expert"] * 4 + ["noisy"] * 2 + ["length"] * 2 + ["spammer"] * 3


@pytest.fixture
def pool():
    """A simulated pool (experts, noisy, length-biased, spammers) on items whose truth is known;
    calibration has excluded the length-biased annotators and the spammers (labels kept)."""
    project = ProjectFactory()
    sim = sm.simulate(kinds=POOL, n_items=300, per_item=7, seed=17)
    stored = simulation_store(project=project, sim=sim, prefix=f"ps{project.pk}")
    from django.utils import timezone

    for user, kind in zip(stored["users"], POOL):
        state = StandingState.EXCLUDED if kind in ("length", "spammer") else StandingState.ACTIVE
        Standing.objects.update_or_create(project=project, annotator=user,
                                          defaults={"state": state, "since": timezone.now()})
    truth = {pk: ("a" if t == 0 else "b") for pk, t in zip(stored["items"], sim.truth)}
    return project, truth


def _winner_agreement(preference_set, truth) -> tuple[float, int]:
    rows = SetPair.objects.filter(preference_set=preference_set, tag="comparison").values_list("key", "chosen_response_id")
    items = {it.pk: it for it in Item.objects.filter(pk__in=list(truth))}
    right = [
        (items[int(key.split(":")[1])].response_a_id == chosen) == (truth[int(key.split(":")[1])] == "a")
        for key, chosen in rows
    ]
    return float(np.mean(right)), len(right)


def test_default_policy_agrees_with_the_truth_more_than_raw_majority_over_everyone(pool):
    project, truth = pool
    default = preference_set_freeze(project=project, policy=CurationPolicy())
    raw = preference_set_freeze(project=project, policy=CurationPolicy(
        standings=("calibrating", "active", "needs_retraining", "excluded"), aggregation="majority"))
    default_rate, default_n = _winner_agreement(default, truth)
    raw_rate, raw_n = _winner_agreement(raw, truth)
    print(f"\nagreement with the truth: default (active + Dawid-Skene) {default_rate:.3f} on {default_n} items; "
          f"raw majority over everyone {raw_rate:.3f} on {raw_n} items")
    assert default_rate > raw_rate + 0.03
    assert default.counts["judgments_left_out_by_standing"] > 0


def test_a_frozen_set_never_changes_and_re_exports_byte_for_byte(pool):
    project, _ = pool
    first = preference_set_freeze(project=project, policy=CurationPolicy(seed=3))
    second = preference_set_freeze(project=project, policy=CurationPolicy(seed=3))
    assert (first.version, second.version) == (1, 2)
    assert first.content_hash == second.content_hash
    for fmt in ("trl", "trl-conversational"):
        a = "".join(jsonl_line(r) for r in set_rows(preference_set=first, fmt=fmt)).encode()
        b = "".join(jsonl_line(r) for r in set_rows(preference_set=second, fmt=fmt)).encode()
        assert a == b and len(a) > 1000
    pair = SetPair.objects.filter(preference_set=first).first()
    pair.chosen = "tampered"
    with pytest.raises(FrozenSetError):
        pair.save()
    with pytest.raises(FrozenSetError):
        pair.delete()
    first.name = "renamed"
    with pytest.raises(FrozenSetError):
        first.save()
    with pytest.raises(FrozenSetError):
        first.delete()
    from django.contrib import admin

    from rewards.models import PreferenceSet

    model_admin = admin.site._registry[PreferenceSet]
    assert not model_admin.has_change_permission(None, first) and not model_admin.has_delete_permission(None, first)


def test_the_split_is_stratified_by_domain_and_tag_and_fixed_by_seed(pool):
    project, _ = pool
    s = preference_set_freeze(project=project, policy=CurationPolicy(test_fraction=0.2, seed=5))
    per = Counter(SetPair.objects.filter(preference_set=s).values_list("domain", "split"))
    total = sum(per.values())
    assert sum(n for (_, split), n in per.items() if split == "test") == round(0.2 * total)
    for domain in {d for d, _ in per}:  # each stratum within one pair of its exact share
        n = per[(domain, "train")] + per[(domain, "test")]
        assert abs(per[(domain, "test")] - 0.2 * n) < 1
    # No prompt on both sides.
    sides = Counter(SetPair.objects.filter(preference_set=s).values_list("prompt_id", "split").distinct().values_list("prompt_id", flat=True))
    assert max(sides.values()) == 1
    again = preference_set_freeze(project=project, policy=CurationPolicy(test_fraction=0.2, seed=5))
    other = preference_set_freeze(project=project, policy=CurationPolicy(test_fraction=0.2, seed=6))
    split = lambda x: list(SetPair.objects.filter(preference_set=x).order_by("position").values_list("split", flat=True))  # noqa: E731
    assert split(s) == split(again) and split(s) != split(other)


def test_each_policy_knob_changes_the_set_as_documented(pool):
    project, _ = pool

    def freeze(**kw):
        return preference_set_freeze(project=project, policy=CurationPolicy(**kw))

    everyone = freeze(standings=("active", "excluded"), aggregation="none")
    active = freeze(aggregation="none")
    decisive_all = Judgment.objects.filter(project=project, choice__in=[Choice.A, Choice.B]).count()
    assert everyone.counts["pairs"] == decisive_all > active.counts["pairs"]
    base = freeze(aggregation="majority")
    strict = freeze(aggregation="majority", min_judgments=3)
    confident = freeze(aggregation="majority", min_confidence=0.75)
    assert strict.counts["items_below_min_judgments"] > 0 and strict.counts["pairs"] < base.counts["pairs"]
    assert confident.counts["items_below_min_confidence"] > 0 and confident.counts["pairs"] < base.counts["pairs"]
    assert all(c >= 0.75 for c in SetPair.objects.filter(preference_set=confident).values_list("confidence", flat=True))
    nothing = freeze(tags=("rewrite",))
    assert nothing.counts["pairs"] == 0
    heavy = freeze(aggregation="majority", margins=(("clear", 2.0), ("slight", 1.0), ("strong", 4.0)))
    assert set(SetPair.objects.filter(preference_set=heavy).values_list("margin", flat=True)) <= {1.0, 2.0, 4.0}
    with pytest.raises(PolicyError) as exc:
        freeze(aggregation="vibes", test_fraction=1.5)
    assert set(exc.value.errors) == {"aggregation", "test_fraction"}


def test_version_diff_lists_added_removed_and_changed_pairs():
    project = ProjectFactory(overlap=3)
    from tests.factories import ItemFactory, member

    ItemFactory.create_batch(3, project=project)
    people = [member(project) for _ in range(3)]

    def judge(user, canonical):
        assignment = queue_next(project=project, annotator=user)
        shown = {"a": "left" if assignment.shown_left == "a" else "right",
                 "b": "right" if assignment.shown_left == "a" else "left"}[canonical]
        judgment_submit(assignment_id=assignment.pk, annotator=user, client_token=uuid.uuid4(),
                        data=JudgmentInput(choice=shown, strength="clear", rationale="reason enough"))

    for user in people[:2]:
        judge(user, "a")  # item 1: a, a
        judge(user, "b")  # item 2: b, b
    v1 = preference_set_freeze(project=project, policy=CurationPolicy(aggregation="majority"))
    judge(people[2], "b")  # item 1 now a, a, b: same winner, new vote count
    judge(people[2], "a")  # item 2 now b, b, a
    judge(people[2], "a")  # item 3: a new item with one judgment
    for user in people[:2]:  # and item 3 becomes b, b, a: a winner of its own
        judge(user, "b")
    v2 = preference_set_freeze(project=project, policy=CurationPolicy(aggregation="majority"))
    diff = preference_set_diff(older=v1, newer=v2)
    items = sorted(Item.objects.filter(project=project).values_list("pk", flat=True))
    assert diff["added"] == [f"item:{items[2]}"] and diff["removed"] == []
    assert diff["changed"] == []  # the vote counts moved, the pairs did not (votes are not content)
    assert v1.content_hash != v2.content_hash
    # An edit flips item 1's winner (a, a, b -> b, a, b): the same pair key with other content.
    from annotation.services.judgments import judgment_edit

    first = Judgment.objects.get(annotator=people[0], item_id=items[0])
    shown_b = "right" if first.shown_left == "a" else "left"
    judgment_edit(judgment_id=first.pk, editor=people[0], data=JudgmentInput(choice=shown_b, strength="clear", rationale="changed my mind"))
    v3 = preference_set_freeze(project=project, policy=CurationPolicy(aggregation="majority"))
    diff = preference_set_diff(older=v2, newer=v3)
    assert diff["added"] == diff["removed"] == []
    assert diff["changed"] == [{"key": f"item:{items[0]}", "fields": ["chosen", "rationales", "rejected"]}]


def _pairs(s):
    return list(SetPair.objects.filter(preference_set=s))


def test_sampling_controls_change_the_set_as_documented(pool):
    project, _ = pool

    def freeze(**kw):
        return preference_set_freeze(project=project, policy=CurationPolicy(aggregation="majority", **kw))

    base = _pairs(freeze())
    n = len(base)
    # Near-duplicates: a pair per judgment repeats an item's pair once per agreeing judgment.
    deduped = preference_set_freeze(project=project, policy=CurationPolicy(aggregation="none", dedupe=True))
    signatures = Counter((str(p.messages).lower(), p.chosen.lower(), p.rejected.lower()) for p in _pairs(deduped))
    assert deduped.counts["left_out_near_duplicates"] > 0 and max(signatures.values()) == 1
    # A cap per domain.
    capped = Counter(p.domain for p in _pairs(freeze(per_domain_cap=20)))
    assert max(capped.values()) == 20
    # Domain mix: coding at half the set (only by leaving pairs out).
    mixed = _pairs(freeze(domain_targets=(("coding", 0.5),)))
    share = sum(p.domain == "coding" for p in mixed) / len(mixed)
    assert abs(share - 0.5) < 0.02 and len(mixed) < n
    # Hard cases: at least 40% (the pool has about 20%).
    hard = _pairs(freeze(hard_share_min=0.4))
    assert sum(p.difficulty == "hard" for p in base) / n < 0.3
    assert 0.4 <= sum(p.difficulty == "hard" for p in hard) / len(hard) < 0.43
    # Length-aware: 70% of pairs where the chosen response is the shorter one.
    concise = _pairs(freeze(chosen_shorter_share=0.7))
    assert abs(sum(len(p.chosen) < len(p.rejected) for p in concise) / len(concise) - 0.7) < 0.02
    # Fixed by the seed, different with another.
    again = [p.key for p in _pairs(freeze(chosen_shorter_share=0.7))]
    other = [p.key for p in _pairs(freeze(chosen_shorter_share=0.7, seed=9))]
    assert again == [p.key for p in concise] != other
    with pytest.raises(PolicyError) as exc:
        freeze(domain_targets=(("coding", 0.8), ("math", 0.4)), hard_share_min=1.0, tag_targets=(("vibes", 0.5),))
    assert set(exc.value.errors) == {"domain_targets", "hard_share_min", "tag_targets"}


def test_coverage_report_counts_what_the_set_holds_and_warns_where_it_is_thin(pool):
    project, _ = pool
    s = preference_set_freeze(project=project, policy=CurationPolicy(aggregation="majority", domain_targets=(("coding", 0.9),)))
    pairs = _pairs(s)
    cov = s.coverage
    assert cov["pairs"] == len(pairs) < 5000
    assert sum(d["count"] for d in cov["domains"]) == len(pairs)
    assert sum(b["count"] for b in cov["length_gap"]) == len(pairs) == sum(b["count"] for b in cov["confidence"])
    assert cov["hard_share"] == round(sum(p.difficulty == "hard" for p in pairs) / len(pairs), 4)
    assert cov["chosen_longer_share"] == round(sum(len(p.chosen) > len(p.rejected) for p in pairs) / len(pairs), 4)
    text = " ".join(cov["warnings"])
    assert "pairs: a reward model wants at least 5,000" in text and "Hard cases are" in text
    # Coding is everything the pool can give at 90% (others are cut to 10%), so no domain warning.
    assert "Domain coding" not in text
    # A domain the data cannot fill (targets only ever leave pairs out) is named.
    from rewards.curation import coverage_report

    rows = [{"domain": d, "tag": "comparison", "flaw_type": "", "difficulty": "hard", "chosen": "a", "rejected": "bb",
             "confidence": 1.0, "split": "train"} for d in ["legal"] * 10 + ["coding"] * 90]
    report = coverage_report(rows, CurationPolicy(domain_targets=(("legal", 0.3),)))
    assert [w.split(" ")[0] for w in report["warnings"]] == ["Only", "Domain"]  # no hard-case or length warning
    report = coverage_report(rows * 60, CurationPolicy(domain_targets=(("legal", 0.3),)))
    assert report["warnings"] == ["Domain legal is 10% of the set, under its target of 30%."]


HOSTILE = ['tab\there "quotes" and \\backslash\\', "new\nline\r\nand \x01\x02 controls \x1b[31m", "émoji 🎉 and 中文",
           "\u2028 line separator \x7f delete", "", "   ", "a" * 3000]


def test_postgresql_copy_export_is_byte_for_byte_the_python_export():
    from django.db import connection

    from rewards.formats import jsonl_line, prompt_as_text
    from rewards.models import PreferenceSet
    from rewards.services.sets import set_jsonl, set_rows

    assert connection.vendor == "postgresql"
    project = ProjectFactory()
    s = PreferenceSet.objects.create(project=project, version=1, policy={}, content_hash="x" * 64)
    pairs = []
    for i, text in enumerate(HOSTILE * 2):
        single = i % 2 == 0
        messages = ([{"role": "user", "content": text or "q"}] if single else
                    [{"role": "system", "content": "Be terse."}, {"role": "user", "content": text or "hi"},
                     {"role": "assistant", "content": "Hello"}, {"role": "user", "content": "again " + text}])
        # As preference_set_freeze writes them: the prompt as text beside the messages.
        pairs.append(SetPair(preference_set=s, position=i, key=f"k{i}", messages=messages,
                             prompt_text=prompt_as_text(messages), chosen=text + " chosen",
                             rejected="rejected " + text, strength="clear", margin=[1.0, 0.666667, 0.333333, 2.5, 10.0][i % 5],
                             tag=["comparison", "adversarial"][i % 2], flaw_type=["", "confident_but_wrong"][i % 2],
                             confidence=1.0, split=["train", "test"][i % 2]))
    SetPair.objects.bulk_create(pairs)
    for fmt in ("trl", "trl-conversational"):
        for split in ("", "test"):
            fast = b"".join(set_jsonl(preference_set=s, fmt=fmt, split=split))
            slow = "".join(jsonl_line(r) for r in set_rows(preference_set=s, fmt=fmt, split=split)).encode()
            assert fast == slow, (fmt, split)
            assert fast.count(b"\n") == (len(pairs) if not split else len(pairs) // 2)


def test_bradley_terry_aggregates_a_prompts_responses_across_items():
    """One prompt, three responses compared in three items: x beats y, y beats z, x beats z.
    Bradley-Terry orders them x > y > z and keeps one pair per compared pair of responses."""
    from annotation.models import Item, Prompt, Response
    from tests.factories import member

    project = ProjectFactory(overlap=3)
    prompt = Prompt.objects.create(project=project, messages=[{"role": "user", "content": "Which?"}], domain="general")
    x, y, z = (Response.objects.create(prompt=prompt, text=t) for t in ("x answer", "y answer", "z answer"))
    for a, b in ((x, y), (y, z), (x, z)):
        Item.objects.create(project=project, prompt=prompt, response_a=a, response_b=b, target_judgments=3)
    people = [member(project) for _ in range(3)]
    # Everyone prefers a (the earlier response), except one dissent on (y, z).
    label_all(project, people[:1], prefer=lambda a: "b" if a.item.response_a_id == y.pk else "a",
              rationale="clearly the better one")
    label_all(project, people[1:], rationale="clearly the better one")
    s = preference_set_freeze(project=project, policy=CurationPolicy(aggregation="bradley_terry", test_fraction=0))
    pairs = {(p.chosen, p.rejected): p for p in SetPair.objects.filter(preference_set=s)}
    assert set(pairs) == {("x answer", "y answer"), ("y answer", "z answer"), ("x answer", "z answer")}
    assert pairs[("x answer", "z answer")].confidence > pairs[("y answer", "z answer")].confidence > 0.5
    assert all(p.votes == 3 for p in pairs.values())
    assert len(pairs[("y answer", "z answer")].rationales) == 2  # the dissent is not a reason for y


def test_review_fixes_small_strata_empty_targets_ties_and_tampering(pool):
    """Split by largest remainder over many small strata; targets that cannot be met never empty
    the set; rows cannot be changed by bulk paths or by saving a copy over an existing pk."""
    from rewards.curation import Candidate, split_of

    candidates = [Candidate(key=f"k{i}", prompt_id=i, chosen_id=0, rejected_id=1, messages=[], chosen="a", rejected="b",
                            strength="", tag="comparison", flaw_type="", domain=f"d{i // 4}", difficulty="",
                            confidence=1.0, votes=1) for i in range(160)]
    splits = split_of(candidates, fraction=0.1, seed=0)
    assert sum(v == "test" for v in splits.values()) == 16  # not 0, as rounding each stratum of 4 gave
    project, _ = pool
    s = preference_set_freeze(project=project, policy=CurationPolicy(aggregation="majority",
                                                                     domain_targets=(("nowhere", 0.3),),
                                                                     hard_share_min=None))
    assert s.counts["pairs"] > 0 and "Domain nowhere" in " ".join(s.coverage["warnings"])
    with pytest.raises(FrozenSetError):
        SetPair.objects.filter(preference_set=s).update(chosen="tampered")
    with pytest.raises(FrozenSetError):
        SetPair.objects.filter(preference_set=s).delete()
    original = SetPair.objects.filter(preference_set=s).first()
    copy = SetPair(pk=original.pk, preference_set=s, position=original.position, key=original.key, messages=[],
                   chosen="tampered", rejected="x", margin=1.0, tag="comparison", confidence=1.0, split="train")
    from django.db import IntegrityError, transaction

    with pytest.raises(IntegrityError), transaction.atomic():  # an insert over an existing pk fails; no update
        copy.save()
    assert SetPair.objects.get(pk=original.pk).chosen == original.chosen
