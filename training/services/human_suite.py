"""The behavioural suite judged by people against the SFT baseline.

At a checkpoint of a policy run, each suite answer whose dimension has a rubric in the spec
(annotation.rubrics) becomes a rubric-evaluation item, and so does the baseline's answer to the
same prompt (the reference's, step 0: the SFT model the run started from), again at every
checkpoint: each send holds both, judged under the same rubric by the same pool at the same time,
so a checkpoint is compared with baseline answers judged beside it (a rubric edited between
checkpoints, or raters drifting over weeks, cannot pass for a change in the policy). The items of
one send are shuffled together before they are queued, so baseline and checkpoint answers come to
annotators mixed and alike: the item carries the prompt, the answer and the checks, nothing about
where the answer came from (that is in RubricEval, which annotators never read). A checkpoint
answer identical to the baseline's shares its item. Each send costs two items per prompt.

`human_suite_report` turns people's answers into the run page's table: per dimension and
checkpoint, the baseline's and the checkpoint's pass rates with intervals, the paired difference,
whether the dimension got worse while the reward rose, and where the automatic suite (verifiers
and text statistics) and people disagree. The arithmetic is in training/human_suite.py.
"""
from __future__ import annotations

import random
from collections import defaultdict

from django.db import transaction

from annotation.models import Prompt, RubricAnswer, last_user_turn, rubric_verdict
from annotation.rubrics import parse_rubrics
from annotation.services.rubric_evals import MAX_RATERS, RubricTask, rubric_items_create

from .. import human_suite as stats
from ..models import RL_KINDS, Run, RunMetric, RubricEval, RubricRole, SampleRole, SuiteResult
from .feedback import sample_answers
from .runs import run_log

TAG = "behaviour-suite"
DISAGREEMENTS_SHOWN = 20


class HumanSuiteError(ValueError):
    pass


def _same(text: str) -> str:
    return " ".join((text or "").split())


@transaction.atomic
def rubric_checkpoint_send(*, run: Run, step: int, raters: int | None = None, user=None) -> dict:
    """Send a checkpoint's suite answers, and the baseline's answers to the same prompts, to people
    as rubric evaluations. Once per step. `user` sent it by hand (the run's log names them); None
    when the run sent it itself. Returns {created, shared, sent, dimensions, skipped: {dimension:
    why}}."""
    run = Run.objects.select_for_update(of=("self",)).select_related("project__current_spec").get(pk=run.pk)
    if run.kind not in RL_KINDS:
        raise HumanSuiteError("Only a policy run's checkpoints have suite answers to judge.")
    if raters is None:
        raters = int((run.config or {}).get("rubric_raters") or 1)
    if not 1 <= raters <= MAX_RATERS:
        raise HumanSuiteError(f"People per answer must be 1 to {MAX_RATERS}.")
    results = list(SuiteResult.objects.filter(run=run, step=step))
    if step < 1 or not results:
        raise HumanSuiteError(f"No behavioural suite ran on a checkpoint at step {step}.")
    if RubricEval.objects.filter(run=run, step=step).exists():
        raise HumanSuiteError(f"Step {step} was sent to people already.")
    spec = run.project.current_spec
    rubrics = parse_rubrics(spec.text if spec else "")
    skipped: dict[str, str] = {}
    wanted: list[tuple[str, int, list[str]]] = []  # (dimension, prompt id, checks)
    for result in results:
        checks = rubrics.for_dimension(result.dimension)
        if not checks:
            skipped[result.dimension] = "the spec has no rubric for it"
        elif not result.answers:
            skipped[result.dimension] = "its suite answers were not recorded (a run from before rubrics)"
        else:
            wanted.extend((result.dimension, a["prompt_id"], checks) for a in result.answers)
    prompt_ids = [pid for _, pid, _ in wanted]
    policy = sample_answers(run, SampleRole.POLICY, prompt_ids, step, latest=True)
    baseline = sample_answers(run, SampleRole.REFERENCE, prompt_ids, 0, latest=True)
    prompts = Prompt.objects.in_bulk(prompt_ids)
    new: list[RubricTask] = []
    evals: list[tuple[RubricEval, int]] = []  # (record, index of its task in `new`)
    for dimension, pid, checks in wanted:
        prompt, mine, theirs = prompts.get(pid), policy.get(pid), baseline.get(pid)
        if prompt is None or not mine or not theirs:
            continue  # only prompts both answered: the comparison is paired
        index: dict[str, int] = {}  # an answer identical to the baseline's is one item, judged once
        for role, text in ((RubricRole.BASELINE, theirs), (RubricRole.CHECKPOINT, mine)):
            key = _same(text)
            if key not in index:
                index[key] = len(new)
                new.append(RubricTask(messages=prompt.messages, domain=prompt.domain, text=text,
                                      dimension=dimension, checks=checks))
            evals.append((RubricEval(run=run, step=step, role=role, dimension=dimension, prompt_id=pid), index[key]))
    if not evals:
        if len(skipped) == len(results):
            raise HumanSuiteError("Nothing to send: " + "; ".join(f"{d}: {why}" for d, why in sorted(skipped.items())) + ".")
        raise HumanSuiteError(f"No suite answers of both the checkpoint and the baseline are stored for step {step}.")
    # Mixed: the baseline's and the checkpoint's items in one shuffled order, so neither comes first.
    order = list(range(len(new)))
    random.Random(f"{run.pk}:{step}").shuffle(order)
    items = rubric_items_create(project=run.project, tasks=[new[i] for i in order], raters=raters,
                                priority=1, tags=[TAG])
    made = {task: item.pk for task, item in zip(order, items)}
    records = []
    for record, task in evals:
        record.item_id = made[task]
        records.append(record)
    RubricEval.objects.bulk_create(records)
    shared = len(records) - len(new)
    dimensions = sorted({r.dimension for r in records})
    run_log(run_id=run.pk, message=(
        f"Step {step} sent to people as rubric evaluations with the baseline's answers: {len(new)} items "
        f"({shared} checkpoint answers identical to the baseline's share its item), {raters} per answer, "
        f"dimensions {', '.join(dimensions)}" + (f", sent by {user.get_username()}" if user is not None else "")
        + (f"; not sent: {', '.join(f'{d} ({w})' for d, w in sorted(skipped.items()))}" if skipped else "") + "."))
    return {"created": len(new), "shared": shared, "sent": len(records), "dimensions": dimensions, "skipped": skipped}


