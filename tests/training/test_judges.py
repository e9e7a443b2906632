"""AI judges as raters (training/services/judges.py), through a real OpenAI-compatible server on the loopback
interface (tests/judge_server.py): the judge calibrates on anchors like a new annotator, labels
through the same submit path, holds no slot of people's k, is kept out of sets unless the policy
takes its labels, never reaches an annotator, and every failure of the endpoint is a recorded
reason with nothing stored."""
from __future__ import annotations

import uuid

import pytest
from django.utils import timezone

from annotation.models import Assignment, Item, Judgment, Membership, Role
from annotation.services.judgments import JudgmentInput
from annotation.services.queue import judge_submit, queue_next, queue_submit
from annotation.errors import NotAllowed
from annotation.sides import to_shown
from calibration.models import Standing
from rewards.curation import CurationPolicy
from rewards.services.sets import preference_set_freeze
from tests.factories import ItemFactory, ProjectFactory, make_anchor, member
from tests.judge_server import judge_server
from training.services import judges
from training.judge_backends import JudgeError, parse_endpoint_answer
from training.models import Judge, JudgeCall, JudgeKind, JudgeUse

pytestmark = pytest.mark.django_db


def prefers_response_a(left: str, right: str):
    """The loopback judge's rule: the factory's response_a ("Answer A to ...") is the better one."""
    return ("A", 0.92) if left.startswith("Answer A") else ("B", 0.92)


@pytest.fixture
def project():
    project = ProjectFactory(overlap=3)
    project.current_spec = project.spec_versions.create(version=project.spec_versions.count() + 1,
                                                        text="Prefer the answer that is correct.")
    project.save(update_fields=["current_spec"])
    for _ in range(3):
        make_anchor(project, in_set=True, choice="a")
    return project


def endpoint_judge(project, server, **kw) -> Judge:
    return judges.judge_create(project=project, name=kw.pop("name", "loopback"), kind=JudgeKind.ENDPOINT,
                               endpoint_url=server.url, endpoint_model="judge-small", cost_per_1k_tokens=0.5, **kw)


def live_items(project, n: int) -> list[Item]:
    return [ItemFactory(project=project) for _ in range(n)]


def person_answers(project, annotator, canonical: str) -> int:
    made = 0
    while (assignment := queue_next(project=project, annotator=annotator)) is not None:
        queue_submit(assignment_id=assignment.pk, annotator=annotator, client_token=uuid.uuid4(), data=JudgmentInput(
            choice=to_shown(canonical, shown_left=assignment.shown_left), strength="clear",
            rationale="A person's reason, long enough."))
        made += 1
    return made


def calibrated_person(project):
    from tests.calibration.helpers import run_round

    person = member(project)
    run_round(project, person, wrong=0)
    return person


def test_a_judge_calibrates_on_anchors_then_labels_through_the_submit_path_without_taking_peoples_k(project):
    items = live_items(project, 4)
    with judge_server(prefers_response_a, key="sk-test") as server:
        import os
        os.environ["JUDGE_TEST_KEY"] = "sk-test"
        try:
            judge = endpoint_judge(project, server, api_key_env="JUDGE_TEST_KEY")
            # Not calibrated yet: live labels are refused with the reason.
            with pytest.raises(NotAllowed, match="calibration"):
                judges.judge_prelabel(judge=judge)
            outcome = judges.judge_calibrate(judge=judge)
            assert outcome["answered"] == 3 and outcome["correct"] == 3 and outcome["standing"] == "active"
            prelabel = judges.judge_prelabel(judge=judge)
        finally:
            del os.environ["JUDGE_TEST_KEY"]
    assert prelabel == {"labelled": 4}
    # The prompt: the project's spec in the system turn, both responses in the user turn, the key sent.
    system, user = server.requests[-1]["messages"]
    assert "Prefer the answer that is correct." in system["content"]
    assert "[The Start of Chatbot A's Response]" in user["content"]
    assert {h["Authorization"] for h in server.headers} == {"Bearer sk-test"}
    labels = Judgment.objects.filter(annotator=judge.user)
    assert labels.count() == 4 and all(j.by_judge for j in labels)
    assert {j.choice for j in labels} == {"a"}, "the judge's shown-side verdict is stored in canonical terms"
    assert all("AI judge loopback" in j.rationale for j in labels)
    for item in Item.objects.filter(pk__in=[i.pk for i in items]):
        assert (item.judgment_count, item.assigned_count, item.target_judgments) == (0, 0, 3)
    # Its standing came from its anchors, like a person's.
    assert Standing.objects.get(project=project, annotator=judge.user).state == "active"
    # Every call is on the cost line: 150 tokens at 0.5 per 1000.
    calls = JudgeCall.objects.filter(judge=judge)
    assert calls.count() == 7 and all(c.ok for c in calls)
    assert all(c.tokens_in == 120 and c.tokens_out == 30 and c.cost == pytest.approx(0.075) for c in calls)
    # People still get all three slots of every item.
    people = [calibrated_person(project) for _ in range(3)]
    for person in people:
        assert person_answers(project, person, "a") == 4
    for item in Item.objects.filter(pk__in=[i.pk for i in items]):
        assert (item.judgment_count, item.assigned_count) == (3, 3)


