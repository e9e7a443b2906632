"""The behavioural suite judged by people: a checkpoint's suite answers and the SFT baseline's
become rubric items, routed blind and mixed together; people's answers, given through the real
submit path, become the run page's checkpoint-vs-baseline table (rates and intervals checked
against statsmodels), flagged where a dimension got worse while the reward rose, with the
automatic suite beside it and where the two disagree."""
from __future__ import annotations

import uuid

import pytest
from django.urls import reverse
from statsmodels.stats.contingency_tables import mcnemar
from statsmodels.stats.proportion import proportion_confint

from annotation.models import Item, ItemKind, Response, Role, RubricAnswer
from annotation.selectors import assignment_payload
from annotation.services.queue import queue_next
from annotation.services.rubric_evals import RubricInput, rubric_submit
from tests.factories import ProjectFactory, PromptFactory, api_as, member
from training import human_suite as stats
from training.config import RLRunConfig
from training.models import RubricEval, RubricRole, Run, RunKind, RunMetric, RunSample, RunStatus, SampleRole, SuiteResult
from training.monitors import MonitorThresholds
from training.services.human_suite import HumanSuiteError, human_suite_report, rubric_checkpoint_send
from training.services.rl_runs import DbRLHooks

pytestmark = pytest.mark.django_db

SPEC = """# Spec

## Rubric: math
- States the final answer plainly.
- Shows the working.

## Rubric
- Answers the question that was asked.
"""
MATH, CHAT = 8, 4


def _world(*, rubric_raters: int = 1, spec: str = SPEC):
    project = ProjectFactory(spec=spec)
    run = Run.objects.create(project=project, kind=RunKind.GRPO, status=RunStatus.RUNNING, total_steps=20,
                             config={"rubric_raters": rubric_raters})
    math = [PromptFactory(project=project, domain="math") for _ in range(MATH)]
    chat = [PromptFactory(project=project, domain="chat") for _ in range(CHAT)]
    for p in math + chat:
        RunSample.objects.create(run=run, step=0, role=SampleRole.REFERENCE, prompt=p, completion=f"baseline says {p.pk}")
    for step in (10, 20):
        for i, p in enumerate(math + chat):
            same = step == 10 and p == math[0]  # an answer identical to the baseline's shares its item
            RunSample.objects.create(run=run, step=step, role=SampleRole.POLICY, prompt=p,
                                     completion=f"baseline says {p.pk}" if same else f"step {step} says {p.pk}")
    for step in (0, 10, 20):
        for dimension, prompts in (("math", math), ("chat", chat)):
            SuiteResult.objects.create(
                run=run, step=step, dimension=dimension, prompts=len(prompts), verified=len(prompts) if dimension == "math" else 0,
                verifier_pass=1.0 if dimension == "math" else None, mean_length=3, hedging=0, list_rate=0, weak=False,
                answers=[{"prompt_id": p.pk, "score": 1.0 if dimension == "math" else None} for p in prompts])
    for step in range(1, 21):
        RunMetric.objects.create(run=run, step=step, loss=0.1, values={"reward": step / 20})
    return project, run, math, chat


def _role_of(run) -> dict[int, set]:
    """item -> the (role, step, prompt) it stands for (the test's key, never the annotator's)."""
    out: dict[int, set] = {}
    for e in RubricEval.objects.filter(run=run):
        out.setdefault(e.item_id, set()).add((e.role, e.step, e.prompt_id))
    return out


