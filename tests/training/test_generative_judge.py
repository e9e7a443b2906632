"""Generative judges (issue 22): a causal LM fine-tuned with TRL's SFT on a frozen set's rm-r1
export, evaluated on the held-out split in both A/B orders, registered as a local-model judge and
used as one. The evaluation's figures on hand-made verdicts; the whole run on a real Celery worker
process on the gpu queue, with a tiny judge built here; a crash; refusals."""
from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
from django.utils import timezone

from calibration.models import Standing, StandingState
from rewards.services.sets import set_rows
from tests.factories import ItemFactory, ProjectFactory
from training.services import judges
from training.backends.judge_sft import evaluate, judge_figures
from training.config import GenerativeJudgeConfig
from training.models import Judge, JudgeKind, JudgeUse, Run, RunKind, RunStatus
from training.services.judge_runs import generative_judge_run_create, generative_judge_run_execute
from training.services.reward_runs import RunConfigError

from .conftest import learnable_set

pytestmark = pytest.mark.train


def tiny_judge_for(preference_set, path: Path) -> str:
    """A tiny random Llama whose tokenizer is trained on the set's rm-r1 rows (all splits)."""
    from training.generators.tiny import build_tiny_judge

    rows = list(set_rows(preference_set=preference_set, fmt="rm-r1"))
    texts = [m["content"] for row in rows for m in row["context_messages"]] + [row["target"] for row in rows]
    return str(build_tiny_judge(path, texts, hidden=64, layers=2))


# ---------------------------------------------------------------- the evaluation, on plain data


def pair(domain: str, tag: str = "comparison", chosen: str = "answer yes", rejected: str = "answer no") -> dict:
    return {"messages": [{"role": "user", "content": "Is it so?"}], "chosen": chosen, "rejected": rejected,
            "domain": domain, "tag": tag}


def test_the_evaluation_counts_both_orders_per_category_and_how_often_a_swap_changes_the_verdict():
    pairs = [pair("maths"), pair("maths"), pair("safety", "adversarial"), pair("safety", "adversarial"), pair("maths")]
    # P(A) with the chosen response as A, then with the rejected one as A:
    # pair 0 right both ways; pair 1 says A both times (right, then wrong); pair 2 says B both
    # times (wrong, then right); pair 3 wrong both ways; pair 4 cannot tell (exactly even: a tie,
    # as live judging reads it, never a default A), which is not right but does not move.
    report = judge_figures(pairs=pairs, p_chosen_first=[0.9, 0.6, 0.2, 0.3, 0.5],
                           p_rejected_first=[0.1, 0.7, 0.4, 0.8, 0.5])
    assert report["n"] == 5 and report["verdicts"] == 10
    assert report["accuracy"] == 4 / 10
    assert report["accuracy_chosen_first"] == 2 / 5 and report["accuracy_chosen_second"] == 2 / 5
    assert report["position_consistency"] == 3 / 5  # pairs 0, 3 and 4 give the same verdict both ways
    assert report["first_position_rate"] == 4 / 10 and report["tie_rate"] == 2 / 10
    assert report["mean_p_chosen"] == pytest.approx(0.5)
    domain = {row["name"]: row for row in report["categories"]["domain"]}
    assert domain["maths"] == {"name": "maths", "pairs": 3, "accuracy": 3 / 6, "position_consistency": 2 / 3}
    assert domain["safety"] == {"name": "safety", "pairs": 2, "accuracy": 1 / 4, "position_consistency": 1 / 2}
    assert [(row["name"], row["pairs"]) for row in report["categories"]["tag"]] == [("adversarial", 2),
                                                                                   ("comparison", 3)]
    empty = judge_figures(pairs=[], p_chosen_first=[], p_rejected_first=[])
    assert empty["accuracy"] is None and empty["position_consistency"] is None and empty["n"] == 0
    with pytest.raises(ValueError):
        judge_figures(pairs=pairs, p_chosen_first=[0.9], p_rejected_first=[0.1])


class ReadsTheAnswers:
    """A stand-in judge: it reads which response says yes from the rm-r1 prompt it is given, or
    always says A."""

    def __init__(self, always_a: bool = False):
        self.always_a, self.prompts = always_a, []

    def p_first(self, messages):
        self.prompts.append(messages)
        user = messages[-1]["content"]
        a = re.search(r"Chatbot A's Response\]\n(.*?)\n\[The End", user, re.S).group(1)
        if self.always_a:
            return 0.8, "<rubric>r</rubric><eval>A, always.</eval>"
        return (0.95 if a.endswith("yes") else 0.05), "<rubric>says yes</rubric><eval>one says yes</eval>"