def human_suite_report(*, run: Run) -> dict:
    """The run page's "judged by people" part (see the module docstring): per dimension, a row per
    checkpoint sent, with the baseline's answers judged in the same send beside it."""
    evals = list(RubricEval.objects.filter(run=run).select_related("item__rubric", "item__response_a")
                 .order_by("step", "id"))
    if not evals:
        return {"dimensions": [], "wanted": 0, "received": 0}
    item_ids = {e.item_id for e in evals}
    answers: dict[int, list[list[str]]] = defaultdict(list)
    for item_id, values in RubricAnswer.objects.filter(item_id__in=item_ids).values_list("item_id", "answers"):
        answers[item_id].append(values)
    targets = {e.item_id: e.item.target_judgments for e in evals}
    outcome = {i: stats.answer_outcome(rubric_verdict(a) for a in answers.get(i, [])) for i in item_ids}
    rewards = [(s, (v or {}).get("reward")) for s, v in RunMetric.objects.filter(run=run).values_list("step", "values")]
    suite = {(r.step, r.dimension): r for r in SuiteResult.objects.filter(run=run)}
    prompts = dict(Prompt.objects.filter(pk__in={e.prompt_id for e in evals}).values_list("pk", "messages"))
    config = run.config or {}
    # The automatic suite measures against the starting policy, people against the reference (the
    # SFT baseline): when those are different models their verdicts are not comparable.
    same_baseline = (config.get("reference_path") or config.get("policy_path")) == config.get("policy_path")

    groups: dict[str, dict[int, dict[str, list[RubricEval]]]] = defaultdict(lambda: defaultdict(lambda: defaultdict(list)))
    for e in evals:
        groups[e.dimension][e.step][e.role].append(e)
    out = []
    for dimension in sorted(groups):
        rows, disagreements = [], []
        for step in sorted(groups[dimension]):
            base_group = groups[dimension][step][RubricRole.BASELINE]
            mine_group = groups[dimension][step][RubricRole.CHECKPOINT]
            base = {e.prompt_id: outcome[e.item_id] for e in base_group}
            mine = {e.prompt_id: outcome[e.item_id] for e in mine_group}
            base_rate, mine_rate = stats.rate_of(base.values()), stats.rate_of(mine.values())
            pair = stats.paired(mine, base)
            change = stats.reward_change(rewards, step)
            auto = suite.get((step, dimension))
            na_rise = (mine_rate.na_share is not None and base_rate.na_share is not None
                       and mine_rate.na_share - base_rate.na_share >= stats.WORSE_DROP)
            row = {"step": step, "asked": len(mine_group),
                   "baseline": _side(base_rate, base_group, answers), "checkpoint": _side(mine_rate, mine_group, answers),
                   "pairs": pair.pairs, "only_checkpoint": pair.only_checkpoint, "only_baseline": pair.only_baseline,
                   "difference": pair.difference, "p_value": pair.p_value if pair.pairs else None,
                   "worse": pair.worse, "significant": pair.significant, "na_rise": na_rise, "reward_change": change,
                   "flagged": pair.worse and change is not None and change > 0,
                   "auto_weak": auto.weak if auto else None, "auto_reasons": auto.reasons if auto else [],
                   "same_baseline": same_baseline}
            row["disagree"] = same_baseline and auto is not None and pair.pairs > 0 and auto.weak != pair.worse
            row["checks"] = [{"check": text, "baseline": row["baseline"]["checks"].get(text),
                              "checkpoint": row["checkpoint"]["checks"].get(text)}
                             for text in _check_texts(base_group + mine_group)]
            scores = {a["prompt_id"]: a.get("score") for a in (auto.answers if auto else [])}
            for e in mine_group:
                disagreement = _answer_disagreement(scores.get(e.prompt_id), outcome[e.item_id])
                if disagreement:
                    disagreements.append({"step": step, "kind": disagreement, "score": scores.get(e.prompt_id),
                                          "prompt": last_user_turn(prompts.get(e.prompt_id) or []),
                                          "answer": e.item.response_a.text})
            rows.append(row)
        out.append({"dimension": dimension, "rows": rows, "disagreements": disagreements[:DISAGREEMENTS_SHOWN],
                    "disagreement_count": len(disagreements)})
    return {"dimensions": out, "wanted": sum(targets.values()),
            "received": sum(min(len(answers.get(i, [])), t) for i, t in targets.items())}