def test_rubric_items_are_routed_blind_with_the_baseline_answers_mixed_in(client):
    project, run, math, chat = _world()
    sent = rubric_checkpoint_send(run=run, step=10)
    # 12 prompts: 12 baseline answers and 12 checkpoint answers, one identical pair sharing an item.
    assert (sent["sent"], sent["created"], sent["shared"]) == (24, 23, 1)
    items = Item.objects.filter(project=project, kind=ItemKind.RUBRIC)
    assert items.count() == 23 and all(i.target_judgments == 1 and i.in_live_queue for i in items)
    roles = _role_of(run)
    [shared] = [i for i, keys in roles.items() if len(keys) == 2]
    assert roles[shared] == {(RubricRole.BASELINE, 10, math[0].pk), (RubricRole.CHECKPOINT, 10, math[0].pk)}
    # Nothing stored where an annotator could see it names the run, the step or the baseline.
    assert set(Response.objects.filter(pk__in=items.values("response_a")).values_list("model_name", flat=True)) == {""}
    assert all(i.prompt.source == "behaviour_suite" and i.prompt.tags == ["behaviour-suite"] for i in items)

    annotator = member(project)
    client.force_login(annotator)
    served_roles = []
    for _ in range(23):
        page = client.post(reverse("label-next", args=[project.slug])).content.decode()
        assignment = queue_next(project=project, annotator=annotator)  # the lease the page holds
        payload = assignment_payload(assignment=assignment)
        assert set(payload) == {"kind", "assignment", "lease_expires_at", "prompt", "response", "dimension", "checks"}
        assert payload["kind"] == "rubric" and 'id="rubric-form"' in page
        for secret in ("baseline", "checkpoint", "step 10", f"run {run.pk}", "SFT"):
            assert secret not in page.replace(payload["response"]["text"], "")
        assert payload["checks"] == (["States the final answer plainly.", "Shows the working."]
                                     if payload["dimension"] == "math" else ["Answers the question that was asked."])
        served_roles.append({r for r, _s, _p in roles[assignment.item_id]})
        rubric_submit(assignment_id=assignment.pk, author=annotator, client_token=uuid.uuid4(),
                      data=RubricInput(answers=["pass"] * len(payload["checks"]), rationale="Does what the rubric asks."))
    assert queue_next(project=project, annotator=annotator) is None
    # Mixed: a checkpoint answer comes before the last baseline one and a baseline answer before
    # the last checkpoint one (neither is queued as a block after the other).
    first_checkpoint = next(i for i, r in enumerate(served_roles) if RubricRole.CHECKPOINT in r)
    first_baseline = next(i for i, r in enumerate(served_roles) if RubricRole.BASELINE in r)
    last_checkpoint = max(i for i, r in enumerate(served_roles) if RubricRole.CHECKPOINT in r)
    last_baseline = max(i for i, r in enumerate(served_roles) if RubricRole.BASELINE in r)
    assert first_checkpoint < last_baseline and first_baseline < last_checkpoint
    # Interleaved, not two blocks: the side changes often along the queue (a block order changes once).
    sides = [min(r) for r in served_roles]
    assert sum(a != b for a, b in zip(sides, sides[1:])) >= 5

    # The next checkpoint is sent with the baseline's answers again, to be judged beside it.
    again = rubric_checkpoint_send(run=run, step=20)
    assert again["created"] == 24 and RubricEval.objects.filter(run=run, role=RubricRole.BASELINE, step=20).count() == 12
    with pytest.raises(HumanSuiteError, match="already"):
        rubric_checkpoint_send(run=run, step=20)


def _answer_all(project, run, verdict) -> None:
    """Every rubric item answered by one person through the real submit path; verdict(keys) says
    pass or fail for the item whose (role, step, prompt) keys are given."""
    roles = _role_of(run)
    annotator = member(project)
    while (assignment := queue_next(project=project, annotator=annotator)) is not None:
        checks = len(assignment_payload(assignment=assignment)["checks"])
        value = verdict(roles[assignment.item_id])
        answers = ["pass"] * checks if value == "pass" else ["fail"] + ["na"] * (checks - 1)
        rubric_submit(assignment_id=assignment.pk, author=annotator, client_token=uuid.uuid4(),
                      data=RubricInput(answers=answers, rationale="Judged against the rubric."))


