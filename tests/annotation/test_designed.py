"""Designed data on PostgreSQL: bad cases from three sources, expert rewrites and their review,
expertise routing, adversarial negatives, rankings (validation, randomised order, exports)."""
from __future__ import annotations

import json
import uuid
from collections import Counter

import pytest
from hypothesis import given, settings as hsettings, strategies as st

from annotation.errors import Conflict, ValidationFailed
from annotation.models import (
    BadCase, DerivedPair, Item, ItemKind, ItemResponse, RankingJudgment, Response, Rewrite, Role,
)
from annotation.ranking import RankingError, expand_pairs, format_order, parse_order, ranks_of, scores_of
from annotation.selectors import designed_data_overview
from annotation.services.badcases import bad_case_report
from annotation.services.judgments import JudgmentInput, judgment_edit, judgment_submit
from annotation.services.negatives import NegativeInput, negative_submit
from annotation.services.projects import skills_set
from annotation.services.rankings import RankingInput, ranking_submit
from annotation.services.rewrites import (
    RewriteInput, rewrite_approve, rewrite_return, rewrite_revise, rewrite_submit,
)
from annotation.services.queue import queue_next
from rewards.selectors import preference_rows
from tests.factories import (
    ItemFactory, ProjectFactory, adversarial_line, bad_case_line, import_lines, member, ranking_line,
)

pytestmark = pytest.mark.django_db

GOOD_REWRITE = dict(flaws=["hallucination"], rationale="The original invents a citation; fixed it.")


def rewrite_input(text: str, **kw) -> RewriteInput:
    return RewriteInput(text=text, **{**GOOD_REWRITE, **kw})


def judge_both_bad(project, user):
    assignment = queue_next(project=project, annotator=user)
    judgment, _ = judgment_submit(
        assignment_id=assignment.pk, annotator=user, client_token=uuid.uuid4(),
        data=JudgmentInput(choice="both_bad", rationale="Neither answers the question."),
    )
    return judgment


def rewrite_tasks(project):
    return Item.objects.filter(project=project, kind=ItemKind.REWRITE)


def take_all(project, user) -> list:
    """Every item the queue serves this annotator, leased one after another (not submitted)."""
    from annotation.models import AssignmentStatus
    from annotation.services.queue import queue_skip

    taken = []
    while (a := queue_next(project=project, annotator=user)) is not None:
        taken.append(a.item)
        queue_skip(assignment_id=a.pk, annotator=user)
        assert a.status == AssignmentStatus.LEASED
    return taken


# ---------------------------------------------------------------- bad cases


def test_bad_cases_from_all_three_sources_reach_the_rewrite_queue_once():
    project = ProjectFactory(overlap=3)
    item = ItemFactory(project=project)
    first, second, third = (member(project) for _ in range(3))
    judge_both_bad(project, first)
    judge_both_bad(project, second)  # the same two responses reported again
    # Two responses, one rewrite task each, however many both-bad votes.
    assert rewrite_tasks(project).count() == 2
    # A lead marks one of them too: recorded, no second task.
    lead = member(project, Role.LEAD)
    case, created = bad_case_report(project=project, response=item.response_a, source="lead", reported_by=lead)
    assert not created and case.sources == ["both_bad", "lead"] and case.reports == 3
    # A lead marks a response nobody judged both bad: a new task.
    other = ItemFactory(project=project)
    _, created = bad_case_report(project=project, response=other.response_b, source="lead", reported_by=lead)
    assert created
    # Production feedback arrives by import; the lead then marks that one as well: still one task.
    import_lines(project, [bad_case_line("How do I reset my router?", "Unplug everything forever.")])
    production = Response.objects.get(text="Unplug everything forever.")
    bad_case_report(project=project, response=production, source="lead", reported_by=lead)
    # An edit to both-bad reports its responses too (once).
    judgment = judgment_submit(
        assignment_id=queue_next(project=project, annotator=third).pk, annotator=third, client_token=uuid.uuid4(),
        data=JudgmentInput(choice="left", strength="clear", rationale="Left is fine here."),
    )[0]
    judgment_edit(judgment_id=judgment.pk, editor=third, data=JudgmentInput(choice="both_bad", rationale="On reflection both are wrong."))

    cases = BadCase.objects.filter(project=project)
    reported = {c.response_id for c in cases}
    tasks = list(rewrite_tasks(project))
    assert sorted(t.response_a_id for t in tasks) == sorted(reported)  # exactly one task per bad response
    assert Counter(t.response_a_id for t in tasks).most_common(1)[0][1] == 1
    sources = Counter(s for c in cases for s in c.sources)
    assert sources["both_bad"] >= 2 and sources["lead"] == 3 and sources["production_bad_case"] == 1
    assert all(t.target_judgments == 1 for t in tasks)

    # The queue serves each task once: one expert gets every task, a second expert none of them.
    expert, second_expert = member(project), member(project)
    served = [i for i in take_all(project, expert) if i.kind == ItemKind.REWRITE]
    assert sorted(i.pk for i in served) == sorted(t.pk for t in tasks)
    for task in tasks:  # the expert holds them now (as if writing): nobody else is served them
        Item.objects.filter(pk=task.pk).update(assigned_count=1)
    assert not [i for i in take_all(project, second_expert) if i.kind == ItemKind.REWRITE]