def test_each_held_out_pair_is_judged_in_both_orders_so_a_judge_that_always_says_a_scores_half():
    pairs = [pair("maths", chosen=f"{i} yes", rejected=f"{i} no") for i in range(3)]
    good = ReadsTheAnswers()
    report = evaluate(model_dir="unused", pairs=pairs, max_new_tokens=16, judge=good)
    assert len(good.prompts) == 6
    assert good.prompts[0][0]["role"] == "system" and "[[A]] or [[B]]" in good.prompts[0][0]["content"]
    assert report["accuracy"] == 1.0 and report["position_consistency"] == 1.0 and report["first_position_rate"] == 0.5
    assert report["samples"][0]["evaluation"].startswith("<rubric>") and report["max_new_tokens"] == 16
    biased = evaluate(model_dir="unused", pairs=pairs, judge=ReadsTheAnswers(always_a=True))
    assert biased["accuracy"] == 0.5 and biased["position_consistency"] == 0.0 and biased["first_position_rate"] == 1.0
    assert biased["accuracy_chosen_first"] == 1.0 and biased["accuracy_chosen_second"] == 0.0


# ---------------------------------------------------------------- the run, end to end on a worker


@pytest.mark.django_db(transaction=True)
def test_a_generative_judge_is_trained_by_a_real_worker_evaluated_registered_and_labels_live_work(
        tmp_path, settings, monkeypatch):
    from .test_worker_e2e import run_of, wait_for, worker_process

    settings.TRAINING_ROOT = tmp_path
    project = ProjectFactory()
    preference_set = learnable_set(project, items=24)
    held_out = preference_set.counts["by_split"]["test"]
    assert held_out > 0
    base = tiny_judge_for(preference_set, tmp_path / "tiny-judge")
    config = GenerativeJudgeConfig(base_model=base, max_steps=60, batch_size=8, learning_rate=1e-2, max_length=512,
                                   max_new_tokens=16)
    log = tmp_path / "worker.log"
    with worker_process(tmp_path):
        run = generative_judge_run_create(project=project, preference_set=preference_set, config=config)
        assert run.status == RunStatus.QUEUED and run.kind == RunKind.GENERATIVE_JUDGE
        wait_for(lambda: run_of(run.pk).status in (RunStatus.SUCCEEDED, RunStatus.FAILED), timeout=240,
                 what="the generative judge run to end", log=log)
    run.refresh_from_db()
    assert run.status == RunStatus.SUCCEEDED, run.error
    assert run.worker.startswith("e2e-") and run.device.startswith("cpu")
    assert run.step == run.total_steps == 60 and run.metrics.exists()

    evaluation = run.summary["evaluation"]
    assert evaluation["n"] == held_out and evaluation["verdicts"] == 2 * held_out
    for figure in ("accuracy", "position_consistency", "first_position_rate", "mean_p_chosen"):
        assert 0 <= evaluation[figure] <= 1, figure
    domains = {row["name"]: row for row in evaluation["categories"]["domain"]}
    assert set(domains) == {"maths", "trivia"} and sum(row["pairs"] for row in domains.values()) == held_out
    assert all(0 <= row["accuracy"] <= 1 and 0 <= row["position_consistency"] <= 1 for row in domains.values())
    assert [row["name"] for row in evaluation["categories"]["tag"]] == ["comparison"]
    # SFT trained on the completion: the judge writes the rm-r1 target's markup before its verdict.
    assert evaluation["samples"][0]["evaluation"].startswith("<rubric>")

    judge = Judge.objects.get(project=project, source_run_id=run.pk)
    assert judge.kind == JudgeKind.LOCAL_MODEL and run.summary["judge_id"] == judge.pk
    assert judge.name == f"{preference_set} generative judge v{run.pk}"
    assert judge.evaluation == evaluation and Path(judge.model_dir, "config.json").is_file()
    messages = " ".join(run.logs.values_list("message", flat=True))
    assert "Held-out accuracy" in messages and "position consistency" in messages and "Succeeded." in messages

    # Used as a judge: it labels a live comparison through the submit path, marked as a judge's.
    Standing.objects.update_or_create(project=project, annotator=judge.user,
                                      defaults={"state": StandingState.ACTIVE, "since": timezone.now()})
    monkeypatch.setattr(judges, "CAUSAL_MAX_NEW_TOKENS", 16)
    item = ItemFactory(project=project)
    call = judges.judge_label(judge=judge, item=item, purpose=JudgeUse.PRELABEL)
    assert call.ok, call.error
    assert call.judgment is not None and call.judgment.by_judge is True
    assert 0 <= call.p_a <= 1 and call.choice in ("a", "b")
    assert f"AI judge {judge.name}" in call.judgment.rationale