def test_people_never_receive_or_see_the_judges_labels(project, client):
    items = live_items(project, 2)
    with judge_server(prefers_response_a) as server:
        judge = endpoint_judge(project, server)
        judges.judge_calibrate(judge=judge)
        judges.judge_prelabel(judge=judge)
    person = calibrated_person(project)
    client.force_login(person)
    assignment = queue_next(project=project, annotator=person)
    page = client.get(f"/p/{project.slug}/label/").content.decode()
    api = client.get(f"/api/projects/{project.slug}/next/").content.decode()
    for text in (page, api):
        assert "AI judge" not in text and "judge." not in text and "loopback" not in text
    assert assignment.item_id in {i.pk for i in items}
    # The judge's account cannot log in.
    assert not judge.user.is_active and not judge.user.has_usable_password()
    assert not client.login(username=judge.user.username, password="")


def test_only_a_judge_account_may_submit_on_an_item_it_was_handed(project):
    item = live_items(project, 1)[0]
    person = calibrated_person(project)
    with pytest.raises(NotAllowed):
        judge_submit(item=item, annotator=person, shown_left="a", client_token=uuid.uuid4(),
                     data=JudgmentInput(choice="left", strength="clear", rationale="Not a judge, long enough."))
    assert not Assignment.objects.filter(annotator=person, item=item).exists()


def test_sets_leave_judge_labels_out_by_default_and_say_so_or_take_them_as_the_policy_says(project):
    items = live_items(project, 3)
    with judge_server(prefers_response_a) as server:
        judge = endpoint_judge(project, server)
        judges.judge_calibrate(judge=judge)
        judges.judge_prelabel(judge=judge)
    # Two people split evenly on every item: only a judge can break the tie.
    first, second = calibrated_person(project), calibrated_person(project)
    person_answers(project, first, "a")
    person_answers(project, second, "b")

    default = preference_set_freeze(project=project, policy=CurationPolicy(aggregation="majority"))
    assert default.policy["judge_labels"] == "exclude"
    assert default.counts["judge_judgments_left_out"] == 3
    assert default.pairs.count() == 0, "people's tie has no winner; the judge's label is not used"

    tiebreak = preference_set_freeze(project=project, policy=CurationPolicy(aggregation="majority",
                                                                            judge_labels="tiebreak"))
    assert tiebreak.counts["judge_judgments_counted"] == 3
    pairs = list(tiebreak.pairs.all())
    assert len(pairs) == 3 and {p.chosen_response_id for p in pairs} == {i.response_a_id for i in items}
    assert all("AI judge" not in r for p in pairs for r in p.rationales), "the winner's reasons are people's"
    # A tie-breaker never makes up min_judgments on its own.
    strict = preference_set_freeze(project=project, policy=CurationPolicy(
        aggregation="majority", judge_labels="tiebreak", min_judgments=3))
    assert strict.pairs.count() == 0 and strict.counts["items_below_min_judgments"] == 3

    include = preference_set_freeze(project=project, policy=CurationPolicy(aggregation="none", judge_labels="include"))
    assert include.counts["judge_judgments_counted"] == 3
    assert include.pairs.count() == 9  # 3 people's + 3 people's + 3 judge's, a pair each