def test_a_lead_cannot_mark_a_response_of_another_project_or_an_adversarial_negative():
    project, elsewhere = ProjectFactory(), ProjectFactory()
    foreign = ItemFactory(project=elsewhere)
    with pytest.raises(Conflict, match="another project"):
        bad_case_report(project=project, response=foreign.response_a, source="lead")
    import_lines(project, [adversarial_line("Capital of France?", "Paris.")])
    author = member(project)
    assignment = queue_next(project=project, annotator=author)
    negative, _ = negative_submit(
        assignment_id=assignment.pk, author=author, client_token=uuid.uuid4(),
        data=NegativeInput(text="Lyon, definitely.", flaw_type="confident_but_wrong", rationale="Wrong city, stated with certainty."),
    )
    with pytest.raises(Conflict, match="bad on purpose"):
        bad_case_report(project=project, response=negative.response, source="lead")


# ---------------------------------------------------------------- rewrites


def _rewrite_assignment(project, expert):
    assignment = queue_next(project=project, annotator=expert)
    assert assignment.item.kind == ItemKind.REWRITE
    return assignment


def test_only_approved_rewrites_create_pairs_and_sft_rows():
    project = ProjectFactory()
    import_lines(project, [bad_case_line("Who wrote Hamlet?", "Hamlet was written by Charles Dickens in 1850.")])
    expert, lead, peer = member(project), member(project, Role.LEAD), member(project)
    assignment = _rewrite_assignment(project, expert)

    # Refused: unchanged text, no flaw named, a flaw the project does not list; nothing saved.
    for data, field in (
        (rewrite_input("Hamlet was written by Charles Dickens in 1850."), "text"),
        (rewrite_input("Shakespeare wrote it.", flaws=[]), "flaws"),
        (rewrite_input("Shakespeare wrote it.", flaws=["made_up"]), "flaws"),
    ):
        with pytest.raises(ValidationFailed) as exc:
            rewrite_submit(assignment_id=assignment.pk, author=expert, data=data, client_token=uuid.uuid4())
        assert field in exc.value.field_errors
    assert not Rewrite.objects.exists()

    token = uuid.uuid4()
    rewrite, created = rewrite_submit(
        assignment_id=assignment.pk, author=expert, client_token=token,
        data=rewrite_input("Hamlet was written by William Shakespeare, around 1600."),
    )
    replay, again = rewrite_submit(assignment_id=assignment.pk, author=expert, client_token=token,
                                   data=rewrite_input("something else entirely"))
    assert created and not again and replay.pk == rewrite.pk

    def pairs():
        return [r for r in preference_rows(project=project, fmt="trl") if r["tag"] == "rewrite"]

    assert not DerivedPair.objects.exists() and not pairs()
    assert not list(preference_rows(project=project, fmt="sft-messages"))

    # Nobody reviews their own work; a peer without the domain's skill cannot either.
    with pytest.raises(Conflict):
        rewrite_approve(rewrite_id=rewrite.pk, reviewer=expert)
    with pytest.raises(Conflict):
        rewrite_approve(rewrite_id=rewrite.pk, reviewer=peer)
    with pytest.raises(ValidationFailed):
        rewrite_return(rewrite_id=rewrite.pk, reviewer=lead, comment="  ")
    rewrite_return(rewrite_id=rewrite.pk, reviewer=lead, comment="Give the year range, not 'around'.")
    with pytest.raises(Conflict):
        rewrite_approve(rewrite_id=rewrite.pk, reviewer=lead)
    assert not pairs()

    revised = rewrite_revise(
        rewrite_id=rewrite.pk, author=expert,
        data=rewrite_input("Hamlet was written by William Shakespeare, between 1599 and 1601."),
    )
    assert revised.revision == 2 and revised.history[0]["review_comment"].startswith("Give the year")
    # A second expert (skill in the task's domain, not the author) may approve.
    skills_set(project=project, user=peer, skills=["general"])
    approved = rewrite_approve(rewrite_id=rewrite.pk, reviewer=peer)
    pair = DerivedPair.objects.get()
    assert approved.status == "approved" and approved.response.text.endswith("1601.")
    assert (pair.tag, pair.strength, pair.rejected.text) == ("rewrite", "strong", "Hamlet was written by Charles Dickens in 1850.")
    [row] = pairs()
    assert row["chosen"] == approved.response.text and row["margin"] == 1.0 and row["flaw_type"] is None
    [sft] = preference_rows(project=project, fmt="sft-messages")
    assert sft["messages"][-1] == {"role": "assistant", "content": approved.response.text}
    [pc] = preference_rows(project=project, fmt="sft-prompt-completion")
    assert pc["prompt"] == [{"role": "user", "content": "Who wrote Hamlet?"}] and pc["completion"][0]["role"] == "assistant"
    # Approving twice changes nothing.
    rewrite_approve(rewrite_id=rewrite.pk, reviewer=lead)
    assert DerivedPair.objects.count() == 1