def test_the_run_page_table_of_checkpoints_against_the_baseline_comes_from_peoples_rubric_answers(client):
    project, run, math, chat = _world()
    rubric_checkpoint_send(run=run, step=10)
    index = {p.pk: i for i, p in enumerate(math)}

    def verdict(keys):
        role, step, pid = sorted(keys)[0]
        if pid not in index:
            return "pass"  # chat: everything passes
        if any(r == RubricRole.CHECKPOINT for r, _s, _p in keys) and len(keys) == 1:
            return "pass" if index[pid] < 2 else "fail"  # the checkpoint passes 2 of 8
        return "pass" if index[pid] < 6 else "fail"  # the baseline (and the shared answer) 6 of 8

    _answer_all(project, run, verdict)
    report = human_suite_report(run=run)
    assert (report["wanted"], report["received"]) == (23, 23)
    by_dimension = {d["dimension"]: d for d in report["dimensions"]}
    [row] = by_dimension["math"]["rows"]
    base, checkpoint = row["baseline"], row["checkpoint"]
    assert row["step"] == 10 and (base["passes"], base["decided"]) == (6, 8) and (checkpoint["passes"], checkpoint["decided"]) == (2, 8)
    for side, passes in ((base, 6), (checkpoint, 2)):
        assert side["interval"] == pytest.approx(proportion_confint(passes, 8, method="wilson"), abs=1e-9)
    # Paired on the same 8 prompts: 4 passed only for the baseline, none only for the checkpoint.
    assert (row["pairs"], row["only_checkpoint"], row["only_baseline"]) == (8, 0, 4)
    assert row["difference"] == pytest.approx(-0.5)
    assert row["p_value"] == pytest.approx(mcnemar([[2, 0], [4, 2]], exact=True).pvalue)
    assert row["worse"] and not row["significant"]
    assert row["reward_change"] > 0 and row["flagged"]
    # The automatic suite found nothing weak; people did: a disagreement, per dimension and per answer.
    assert row["auto_weak"] is False and row["disagree"]
    assert by_dimension["math"]["disagreement_count"] == 6
    assert {x["kind"] for x in by_dimension["math"]["disagreements"]} == {"verifier passed, people failed"}
    first_check = row["checks"][0]
    assert first_check["check"] == "States the final answer plainly."
    assert (first_check["baseline"], first_check["checkpoint"]) == (pytest.approx(6 / 8), pytest.approx(2 / 8))
    [chat] = by_dimension["chat"]["rows"]
    assert chat["checkpoint"]["rate"] == 1.0 and not chat["worse"] and not chat["flagged"] and not chat["disagree"]

    engineer = member(project, Role.ENGINEER)
    client.force_login(engineer)
    page = client.get(reverse("run", args=[project.slug, run.pk])).content.decode()
    table = page[page.index('data-dimension="math"'):]
    table = table[:table.index("</table>")]
    assert "SFT baseline passes" in table and "Step 10" in table
    assert ">0.75 <" in table.replace("\n", "") or "0.75 <span" in table
    assert "0.25 <span" in table
    assert "-0.50" in table and "worse while reward rose" in table and "people find it worse" in table
    assert f"{proportion_confint(2, 8, method='wilson')[0]:.2f}" in table
    assert "Send step 20 to people" in page  # step 20 not sent yet: one click away
    api = api_as(engineer).get(reverse("api:run-human-suite", args=[run.pk]))
    assert api.status_code == 200 and api.json()["dimensions"][1]["rows"][0]["flagged"] is True


def test_several_raters_decide_by_majority_and_a_split_is_undecided():
    assert stats.answer_outcome(["pass", "pass", "fail"]) == "pass"
    assert stats.answer_outcome(["pass", "fail"]) is None and stats.answer_outcome([]) is None
    assert stats.answer_outcome(["na", "na"]) == "na" and stats.answer_outcome(["na", "pass"]) == "pass"
    assert stats.check_outcomes([["pass", "na"], ["fail", "na"], ["pass", "fail"]], 2) == ["pass", "fail"]
    rate = stats.rate_of(["pass", None, "fail", "pass", "na"])
    assert (rate.decided, rate.passes, rate.undecided, rate.not_applicable) == (3, 2, 1, 1)
    assert rate.na_share == pytest.approx(1 / 4)