def test_a_tiebreak_in_the_aggregation_cannot_outvote_a_single_person(project):
    item = live_items(project, 1)[0]
    with judge_server(lambda left, right: ("B", 0.99) if left.startswith("Answer A") else ("A", 0.99)) as server:
        judge = endpoint_judge(project, server)
        judges.judge_calibrate(judge=judge)  # it gets the anchors wrong: standing is not active
    assert Standing.objects.get(project=project, annotator=judge.user).state != "active"
    Standing.objects.filter(project=project, annotator=judge.user).update(state="active")
    with judge_server(lambda left, right: ("B", 0.99) if left.startswith("Answer A") else ("A", 0.99)) as server:
        Judge.objects.filter(pk=judge.pk).update(endpoint_url=server.url)
        judge.refresh_from_db()
        judges.judge_prelabel(judge=judge)
    person = calibrated_person(project)
    person_answers(project, person, "a")
    tiebreak = preference_set_freeze(project=project, policy=CurationPolicy(aggregation="dawid_skene",
                                                                            judge_labels="tiebreak"))
    assert [p.chosen_response_id for p in tiebreak.pairs.all()] == [item.response_a_id]


@pytest.mark.parametrize("mode, reason", [
    ("http500", "HTTP 500: "), ("garbage", "not a verdict"), ("not_json", "not a chat completion"),
])
def test_an_endpoint_failure_is_a_recorded_reason_and_stores_no_label(project, mode, reason):
    live_items(project, 2)
    with judge_server(prefers_response_a) as server:
        judge = endpoint_judge(project, server)
        judges.judge_calibrate(judge=judge)
        server.mode = mode
        outcome = judges.judge_prelabel(judge=judge)
    assert outcome == {"failed": 2}
    failed = JudgeCall.objects.filter(judge=judge, purpose=JudgeUse.PRELABEL)
    assert failed.count() == 2 and all(not c.ok and reason in c.error for c in failed)
    assert not Judgment.objects.filter(annotator=judge.user).exists()
    assert not Assignment.objects.filter(annotator=judge.user).exists(), "no lease is left behind"


def test_an_unreachable_endpoint_a_timeout_and_a_missing_key_are_reasons_too(project):
    live_items(project, 1)
    with judge_server(prefers_response_a) as server:
        judge = endpoint_judge(project, server, timeout_seconds=1)
        judges.judge_calibrate(judge=judge)
        server.mode = "slow"
        judges.judge_prelabel(judge=judge)
    call = JudgeCall.objects.filter(judge=judge, purpose=JudgeUse.PRELABEL).get()
    assert not call.ok and "could not reach the endpoint" in call.error and "timed out" in call.error
    judges.judge_prelabel(judge=judge)  # the server is gone now
    assert "could not reach the endpoint" in JudgeCall.objects.filter(judge=judge).last().error
    Judge.objects.filter(pk=judge.pk).update(api_key_env="JUDGE_KEY_NOBODY_SET")
    judge.refresh_from_db()
    judges.judge_prelabel(judge=judge)
    assert "JUDGE_KEY_NOBODY_SET is not set" in JudgeCall.objects.filter(judge=judge).last().error
    assert not Judgment.objects.filter(annotator=judge.user).exists()