def test_rewrite_tasks_of_a_skill_domain_go_only_to_annotators_with_that_skill():
    project = ProjectFactory(skill_domains=["legal", "medical"])
    import_lines(project, [
        bad_case_line("Can my landlord keep the deposit?", "Yes, always.", domain="Legal"),  # any case
        bad_case_line("Is 10g of paracetamol a day fine?", "Sure.", domain="medical"),
        bad_case_line("Best pizza topping?", "Glue.", domain="general"),
    ])
    ItemFactory(project=project, prompt__domain="legal")  # comparisons are never skill-gated
    novice, lawyer, doctor = member(project), member(project), member(project)
    skills_set(project=project, user=lawyer, skills=["Legal"])
    skills_set(project=project, user=doctor, skills=["medical", "legal"])

    def served(user):
        return sorted((i.kind, i.prompt.domain) for i in take_all(project, user))

    assert served(novice) == [("comparison", "legal"), ("rewrite", "general")]
    assert served(lawyer) == [("comparison", "legal"), ("rewrite", "Legal"), ("rewrite", "general")]
    assert served(doctor) == [("comparison", "legal"), ("rewrite", "Legal"), ("rewrite", "general"), ("rewrite", "medical")]
    with pytest.raises(ValidationFailed):
        skills_set(project=project, user=member(project, Role.LEAD), skills=["legal"])


# ---------------------------------------------------------------- adversarial negatives


