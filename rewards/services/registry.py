"""The reward-model registry: what a held-out evaluation needs from a frozen set, registering a
trained model with its report and verdict, the project's readiness minimums, and choosing a model
for RL (a model that is not ready needs an override, which is recorded)."""
from __future__ import annotations

import math
from collections import Counter, defaultdict
from dataclasses import asdict, fields

from django.db import transaction

from annotation.models import Choice, Item, Judgment, Project

from ..evaluation import Report, Thresholds, evaluate, readiness
from ..models import PreferenceSet, ReadinessOverride, RewardModel
from .sets import set_pairs


class NotReady(Exception):
    """A reward model that failed its readiness gate was chosen without an override reason."""

    def __init__(self, reward_model: RewardModel):
        self.reward_model = reward_model
        super().__init__(f"{reward_model.name} is not ready for RL: " + "; ".join(reward_model.failures)
                         + ". Give an override reason to use it anyway (it is recorded).")


# ---------------------------------------------------------------- readiness minimums


def readiness_thresholds(*, project: Project) -> Thresholds:
    stored = {k: v for k, v in (project.readiness_minimums or {}).items() if k in {f.name for f in fields(Thresholds)}}
    return Thresholds(**stored)


def readiness_minimums_set(*, project: Project, values: dict) -> Thresholds:
    """Validate and store a project's minimums; keys left out keep their current value."""
    current = asdict(readiness_thresholds(project=project))
    errors = {}
    for name, value in values.items():
        if name not in current:
            errors[name] = "Unknown minimum."
            continue
        try:
            value = int(value) if name == "category_min_pairs" else float(value)
        except (TypeError, ValueError):
            errors[name] = "Must be a number."
            continue
        if name == "category_min_pairs" and value < 1:
            errors[name] = "Must be at least 1."
        elif name != "category_min_pairs" and not 0 <= value <= 1:
            errors[name] = "Must be an accuracy between 0 and 1."
        current[name] = value
    if errors:
        raise ValueError(errors)
    project.readiness_minimums = current
    project.save(update_fields=["readiness_minimums"])
    return Thresholds(**current)


# ---------------------------------------------------------------- the held-out split


def held_out_pairs(*, preference_set: PreferenceSet) -> list[dict]:
    """The set's test split, in set order, as set_pairs() gives it."""
    return list(set_pairs(preference_set=preference_set, split="test"))


def dimension_labels(*, project: Project, pairs: list[dict]) -> dict[str, list[int]]:
    """Per project dimension, +1/-1/0 for each pair: did the annotators prefer the chosen response
    on that dimension (majority of their a/b dimension choices on the pair's item), the rejected
    one, or neither (a tie, no vote, or a pair with no judgments behind it: authored and ranked)."""
    dims = project.dimension_keys
    by_item: dict[int, list[int]] = defaultdict(list)  # item -> indexes of its pairs
    by_judgment: dict[int, list[int]] = defaultdict(list)
    for i, pair in enumerate(pairs):
        kind, _, ident = pair["key"].partition(":")
        if kind == "item":
            by_item[int(ident)].append(i)
        elif kind == "judgment":
            by_judgment[int(ident)].append(i)
    votes: dict[int, dict[str, Counter]] = defaultdict(lambda: defaultdict(Counter))  # pair -> dim -> a/b
    rows = Judgment.objects.filter(item_id__in=list(by_item)).values_list("item_id", "dimension_choices")
    for item_id, choices in rows.iterator(chunk_size=5000):
        for i in by_item[item_id]:
            for dim, choice in (choices or {}).items():
                votes[i][dim][choice] += 1
    rows = Judgment.objects.filter(pk__in=list(by_judgment)).values_list("pk", "dimension_choices")
    for pk, choices in rows.iterator(chunk_size=5000):
        for i in by_judgment[pk]:
            for dim, choice in (choices or {}).items():
                votes[i][dim][choice] += 1
    item_ids = set(by_item) | set(Judgment.objects.filter(pk__in=list(by_judgment)).values_list("item_id", flat=True))
    response_a = dict(Item.objects.filter(pk__in=item_ids).values_list("pk", "response_a_id"))
    judgment_item = dict(Judgment.objects.filter(pk__in=list(by_judgment)).values_list("pk", "item_id"))
    out = {dim: [0] * len(pairs) for dim in dims}
    for i, pair in enumerate(pairs):
        kind, _, ident = pair["key"].partition(":")
        if i not in votes:
            continue
        item_id = int(ident) if kind == "item" else judgment_item.get(int(ident))
        chosen_is_a = response_a.get(item_id) == pair["chosen_id"]
        for dim in dims:
            count = votes[i].get(dim, Counter())
            a, b = count.get(Choice.A, 0), count.get(Choice.B, 0)
            if a != b:
                out[dim][i] = 1 if (a > b) == chosen_is_a else -1
    return out


def evaluation_of(*, project: Project, pairs: list[dict], chosen: list[float], rejected: list[float]) -> Report:
    """The held-out report of a model's scores on `pairs` (the set's test split)."""
    return evaluate(
        chosen=chosen, rejected=rejected,
        len_chosen=[len(p["chosen"]) for p in pairs], len_rejected=[len(p["rejected"]) for p in pairs],
        categories={
            "domain": [p["domain"] for p in pairs],
            "tag": [p["tag"] for p in pairs],
            "flaw_type": [p["flaw_type"] or None for p in pairs],
        },
        dimension_labels=dimension_labels(project=project, pairs=pairs),
    )


def report_as_json(report: Report) -> dict:
    """The report for a JSON column: NaN (undefined, e.g. no pair with the shorter one chosen) -> None."""
    def clean(value):
        if isinstance(value, float) and not math.isfinite(value):
            return None
        if isinstance(value, dict):
            return {k: clean(v) for k, v in value.items()}
        if isinstance(value, list):
            return [clean(v) for v in value]
        return value

    return clean(asdict(report))


# ---------------------------------------------------------------- registering and choosing


def reward_model_register(
    *, project: Project, preference_set: PreferenceSet, name: str, base_model: str, path: str, config: dict,
    report: Report, created_by=None,
) -> RewardModel:
    thresholds = readiness_thresholds(project=project)
    verdict = readiness(report, thresholds)
    return RewardModel.objects.create(
        project=project, preference_set=preference_set, name=name[:200], base_model=base_model, path=path,
        config=config, evaluation=report_as_json(report), thresholds=asdict(thresholds), ready=verdict.ready,
        failures=verdict.failures, created_by=created_by,
    )


@transaction.atomic
def reward_model_select_for_rl(*, reward_model: RewardModel, user, override_reason: str = "",
                               purpose: str = "") -> ReadinessOverride | None:
    """Allow `reward_model` to drive RL: a ready one simply is; one that is not needs a reason,
    recorded with who gave it and the minimums it missed."""
    if reward_model.ready:
        return None
    reason = (override_reason or "").strip()
    if not reason:
        raise NotReady(reward_model)
    return ReadinessOverride.objects.create(reward_model=reward_model, user=user, reason=reason,
                                            purpose=purpose[:200], failures=list(reward_model.failures))
