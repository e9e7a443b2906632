"""Closing the loop: what a run got wrong becomes labelling work. From a monitor alert or a weak
checkpoint, the policy's answers on the flagged prompts are paired with the reference's answers
to the same prompts and imported as ordinary comparison items, routed to annotators like any
other (blind, position-randomised, with the project's overlap)."""
from __future__ import annotations

from django.db import transaction

from annotation.importing import ParsedItem, ParsedResponse
from annotation.models import Prompt
from annotation.services.imports import items_create

from ..models import FeedbackBatch, Run, RunAlert, RunSample, SampleRole, SuiteResult


class FeedbackError(ValueError):
    pass


def sample_answers(run: Run, role: str, prompt_ids, step: int | None = None, *, latest: bool = False) -> dict[int, str]:
    """Each prompt's answer. At a step where an alert fired on a checkpoint step, the alert's
    sampled answers were stored before the checkpoint's greedy suite answers: an alert takes the
    first, a checkpoint (`latest`) the last."""
    qs = RunSample.objects.filter(run=run, role=role, prompt_id__in=prompt_ids)
    if step is not None:
        qs = qs.filter(step=step)
    out: dict[int, str] = {}
    for prompt_id, completion in qs.order_by("-id" if latest else "id").values_list("prompt_id", "completion"):
        out.setdefault(prompt_id, completion)
    return out


@transaction.atomic
def feedback_batch_create(*, run: Run, user=None, alert: RunAlert | None = None, step: int | None = None,
                          dimension: str = "") -> FeedbackBatch:
    """One comparison item per flagged prompt: the policy at the alert's (or checkpoint's) step
    against the reference. Prompts whose two answers are identical are left out (nothing to
    compare); if none is left, nothing is created and the error says why."""
    Run.objects.select_for_update().get(pk=run.pk)  # one batch per source, even on a double click
    if alert is not None:
        if alert.run_id != run.pk:
            raise FeedbackError("That alert belongs to another run.")
        step, prompt_ids, origin = alert.step, list(alert.prompt_ids), f"alert {alert.kind} at step {alert.step}"
        made = FeedbackBatch.objects.filter(run=run, alert=alert).first()
    else:
        result = SuiteResult.objects.filter(run=run, step=step, dimension=dimension).first()
        if result is None or step == 0:
            raise FeedbackError(f"No behavioural suite result for {dimension!r} at checkpoint step {step}.")
        prompt_ids, origin = list(result.flagged), f"checkpoint step {step}, {dimension}"
        made = FeedbackBatch.objects.filter(run=run, alert=None, step=step, dimension=dimension).first()
    if made is not None:
        raise FeedbackError(f"The {origin} was sent to labelling already (batch {made.pk}, {len(made.items)} items).")
    policy = sample_answers(run, SampleRole.POLICY, prompt_ids, step, latest=alert is None)
    reference = sample_answers(run, SampleRole.REFERENCE, prompt_ids)
    prompts = Prompt.objects.in_bulk(prompt_ids)
    batch = []
    for pid in prompt_ids:
        mine, theirs, prompt = policy.get(pid), reference.get(pid), prompts.get(pid)
        if prompt is None or not mine or not theirs or mine.strip() == theirs.strip():
            continue
        batch.append(ParsedItem(
            messages=prompt.messages, domain=prompt.domain, difficulty=prompt.difficulty,
            tags=sorted(set(prompt.tags or []) | {"rl-feedback", f"run-{run.pk}"}), source="rl_feedback",
            ground_truth=prompt.ground_truth, priority=1,
            responses=[ParsedResponse(text=mine, model_name=f"run {run.pk} policy step {step}",
                                      metadata={"run": run.pk, "step": step, "role": "policy"}),
                       ParsedResponse(text=theirs, model_name=f"run {run.pk} reference",
                                      metadata={"run": run.pk, "role": "reference"})]))
    if not batch:
        raise FeedbackError(f"Nothing to compare for {origin}: the policy's answers are missing or the same as the "
                            "reference's.")
    items = items_create(project=run.project, batch=batch)
    return FeedbackBatch.objects.create(run=run, alert=alert, step=step, dimension=dimension,
                                        items=[i.pk for i in items], created_by=user)