def test_hyper_routing_closes_only_items_the_judge_is_sure_of_and_agrees_on(project):
    sure, unsure, disputed = live_items(project, 3)
    confidence = {sure.response_a.text: 0.95, unsure.response_a.text: 0.6, disputed.response_a.text: 0.95}

    def decide(left, right):
        a_text = left if left.startswith("Answer A") else right
        return ("A" if left == a_text else "B"), confidence.get(a_text, 0.95)  # anchors: sure

    with judge_server(decide) as server:
        judge = endpoint_judge(project, server, sure_at=0.8)
        judges.judge_calibrate(judge=judge)
        # One person judged the disputed item first, for b.
        person = calibrated_person(project)
        assignment = queue_next(project=project, annotator=person)
        while assignment.item_id != disputed.pk:
            from annotation.services.queue import queue_skip
            queue_skip(assignment_id=assignment.pk, annotator=person)
            assignment = queue_next(project=project, annotator=person)
        queue_submit(assignment_id=assignment.pk, annotator=person, client_token=uuid.uuid4(), data=JudgmentInput(
            choice=to_shown("b", shown_left=assignment.shown_left), strength="clear", rationale="B is better here, I say."))
        outcome = judges.judge_route(judge=judge)
    assert outcome == {"labelled": 3, "closed_for_people": 1, "sent_to_people_unsure": 1, "sent_to_people_disagrees": 1}
    targets = dict(Item.objects.filter(pk__in=[sure.pk, unsure.pk, disputed.pk]).values_list("pk", "target_judgments"))
    assert targets == {sure.pk: 0, unsure.pk: 3, disputed.pk: 3}
    # A closed item is served to nobody; the others still to people.
    other = calibrated_person(project)
    served = set()
    while (a := queue_next(project=project, annotator=other)) is not None:
        served.add(a.item_id)
        queue_submit(assignment_id=a.pk, annotator=other, client_token=uuid.uuid4(), data=JudgmentInput(
            choice="left", strength="clear", rationale="Left is better, I think so."))
    assert sure.pk not in served and {unsure.pk, disputed.pk} <= served
    # Closed stays closed: switching dynamic k (which re-targets every live comparison) leaves it.
    from calibration.services.dynamic_k import routing_update
    for on in (True, False):
        routing_update(project=project, changes={"dynamic_k": on})
        closed = Item.objects.get(pk=sure.pk)
        assert closed.closed_by_judge and closed.target_judgments == 0
    # A set without the judges' labels says what it could not take; with them it takes the item.
    without = preference_set_freeze(project=project, policy=CurationPolicy(aggregation="majority"))
    assert without.counts["items_closed_by_judge_left_out"] == 1
    with_judges = preference_set_freeze(project=project, policy=CurationPolicy(aggregation="majority",
                                                                               judge_labels="include"))
    assert "items_closed_by_judge_left_out" not in with_judges.counts
    assert with_judges.pairs.filter(prompt_id=sure.prompt_id).exists()


def test_the_report_shows_agreement_overturns_standing_and_the_cost_line(project):
    items = live_items(project, 6)
    with judge_server(prefers_response_a) as server:
        judge = endpoint_judge(project, server, cost_per_call=0.01)
        judges.judge_calibrate(judge=judge)
        judges.judge_prelabel(judge=judge)
    people = [calibrated_person(project) for _ in range(3)]
    # People agree with the judge on 4 items and overturn it on 2 (all three choose b there).
    overturned = {items[0].pk, items[1].pk}
    for person in people:
        while (a := queue_next(project=project, annotator=person)) is not None:
            canonical = "b" if a.item_id in overturned else "a"
            queue_submit(assignment_id=a.pk, annotator=person, client_token=uuid.uuid4(), data=JudgmentInput(
                choice=to_shown(canonical, shown_left=a.shown_left), strength="clear", rationale="My own reason here."))
    [row] = judges.judges_report(project=project)
    assert row["standing"] == "active" and row["anchors_answered"] == 3 and row["anchor_accuracy"] == 1.0
    assert row["labels"] == 6
    assert row["agreement"]["n"] == 6 and row["agreement"]["rate"] == pytest.approx(4 / 6)
    from sklearn.metrics import cohen_kappa_score
    assert row["agreement"]["kappa"] == pytest.approx(cohen_kappa_score(["a"] * 6, ["b", "b", "a", "a", "a", "a"]))
    assert row["overturn"]["n"] == 6 and row["overturn"]["rate"] == pytest.approx(2 / 6)
    assert row["overturn"]["judgments"] == 18 and row["overturn"]["judgment_rate"] == pytest.approx(6 / 18)
    from statsmodels.stats.proportion import proportion_confint
    low, high = proportion_confint(2, 6, method="wilson")
    assert (row["overturn"]["low"], row["overturn"]["high"]) == (pytest.approx(low), pytest.approx(high))
    assert row["calls"] == 9 and row["failed"] == 0
    assert row["cost"] == pytest.approx(9 * (0.01 + 0.5 * 0.15))
    assert row["cost_per_label"] == pytest.approx(row["cost"] / 6)
    assert row["latency_p50_ms"] is not None


