"""The routing reward model (issue 22): a lead picks a reward model from the registry, and a worker
scores every open live comparison with it:

- margin m = r(a) − r(b), the model's own scores (eval mode), so P(a wins) = sigmoid(m);
- spread: the standard deviation of m over `mc_samples` passes with dropout left on (MC dropout,
  Gal & Ghahramani 2016): a small ensemble for free, which says where the model does not know
  even when its margin looks decided.

What it changes: an item nobody has judged yet gets informativeness 1000·(1 − |2·sigmoid(m) − 1|),
so the queue serves the pairs the model finds hardest first (people's judgments take over once
there are any: calibration/services/dynamic_k.py); and an RM-uncertain item (|m| below the
spread, or sigmoid(m) within UNCERTAIN_BAND of a coin toss) in a skill domain where someone holds
the skill is marked needs_skill, so only skill holders are asked. Hidden anchors and re-asks are
never touched (they are held out of the live queue). A scoring is a background job with the shared
lifecycle (progress, failed with its reason)."""
from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
from django.conf import settings
from django.db.models import F
from django.utils import timezone

from annotation.errors import ValidationFailed
from annotation.models import Item, ItemKind, ItemStatus, Project
from annotation.services.jobs import JobKind, job_enqueue, job_fresh, job_guarded, job_kind_register
from calibration.services.dynamic_k import informativeness_of, skill_domains_held
from rewards.formats import prompt_as_text
from rewards.models import RewardModel

from ..models import ItemScoring

UNCERTAIN_BAND = 0.1  # sigmoid(margin) within 0.5 ± this: the model cannot tell
BATCH = 256


def _open_items(project: Project):
    return (Item.objects.filter(project=project, kind=ItemKind.COMPARISON, in_live_queue=True, reask_of__isnull=True,
                                status=ItemStatus.ACTIVE, assigned_count__lt=F("target_judgments"))
            .select_related("prompt", "response_a", "response_b").order_by("id"))


def rm_uncertain(margin: float, spread: float) -> bool:
    p = 1.0 / (1.0 + math.exp(-margin))
    return abs(p - 0.5) < UNCERTAIN_BAND or abs(margin) < spread


def margins_and_spread(scorer, prompts: list[str], a: list[str], b: list[str], mc_samples: int) -> tuple[np.ndarray, np.ndarray]:
    """Eval-mode margins, and their standard deviation over MC-dropout passes (dropout on, no gradients)."""
    texts = prompts + prompts
    responses = a + b
    n = len(prompts)
    scores = scorer(texts, responses)
    margins = scores[:n] - scores[n:]
    if mc_samples < 2:
        return margins, np.zeros(n)
    passes = []
    scorer.model.train()  # dropout on; RewardScorer scores under no_grad
    try:
        for _ in range(mc_samples):
            s = scorer(texts, responses)
            passes.append(s[:n] - s[n:])
    finally:
        scorer.model.eval()
    return margins, np.std(np.array(passes), axis=0, ddof=1)


def items_score(*, project: Project, reward_model: RewardModel, mc_samples: int = 8,
                progress: Callable[[int, int], None] | None = None) -> dict:
    from ..judge_backends import _reward_scorer

    scorer = _reward_scorer(reward_model.path)
    items = list(_open_items(project))
    held = skill_domains_held(project=project)
    out = {"scored": 0, "uncertain": 0, "sent_to_skill_holders": 0}
    for start in range(0, len(items), BATCH):
        chunk = items[start:start + BATCH]
        margins, spread = margins_and_spread(
            scorer, [prompt_as_text(i.prompt.messages) for i in chunk], [i.response_a.text for i in chunk],
            [i.response_b.text for i in chunk], mc_samples)
        by_value: dict[int, list[int]] = {}
        escalate: list[int] = []
        for item, m, s in zip(chunk, margins, spread):
            item.rm_margin, item.rm_spread = float(m), float(s)
            by_value.setdefault(informativeness_of(1.0 / (1.0 + math.exp(-float(m)))), []).append(item.pk)
            if rm_uncertain(float(m), float(s)):
                out["uncertain"] += 1
                if (item.prompt.domain or "").strip().lower() in held:
                    escalate.append(item.pk)
        # Only the model's own columns are written back whole. The queue's columns change under a
        # scoring that runs for minutes (dynamic k re-targets and escalates on every submit), so they
        # are set by conditions checked in the UPDATE itself: informativeness only while nobody has
        # judged the item (people's judgments decide after that), needs_skill only ever to true.
        Item.objects.bulk_update(chunk, ["rm_margin", "rm_spread"])
        for value, ids in by_value.items():
            Item.objects.filter(pk__in=ids, judgment_count=0).update(informativeness=value)
        out["sent_to_skill_holders"] += Item.objects.filter(pk__in=escalate, needs_skill=False).update(needs_skill=True)
        out["scored"] += len(chunk)
        if progress:
            progress(out["scored"], len(items))
    return out


# ---------------------------------------------------------------- the job


def _send(scoring_id: int) -> None:
    from ..tasks import score_items  # tasks import services

    score_items.apply_async(args=[scoring_id], queue=settings.TRAINING_QUEUE)


ITEM_SCORINGS = job_kind_register(JobKind(name="item scoring", model=ItemScoring, task="training.tasks.score_items",
                                          send=_send, nothing_done="Items scored before it stopped keep their scores."))


def item_scoring_request(*, project: Project, reward_model: RewardModel | None, mc_samples: int = 8,
                         created_by=None) -> ItemScoring:
    errors = {}
    if reward_model is None or reward_model.project_id != project.pk:
        errors["reward_model"] = "Choose one of this project's reward models."
    if isinstance(mc_samples, bool) or not isinstance(mc_samples, int) or not 0 <= mc_samples <= 64:
        errors["mc_samples"] = "From 0 (no spread) to 64."
    if errors:
        raise ValidationFailed("Please fix the highlighted fields.", field_errors=errors)
    scoring = ItemScoring.objects.create(project=project, reward_model=reward_model, mc_samples=mc_samples,
                                         created_by=created_by)
    job_enqueue(ITEM_SCORINGS, scoring.pk)
    return scoring


def item_scoring_run(*, scoring_id: int) -> ItemScoring:
    def progress(done: int, total: int) -> None:
        ItemScoring.objects.filter(pk=scoring_id).update(percent=int(100 * done / max(total, 1)), phase="scoring",
                                                         heartbeat_at=timezone.now())

    def body() -> None:
        scoring = ItemScoring.objects.select_related("project", "reward_model").get(pk=scoring_id)
        outcome = items_score(project=scoring.project, reward_model=scoring.reward_model,
                              mc_samples=scoring.mc_samples, progress=progress)
        ItemScoring.objects.filter(pk=scoring_id).update(status="succeeded", phase="done", percent=100,
                                                         outcome=outcome, finished_at=timezone.now())

    job_guarded(ITEM_SCORINGS, scoring_id, body, phase="loading the model", percent=1)
    return ItemScoring.objects.get(pk=scoring_id)


def item_scoring_latest(*, project: Project) -> ItemScoring | None:
    scoring = ItemScoring.objects.filter(project=project).select_related("reward_model").order_by("-created_at").first()
    return job_fresh(ITEM_SCORINGS, scoring) if scoring is not None else None