def test_adversarial_negative_yields_a_tagged_pair_and_length_counts():
    project = ProjectFactory()
    import_lines(project, [adversarial_line("What is 17 * 3?", "51."), adversarial_line("Boiling point of water?", "100 °C at sea level, lower at altitude.")])
    author = member(project)
    texts = {"What is 17 * 3?": ("Let me carefully compute this: 17 times 3 is 41, no doubt.", "longer_but_wrong"),
             "Boiling point of water?": ("90 °C.", "subtle_factual_error")}
    for _ in range(2):
        assignment = queue_next(project=project, annotator=author)
        text, flaw = texts[assignment.item.prompt.messages[0]["content"]]
        with pytest.raises(ValidationFailed):
            negative_submit(assignment_id=assignment.pk, author=author, client_token=uuid.uuid4(),
                            data=NegativeInput(text=assignment.item.response_a.text, flaw_type=flaw, rationale="identical on purpose"))
        negative_submit(assignment_id=assignment.pk, author=author, client_token=uuid.uuid4(),
                        data=NegativeInput(text=text, flaw_type=flaw, rationale="The flaw is the wrong number."))
    rows = [r for r in preference_rows(project=project, fmt="trl") if r["tag"] == "adversarial"]
    assert sorted((r["chosen"], r["flaw_type"]) for r in rows) == [
        ("100 °C at sea level, lower at altitude.", "subtle_factual_error"), ("51.", "longer_but_wrong")]
    overview = designed_data_overview(project=project)
    assert overview["negatives"] == 2 and overview["negatives_longer"] == 1
    assert {r["flaw_type"]: r["longer"] for r in overview["negatives_by_flaw"]} == {"longer_but_wrong": 1, "subtle_factual_error": 0}


# ---------------------------------------------------------------- rankings


@pytest.mark.parametrize("order, n, message", [
    ("", 4, "Put the responses in order"),
    ("A>B>C", 4, "D is missing"),
    ("A>B", 4, "C, D are missing"),
    ("A>B>C>C>D", 4, "C appears twice"),
    ("A>B>C>E", 4, "Unknown response 'E'"),
    ("A>>B>C>D", 4, "both sides"),
    ("A=B=C=D", 4, "All responses tie"),
])
def test_ranking_order_validation(order, n, message):
    with pytest.raises(RankingError, match=message):
        parse_order(order, n=n)


def test_a_ranking_with_ties_parses_to_tiers_and_back():
    assert parse_order("c > a=d >b", n=4) == [[2], [0, 3], [1]]
    assert format_order([[2], [0, 3], [1]]) == "C>A=D>B"
    assert ranks_of([[2], [0, 3], [1]]) == {2: 1, 0: 2, 3: 2, 1: 3}
    assert scores_of([[2], [0, 3], [1]]) == {2: 1.0, 0: 0.5, 3: 0.5, 1: 0.0}


@st.composite
def tiered(draw):
    k = draw(st.integers(3, 8))
    members = draw(st.permutations(list(range(k))))
    cuts = sorted(draw(st.sets(st.integers(1, k - 1), max_size=k - 1)))
    bounds = [0, *cuts, k]
    return [list(members[a:b]) for a, b in zip(bounds, bounds[1:])]