def test_registering_a_judge_is_checked_field_by_field_and_creates_a_judge_account(project):
    from annotation.errors import ValidationFailed

    with pytest.raises(ValidationFailed) as caught:
        judges.judge_create(project=project, name="", kind=JudgeKind.ENDPOINT, endpoint_url="ftp://x",
                            api_key_env="lower-case", sure_at=0.2)
    assert set(caught.value.field_errors) == {"name", "endpoint_url", "endpoint_model", "api_key_env", "sure_at"}
    with pytest.raises(ValidationFailed) as caught:
        judges.judge_create(project=project, name="rm", kind=JudgeKind.REWARD_MODEL)
    assert set(caught.value.field_errors) == {"reward_model"}
    judge = judges.judge_create(project=project, name="dir judge", kind=JudgeKind.LOCAL_MODEL, model_dir="/nowhere")
    assert Membership.objects.get(user=judge.user).judge is True
    assert Membership.objects.get(user=judge.user).role == Role.ANNOTATOR
    assert judge.user.username == f"judge.{project.slug}.dir-judge"
    from django.contrib.auth.validators import UnicodeUsernameValidator
    UnicodeUsernameValidator()(judge.user.username)
    with pytest.raises(ValidationFailed) as caught:
        judges.judge_create(project=project, name="dir judge", kind=JudgeKind.LOCAL_MODEL, model_dir="/x")
    assert "name" in caught.value.field_errors


@pytest.mark.parametrize("content, expected", [
    ('{"choice": "A", "confidence": 0.8, "rationale": "r"}', ("left", 0.8, "r")),
    ('Sure!\n```json\n{"choice": "both bad", "confidence": 0.7}\n```', ("both_bad", 0.7, "")),
    ('{"choice": "b", "confidence": 7}', ("right", 1.0, "")),
    ('{"choice": "B", "confidence": "very"}', ("right", 0.75, "")),
    ("<rubric>x</rubric><answer>[[B]]</answer>", ("right", 0.75, "<rubric>x</rubric><answer>[[B]]</answer>")),
])
def test_endpoint_answers_are_read_as_verdicts(content, expected):
    assert parse_endpoint_answer(content) == expected


@pytest.mark.parametrize("content", ['{"choice": "C"}', "[[A]] or maybe [[B]]", "", '{"verdict": "A"}'])
def test_answers_that_are_no_verdict_are_refused(content):
    with pytest.raises(JudgeError):
        parse_endpoint_answer(content)


def test_a_quick_export_carries_peoples_labels_only(project):
    from rewards.selectors import export_sources, preference_rows

    live_items(project, 2)
    with judge_server(prefers_response_a) as server:
        judge = endpoint_judge(project, server)
        judges.judge_calibrate(judge=judge)
        judges.judge_prelabel(judge=judge)
    person = calibrated_person(project)
    person_answers(project, person, "b")
    assert export_sources(project=project).comparisons == 2
    rows = list(preference_rows(project=project, fmt="trl", aggregate="none"))
    assert len(rows) == 2 and all("AI judge" not in str(row) for row in rows)


def test_a_lead_cannot_aim_a_judge_at_the_workers_secrets_or_inside_the_network(project, settings):
    """The key comes only from variables the operator set aside, the endpoint must resolve to public
    addresses unless the operator allowed its host, and a redirect is never followed."""
    from annotation.errors import ValidationFailed

    with pytest.raises(ValidationFailed) as caught:
        judges.judge_create(project=project, name="thief", kind=JudgeKind.ENDPOINT, endpoint_url="https://example.org/v1",
                            endpoint_model="m", api_key_env="DJANGO_SECRET_KEY")
    assert "api_key_env" in caught.value.field_errors
    live_items(project, 1)
    Standing.objects.create(project=project, annotator=member(project), state="active", since=timezone.now())
    for url, why in (("http://10.1.2.3:8000/v1", "10.1.2.3, a private"), ("http://169.254.169.254/v1", "link-local"),
                     ("http://localhost:5432/v1", "loopback")):
        judge = judges.judge_create(project=project, name=f"inside {url[7:15]}", kind=JudgeKind.ENDPOINT,
                                    endpoint_url=url, endpoint_model="m")
        Standing.objects.update_or_create(project=project, annotator=judge.user,
                                          defaults={"state": "active", "since": timezone.now()})
        call = judges.judge_label(judge=judge, item=project.items.filter(in_live_queue=True).first(), purpose="prelabel")
        assert not call.ok and why in call.error, call.error
    # The operator's allowed host (the tests' loopback server), but a redirect towards the inside.
    with judge_server(prefers_response_a) as server:
        judge = endpoint_judge(project, server, name="redirected")
        Standing.objects.update_or_create(project=project, annotator=judge.user,
                                          defaults={"state": "active", "since": timezone.now()})
        server.mode = "redirect"
        call = judges.judge_label(judge=judge, item=project.items.filter(in_live_queue=True).first(), purpose="prelabel")
    assert not call.ok and "redirect" in call.error and len(server.requests) == 1
    # A variable slipped past registration (changed in the database) is refused when called.
    Judge.objects.filter(pk=judge.pk).update(api_key_env="DJANGO_SECRET_KEY")
    judge.refresh_from_db()
    call = judges.judge_label(judge=judge, item=project.items.filter(in_live_queue=True).first(), purpose="prelabel")
    assert not call.ok and "not among the variables" in call.error
    assert not Judgment.objects.filter(by_judge=True).exists()