@pytest.mark.parametrize("b, c", [(0, 0), (0, 4), (3, 1), (5, 5), (1, 12), (20, 7), (0, 30)])
def test_the_exact_mcnemar_p_value_matches_statsmodels(b, c):
    assert stats.mcnemar_exact(b, c) == pytest.approx(mcnemar([[5, b], [c, 5]], exact=True).pvalue, abs=1e-12)


def test_reward_change_compares_the_ends_of_the_logged_reward():
    assert stats.reward_change([(1, 0.0), (2, 0.0), (3, 0.0), (4, 1.0), (5, 1.0), (6, 1.0)], 6) == pytest.approx(1.0)
    assert stats.reward_change([(1, 1.0), (2, 0.5), (3, float("nan")), (4, 0.2)], 4) < 0
    assert stats.reward_change([(1, 1.0), (9, 2.0)], 5) is None  # one point up to step 5


def test_a_checkpoint_is_sent_by_the_run_itself_when_its_suite_runs():
    project, run, math, chat = _world(spec=SPEC.replace("## Rubric\n- Answers the question that was asked.\n", ""))
    config = RLRunConfig.from_dict({"policy_path": "unused", "rubric_raters": 2})
    suite = [{"prompt_id": p.pk, "prompt": p.messages, "domain": p.domain} for p in math + chat]
    hooks = DbRLHooks(run=run, config=config, thresholds=MonitorThresholds(), suite=suite)
    hooks.run_suite(step=0, path="start", completions=[f"start {i}" for i in range(len(suite))])
    assert not RubricEval.objects.filter(run=run).exists()  # the start is not a checkpoint
    hooks.run_suite(step=30, path="ckpt", completions=[f"trained {i}" for i in range(len(suite))])
    evals = RubricEval.objects.filter(run=run)
    # Only math has a rubric now: its 8 checkpoint answers and the 8 baseline answers, 2 people each.
    assert evals.filter(role=RubricRole.CHECKPOINT, step=30).count() == 8 and {e.dimension for e in evals} == {"math"}
    assert evals.filter(role=RubricRole.BASELINE, step=30).count() == 8
    assert {e.item.target_judgments for e in evals} == {2}
    assert run.logs.filter(message__contains="not sent: chat (the spec has no rubric for it)").exists()


def test_who_may_send_and_read_and_what_is_refused(client):
    project, run, math, chat = _world()
    annotator, engineer, lead = member(project), member(project, Role.ENGINEER), member(project, Role.LEAD)
    outsider = member(ProjectFactory(), Role.LEAD)
    url = reverse("api:run-human-suite", args=[run.pk])
    from rest_framework.test import APIClient
    assert APIClient().get(url).status_code == 401 and APIClient().post(url, {"step": 10}).status_code == 401
    for user in (annotator, outsider):
        assert api_as(user).get(url).status_code in ((403,) if user == annotator else (404,))
        assert api_as(user).post(url, {"step": 10}, format="json").status_code in ((403,) if user == annotator else (404,))
        client.force_login(user)
        expected = 403 if user == annotator else 404
        assert client.post(reverse("run-human-suite", args=[project.slug, run.pk]), {"step": "10"}).status_code == expected
    assert not RubricEval.objects.exists()
    assert api_as(engineer).post(url, {"step": 0}, format="json").status_code == 400
    assert api_as(engineer).post(url, {"step": 7}, format="json").status_code == 400  # no checkpoint there
    assert api_as(engineer).post(url, {"step": 10, "raters": 9}, format="json").status_code == 400
    made = api_as(engineer).post(url, {"step": 10, "raters": 3}, format="json")
    assert made.status_code == 201 and made.json()["created"] == 23
    assert set(Item.objects.filter(kind=ItemKind.RUBRIC).values_list("target_judgments", flat=True)) == {3}
    client.force_login(lead)
    page = client.post(reverse("run-human-suite", args=[project.slug, run.pk]), {"step": "20"}, follow=True)
    assert page.status_code == 200 and "24 rubric evaluations queued" in page.content.decode()
    assert run.logs.filter(message__contains=f"sent by {lead.username}").exists()
    assert client.post(reverse("run-human-suite", args=[project.slug, run.pk]), {"step": "²"}, follow=True).status_code == 200
    assert RubricAnswer.objects.count() == 0