def _side(rate: stats.Rate, group: list[RubricEval], answers: dict) -> dict:
    """One side of a row (the baseline's or the checkpoint's answers in one send)."""
    return {"asked": len(group), "judged": sum(1 for e in group if answers.get(e.item_id)),
            "decided": rate.decided, "passes": rate.passes, "undecided": rate.undecided,
            "not_applicable": rate.not_applicable, "na_share": rate.na_share,
            "rate": rate.rate, "interval": rate.interval, "plot": _plot(rate), "checks": _check_rates(group, answers)}


def _check_texts(group: list[RubricEval]) -> list[str]:
    texts: list[str] = []
    for e in group:
        rubric = getattr(e.item, "rubric", None)
        for text in (rubric.checks if rubric else []):
            if text not in texts:
                texts.append(text)
    return texts


def _check_rates(group: list[RubricEval], answers: dict) -> dict[str, float | None]:
    """Per check (by its text), its pass rate over the group's answers (majority per answer)."""
    per_check: dict[str, list] = defaultdict(list)
    for e in group:
        rubric = getattr(e.item, "rubric", None)
        if rubric is None:
            continue
        for text, result in zip(rubric.checks, stats.check_outcomes(answers.get(e.item_id, []), len(rubric.checks))):
            per_check[text].append(result)
    return {text: stats.rate_of(results).rate for text, results in per_check.items()}


def _plot(rate: stats.Rate) -> dict | None:
    """The interval chart's coordinates, in percent of its width."""
    if rate.rate is None:
        return None
    lo, hi = rate.interval
    return {"lo": round(100 * lo, 1), "hi": round(100 * hi, 1), "width": round(100 * (hi - lo), 1),
            "rate": round(100 * rate.rate, 1)}


def _answer_disagreement(score, outcome) -> str:
    """Where the verifier and people part on one answer ('' where they agree or one is silent)."""
    if score is None or outcome is None:
        return ""
    if score >= 1.0 and outcome == "fail":
        return "verifier passed, people failed"
    if score < 1.0 and outcome == "pass":
        return "verifier failed, people passed"
    return ""