@hsettings(max_examples=300, deadline=None)
@given(tiered())
def test_expansion_gives_k_choose_2_pairs_minus_ties(tiers):
    k = sum(len(t) for t in tiers)
    tied = sum(len(t) * (len(t) - 1) // 2 for t in tiers)
    pairs = expand_pairs(tiers)
    assert len(pairs) == k * (k - 1) // 2 - tied
    ranks = ranks_of(tiers)
    assert all(ranks[better] < ranks[worse] for better, worse, _ in pairs)
    assert len({frozenset((x, y)) for x, y, _ in pairs}) == len(pairs)


def _rank(project, user, order: str, *, token=None):
    assignment = queue_next(project=project, annotator=user)
    assert assignment.item.kind == ItemKind.RANKING
    return assignment, ranking_submit(
        assignment_id=assignment.pk, annotator=user, client_token=token or uuid.uuid4(),
        data=RankingInput(order=order, rationale="Ordered by correctness first."),
    )[0]


def test_ranking_submit_maps_shown_letters_to_responses_and_records_the_shown_order():
    project = ProjectFactory(overlap=40)
    import_lines(project, [ranking_line("Sort these", 4)])
    item = Item.objects.get(kind=ItemKind.RANKING)
    members = list(ItemResponse.objects.filter(item=item).values_list("response_id", flat=True))
    orders = set()
    for _ in range(30):
        user = member(project)
        assignment = queue_next(project=project, annotator=user)
        assert sorted(assignment.shown_order) == sorted(members)
        orders.add(tuple(assignment.shown_order))
        with pytest.raises(ValidationFailed) as exc:
            ranking_submit(assignment_id=assignment.pk, annotator=user, client_token=uuid.uuid4(),
                           data=RankingInput(order="A>B>C", rationale="Ordered by correctness first."))
        assert "D is missing" in exc.value.field_errors["order"]
        judgment, _ = ranking_submit(assignment_id=assignment.pk, annotator=user, client_token=uuid.uuid4(),
                                     data=RankingInput(order="D>B=A>C", rationale="Ordered by correctness first."))
        shown = assignment.shown_order
        assert judgment.ranking == [[shown[3]], [shown[1], shown[0]], [shown[2]]]
        assert judgment.shown_order == shown
    # Randomised per assignment: 30 draws of 24 orders give many distinct ones.
    assert len(orders) >= 8
    assert Item.objects.get(pk=item.pk).judgment_count == 30


def test_ranking_submit_is_idempotent_by_token_and_refuses_comparison_items():
    project = ProjectFactory()
    import_lines(project, [ranking_line("Rank", 3)])
    user = member(project)
    token = uuid.uuid4()
    assignment, first = _rank(project, user, "A>B>C", token=token)
    again, created = ranking_submit(assignment_id=assignment.pk, annotator=user, client_token=token,
                                    data=RankingInput(order="C>B>A", rationale="Ordered by correctness first."))
    assert again.pk == first.pk and not created and RankingJudgment.objects.count() == 1
    comparison = ItemFactory(project=project)
    assignment = queue_next(project=project, annotator=user)  # they ranked the only ranking item
    assert assignment.item_id == comparison.pk
    with pytest.raises(Conflict, match="not a ranking task"):
        ranking_submit(assignment_id=assignment.pk, annotator=assignment.annotator, client_token=uuid.uuid4(),
                       data=RankingInput(order="A>B>C", rationale="Ordered by correctness first."))


def test_ranking_exports_expand_to_k_choose_2_pairs_minus_ties_and_the_ranking_format():
    project = ProjectFactory(overlap=3)
    import_lines(project, [ranking_line("Rank four", 4, ground_truth="42"), ranking_line("Rank six", 6, domain="coding")])
    orders = {4: ["A>B>C>D", "B=C>A>D", "A=B=C>D"], 6: ["A>B>C>D>E>F", "F>E=D>C>B=A", "A=B>C=D>E=F"]}
    expected_pairs = 0
    for _ in range(3):
        user = member(project)
        for _ in range(2):
            assignment = queue_next(project=project, annotator=user)
            k = len(assignment.shown_order)
            order = orders[k].pop()
            ranking_submit(assignment_id=assignment.pk, annotator=user, client_token=uuid.uuid4(),
                           data=RankingInput(order=order, rationale="Ordered by correctness first."))
            tiers = parse_order(order, n=k)
            expected_pairs += k * (k - 1) // 2 - sum(len(t) * (len(t) - 1) // 2 for t in tiers)
    rows = list(preference_rows(project=project, fmt="trl-conversational", tags=["ranking"]))
    assert len(rows) == expected_pairs == (6 + 5 + 3) + (15 + 13 + 12)
    assert {r["tag"] for r in rows} == {"ranking"} and all(r["chosen"] != r["rejected"] for r in rows)
    ranking = list(preference_rows(project=project, fmt="ranking"))
    assert len(ranking) == 6
    row = next(r for r in ranking if r["ground_truth"] == "42")
    assert set(row) == {"prompt", "domain", "responses", "ground_truth"}
    assert [set(r) for r in row["responses"]] == [{"id", "content", "rank", "score"}] * 4
    assert [r["rank"] for r in row["responses"]] == sorted(r["rank"] for r in row["responses"])
    # One row per item when aggregating; the mean order still covers every response.
    aggregated = list(preference_rows(project=project, fmt="ranking", aggregate="majority"))
    assert sorted(len(r["responses"]) for r in aggregated) == [4, 6]
    json.dumps(aggregated)  # plain JSON all the way down


def test_import_reports_kind_errors_with_line_numbers_and_writes_nothing(tmp_path):
    from annotation.services.imports import import_file

    project = ProjectFactory()
    lines = [
        ranking_line("ok", 3),
        {"prompt": "p", "responses": [f"r{i}" for i in range(9)]},
        {"prompt": "p", "responses": ["only"]},
        {"prompt": "p", "responses": ["a"], "source": "production_bad_case", "kind": "adversarial"},
        {"prompt": "p", "responses": ["a", "b", "c"], "kind": "comparison"},
        {"prompt": "p", "responses": ["a"], "kind": "rewrite"},
    ]
    path = tmp_path / "x.jsonl"
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    result = import_file(project=project, path=path)
    assert [e["line"] for e in result.errors] == [2, 3, 4, 5, 6]
    messages = {e["line"]: e["message"] for e in result.errors}
    assert "ranking line has 3 to 8" in messages[2]
    assert "adversarial" in messages[3]
    assert "is a bad case: kind rewrite" in messages[4]
    assert "comparison line has 2" in messages[5]
    assert "production_bad_case" in messages[6]
    assert not Item.objects.filter(project=project).exists() and not BadCase.objects.exists()


def test_nobody_reviews_their_own_rewrite_not_even_a_lead():
    project = ProjectFactory()
    import_lines(project, [bad_case_line("Who wrote Hamlet?", "Dickens.")])
    lead = member(project, Role.LEAD)
    from annotation.models import Membership
    from annotation.selectors import rewrites_reviewable_by

    Membership.objects.create(project=project, user=lead, role=Role.ANNOTATOR)  # a lead who also writes
    assignment = _rewrite_assignment(project, lead)
    rewrite, _ = rewrite_submit(assignment_id=assignment.pk, author=lead, client_token=uuid.uuid4(),
                                data=rewrite_input("Shakespeare wrote Hamlet."))
    with pytest.raises(Conflict):
        rewrite_approve(rewrite_id=rewrite.pk, reviewer=lead)
    assert not rewrites_reviewable_by(user=lead, project=project).exists()
    assert rewrites_reviewable_by(user=member(project, Role.LEAD), project=project).get() == rewrite


def test_both_bad_on_a_hidden_anchor_makes_no_rewrite_task_and_edits_report_once():
    from annotation.services.queue import queue_submit
    from tests.factories import make_anchor

    project = ProjectFactory()
    anchor = make_anchor(project)
    user = member(project)
    from annotation.services.routing import assignment_lease

    held = assignment_lease(project=project, annotator=user, held_out=True)
    assert held.item_id == anchor.item_id
    queue_submit(assignment_id=held.pk, annotator=user, client_token=uuid.uuid4(),
                 data=JudgmentInput(choice="both_bad", rationale="Neither is right here."))
    assert not BadCase.objects.exists() and not rewrite_tasks(project).exists()

    ItemFactory(project=project)  # a live item: both-bad there reports its two responses, once
    judgment = judge_both_bad(project, user)
    for text in ("Both wrong, first edit.", "Both wrong, second edit."):
        judgment_edit(judgment_id=judgment.pk, editor=user, data=JudgmentInput(choice="both_bad", rationale=text))
    assert sorted(BadCase.objects.values_list("reports", flat=True)) == [1, 1]


def test_a_renewed_lease_keeps_the_order_the_annotator_saw():
    from datetime import timedelta

    from django.utils import timezone

    from annotation.services.routing import leases_expire

    project = ProjectFactory(lease_seconds=60)
    import_lines(project, [ranking_line("Rank", 6)])
    user = member(project)
    first = queue_next(project=project, annotator=user)
    later = timezone.now() + timedelta(minutes=5)
    assert leases_expire(project=project, now=later) == 1
    again = queue_next(project=project, annotator=user, now=later)
    assert again.pk == first.pk and again.shown_order == first.shown_order and again.shown_left == first.shown_left