# ---------------------------------------------------------------- failures and refusals


@pytest.mark.django_db
def test_a_crash_on_the_worker_leaves_the_run_failed_with_its_reason(tmp_path, settings):
    settings.TRAINING_ROOT = tmp_path
    project = ProjectFactory()
    preference_set = learnable_set(project, items=8)
    base = tiny_judge_for(preference_set, tmp_path / "judge-that-goes-away")
    run = generative_judge_run_create(project=project, preference_set=preference_set,
                                      config=GenerativeJudgeConfig(base_model=base, max_steps=2, max_new_tokens=4))
    shutil.rmtree(base)  # there when queued, gone when the worker starts
    with pytest.raises(FileNotFoundError):
        generative_judge_run_execute(run_id=run.pk, node="test@here")
    run.refresh_from_db()
    assert run.status == RunStatus.FAILED and run.finished_at
    assert "FileNotFoundError" in run.error and base in run.error
    assert not Judge.objects.filter(project=project).exists()
    assert generative_judge_run_execute(run_id=run.pk) is None  # a redelivered message does nothing


@pytest.mark.django_db
def test_a_cancel_asked_for_while_it_trains_stops_the_run_at_its_next_step_and_registers_nothing(tmp_path, settings):
    settings.TRAINING_ROOT = tmp_path
    project = ProjectFactory()
    preference_set = learnable_set(project, items=8)
    base = tiny_judge_for(preference_set, tmp_path / "judge")
    run = generative_judge_run_create(project=project, preference_set=preference_set,
                                      config=GenerativeJudgeConfig(base_model=base, max_steps=500, batch_size=2))
    Run.objects.filter(pk=run.pk).update(cancel_requested=True)  # as run_cancel leaves a running run
    run = generative_judge_run_execute(run_id=run.pk, node="test@here")
    assert run.status == RunStatus.CANCELLED and run.step < 500
    assert not Judge.objects.filter(project=project).exists()
    assert not Path(run.output_dir, "model").exists()


@pytest.mark.django_db
def test_sets_without_a_held_out_split_bad_configs_and_taken_judge_names_are_refused_with_the_field_named(tmp_path):
    project = ProjectFactory()
    no_test = learnable_set(project, items=8, test_fraction=0.0)
    base = tiny_judge_for(no_test, tmp_path / "judge")
    with pytest.raises(RunConfigError) as refused:
        generative_judge_run_create(project=project, preference_set=no_test,
                                    config=GenerativeJudgeConfig(base_model=base))
    assert "no held-out pairs" in refused.value.errors["preference_set"]
    judges.judge_create(project=project, name="taken", kind=JudgeKind.LOCAL_MODEL, model_dir=base)
    with pytest.raises(RunConfigError) as refused:
        generative_judge_run_create(project=project, preference_set=no_test, config=GenerativeJudgeConfig(
            base_model="/nowhere", learning_rate=2, batch_size=0, max_new_tokens=0, judge_name="taken"))
    assert set(refused.value.errors) >= {"base_model", "learning_rate", "batch_size", "max_new_tokens", "judge_name"}
    with pytest.raises(RunConfigError) as refused:
        generative_judge_run_create(project=project, preference_set=no_test,
                                    config=GenerativeJudgeConfig(base_model=base, judge_name="no/slashes"))
    assert "judge_name" in refused.value.errors
    with pytest.raises(ValueError, match="unknown config field"):
        GenerativeJudgeConfig.from_dict({"base_model": base, "lr": 1})
    assert GenerativeJudgeConfig.from_dict({"base_model": base, "max_steps": "", "judge_name": ""}).max_steps is None
    assert not Run.objects.filter(project=project).exists()


@pytest.mark.django_db
def test_the_judge_never_trains_on_an_anchors_prompt():
    """Its calibration round asks the anchors: a judge trained on them would pass it by memory."""
    from calibration.services.anchors import ExpertAnswer, anchor_create
    from training.services.judge_runs import sft_rows

    project = ProjectFactory()
    preference_set = learnable_set(project, items=12, test_fraction=0.25)
    train = list(preference_set.pairs.filter(split="train"))
    rows, left_out = sft_rows(preference_set=preference_set)
    assert left_out == 0 and len(rows) == len(train)
    anchored = ItemFactory(project=project, prompt_id=train[0].prompt_id)
    anchor_create(item=anchored, answer=ExpertAnswer(choice="a", strength="clear", explanation="A is right.",
                                                     clear_cut=True))
    rows, left_out = sft_rows(preference_set=preference_set)
    on_that_prompt = sum(1 for p in train if p.prompt_id == train[0].prompt_id)
    assert left_out == on_that_prompt >= 1 and len(rows) == len(train) - on_that_prompt