@pytest.mark.parametrize("aggregation", ["majority", "dawid_skene", "bias_aware"])
def test_a_tiebreak_judge_never_turns_a_two_to_one_majority(project, aggregation):
    """People 2-1 for A on every item, the judge for B: under any aggregation the set says A, and the
    judge decided nothing (even a tiny weight inside Dawid-Skene could tip a close posterior)."""
    items = live_items(project, 6)
    with judge_server(lambda left, right: ("B", 0.99) if left.startswith("Answer A") else ("A", 0.99)) as server:
        judge = endpoint_judge(project, server)
        Standing.objects.create(project=project, annotator=judge.user, state="active", since=timezone.now())
        judges.judge_prelabel(judge=judge)
    people = [calibrated_person(project) for _ in range(3)]
    person_answers(project, people[0], "a")
    person_answers(project, people[1], "a")
    person_answers(project, people[2], "b")
    frozen = preference_set_freeze(project=project, policy=CurationPolicy(aggregation=aggregation,
                                                                          judge_labels="tiebreak"))
    assert {p.chosen_response_id for p in frozen.pairs.all()} == {i.response_a_id for i in items}
    assert "items_decided_by_judge_tiebreak" not in frozen.counts


def test_a_judges_both_bad_makes_no_rewrite_work_for_people(project):
    from annotation.models import ItemKind

    live_items(project, 2)
    with judge_server(lambda left, right: ("both_bad", 0.9)) as server:
        judge = endpoint_judge(project, server)
        Standing.objects.create(project=project, annotator=judge.user, state="active", since=timezone.now())
        assert judges.judge_prelabel(judge=judge) == {"labelled": 2}
    assert set(Judgment.objects.filter(by_judge=True).values_list("choice", flat=True)) == {"both_bad"}
    assert not Item.objects.filter(project=project, kind=ItemKind.REWRITE).exists()


def test_a_judge_runs_one_job_at_a_time(project):
    from annotation.errors import ValidationFailed
    from training.models import JudgeJob

    judge = judges.judge_create(project=project, name="busy", kind=JudgeKind.ENDPOINT,
                                endpoint_url="http://127.0.0.1:9/v1", endpoint_model="m")
    first = judges.judge_job_request(judge=judge, use="calibration")
    with pytest.raises(ValidationFailed) as caught:
        judges.judge_job_request(judge=judge, use="prelabel")
    assert "queued or running" in caught.value.field_errors["judge"]
    JudgeJob.objects.filter(pk=first.pk).update(status="failed")
    assert judges.judge_job_request(judge=judge, use="prelabel").status == "queued"


def test_the_dashboard_is_peoples_and_a_judge_gets_its_own_bias_flags(project):
    """Analytics figures are people's alone (what a set takes by default); the judge's rows of the
    bias detectors come separately, here a judge that always takes the left response is flagged
    for position, and the judges' report shows it."""
    from calibration.services.analytics import analytics_compute

    items = live_items(project, 60)
    with judge_server(lambda left, right: ("A", 0.9)) as server:  # always the left one
        judge = endpoint_judge(project, server)
        Standing.objects.create(project=project, annotator=judge.user, state="active", since=timezone.now())
        assert judges.judge_prelabel(judge=judge) == {"labelled": 60}
    people = [calibrated_person(project) for _ in range(2)]
    for person in people:
        person_answers(project, person, "a")
    payload = analytics_compute(project=project)
    usernames = {row["username"] for row in payload["annotators"]}
    assert judge.user.username not in usernames and {p.username for p in people} <= usernames
    assert payload["counts"]["judgments"] == 2 * len(items)
    [row] = payload["judges"]
    assert row["username"] == judge.user.username and "position" in {f["kind"] for f in row["flags"]}
    from calibration.models import AnalyticsSnapshot
    AnalyticsSnapshot.objects.create(project=project, status="succeeded", payload=payload, finished_at=timezone.now())
    [report] = judges.judges_report(project=project)
    assert "position" in report["flags"]