def test_without_any_rubric_nothing_is_sent_and_the_reason_is_given():
    project, run, *_ = _world(spec="# Spec\n\nBe kind.")
    with pytest.raises(HumanSuiteError, match="no rubric"):
        rubric_checkpoint_send(run=run, step=10)
    assert not Item.objects.filter(kind=ItemKind.RUBRIC).exists()


def test_a_rubric_edited_between_checkpoints_pairs_each_checkpoint_with_the_baseline_judged_beside_it():
    project, run, math, chat = _world()
    rubric_checkpoint_send(run=run, step=10)
    from annotation.services.projects import spec_publish

    spec_publish(project=project, text=SPEC.replace("- Shows the working.", "- Shows the working.\n- Uses units."))
    rubric_checkpoint_send(run=run, step=20, raters=2)
    step20 = RubricEval.objects.filter(run=run, step=20, dimension="math").select_related("item__rubric")
    assert {len(e.item.rubric.checks) for e in step20} == {3}  # both sides under the new rubric
    assert {len(e.item.rubric.checks) for e in RubricEval.objects.filter(run=run, step=10, dimension="math")} == {2}
    roles = _role_of(run)
    first, second = member(project), member(project)
    for person, checkpoint_verdict in ((first, "pass"), (second, "fail")):
        while (assignment := queue_next(project=project, annotator=person)) is not None:
            keys = roles[assignment.item_id]
            checks = len(assignment_payload(assignment=assignment)["checks"])
            step = next(iter(keys))[1]
            if step == 10 or all(r == RubricRole.BASELINE for r, _s, _p in keys):
                answers = ["pass"] * checks
            else:
                answers = [checkpoint_verdict] * checks
            rubric_submit(assignment_id=assignment.pk, author=person, client_token=uuid.uuid4(),
                          data=RubricInput(answers=answers, rationale="Judged against the rubric."))
    rows = {r["step"]: r for r in next(d for d in human_suite_report(run=run)["dimensions"] if d["dimension"] == "math")["rows"]}
    # Step 20, two people each: they split on every checkpoint answer but the shared one, so those are undecided.
    assert rows[20]["checkpoint"]["undecided"] == 8 and rows[20]["checkpoint"]["decided"] == 0
    assert rows[20]["baseline"]["rate"] == 1.0 and rows[20]["pairs"] == 0 and not rows[20]["worse"]
    assert [c["check"] for c in rows[20]["checks"]][-1] == "Uses units."
    assert [c["check"] for c in rows[10]["checks"]] == ["States the final answer plainly.", "Shows the working."]


def test_answers_the_rubric_does_not_fit_are_counted_apart_and_a_rise_is_reported():
    project, run, math, chat = _world()
    rubric_checkpoint_send(run=run, step=20)
    roles = _role_of(run)
    person = member(project)
    while (assignment := queue_next(project=project, annotator=person)) is not None:
        checks = len(assignment_payload(assignment=assignment)["checks"])
        baseline = all(r == RubricRole.BASELINE for r, _s, _p in roles[assignment.item_id])
        rubric_submit(assignment_id=assignment.pk, author=person, client_token=uuid.uuid4(), data=RubricInput(
            answers=["pass"] * checks if baseline else ["na"] * checks, rationale="Judged against the rubric."))
    [row] = next(d for d in human_suite_report(run=run)["dimensions"] if d["dimension"] == "math")["rows"]
    assert row["checkpoint"]["not_applicable"] == 8 and row["checkpoint"]["rate"] is None
    assert row["na_rise"] and not row["worse"]


def test_one_lost_prompt_is_not_a_finding():
    assert not stats.paired({1: "fail"}, {1: "pass"}).worse  # -1.0, but one pair
    assert stats.paired({1: "fail", 2: "fail"}, {1: "pass", 2: "pass"}).worse
    assert stats.paired({1: "na", 2: "pass"}, {1: "pass", 2: "pass"}).pairs == 1  # na is not paired
