"""Dynamic k: spend judgments where the winner is still in doubt (Project.dynamic_k).

A live comparison starts with k_min judgments wanted (annotation/services/imports.py). After each
judgment on it (calibration's after-submit hook, after the response has gone out), the winner's
posterior is computed from the item's decisive judgments, each weighted by how reliable its
annotator is:

    P(B) = sigmoid( sum over judgments of  +/- logit(r_a) )      (+ for B, - for A)

where r_a is the annotator's accuracy: a Beta prior of weight 10 centred on what their agreement
with everyone else says of them (Dawid-Skene's one-coin model on the A/B votes, `one_coin_accuracy`,
refit whenever the project's judgments have grown by a tenth, cached; 0.8 before there is enough;
each estimate from n judgments shrunk towards 0.8 by AGREEMENT_SHRINK = 20 pseudo-judgments, since
on two or three votes an item the raw fit is overconfident),
updated with their clear-cut anchor answers; capped at 0.98. Ties and "both bad" do not move it.
The item's target becomes:
- its judgment count, when max(P(B), 1 - P(B)) >= stop_confidence, or when at least k_min
  judgments are in and two thirds of them say tie or both bad (a consensus with no winner);
- otherwise one more than its judgment count;
clamped to [k_min, overlap], and never below the slots already leased (the database refuses an
item with more leases than its target). An item still in doubt after more than k_min judgments,
in one of the project's skill domains where at least one annotator holds the skill, is marked
needs_skill: from then on routing asks only skill holders for it (routing.skill_filter). Its
informativeness becomes 1000·(1 − |2P − 1|): after the lead's priority, the queue serves the items
most in doubt first (a fresh item is 500, a 1–1 split 1000, a near-certain one close to 0).

People's judgments only: an AI judge's label (training/services/judges.py) holds no slot of k and does not
move the posterior. Hidden anchors and swapped re-asks are held out of the live queue and never touched; rankings,
rewrites and adversarial tasks keep their fixed targets.
"""
from __future__ import annotations

import math

import numpy as np
from django.core.cache import cache
from django.db import transaction
from django.db.models import Count, F, Q, Value
from django.db.models.functions import Greatest

from annotation.models import INFORMATIVENESS_UNKNOWN, AnnotatorSkill, Choice, Item, ItemKind, Judgment, Project

from ..models import AnchorResult

PRIOR_WEIGHT, PRIOR_MEAN = 10.0, 0.8  # Beta prior on an annotator's accuracy
AGREEMENT_SHRINK = 20.0  # pseudo-judgments at PRIOR_MEAN behind each agreement estimate
ACCURACY_CAP = 0.98
FIT_MIN_JUDGMENTS = 30  # fewer decisive judgments in the project: no agreement fit yet
REFIT_GROWTH = 0.1
NO_WINNER_SHARE = 2 / 3


def agreement_accuracy(*, project: Project) -> dict[int, float]:
    """Per annotator, how often they pick the true one of A and B (one_coin_accuracy over the
    project's decisive live judgments); cached, and refit when the judgments have grown by
    REFIT_GROWTH. Empty while the project has fewer than FIT_MIN_JUDGMENTS."""
    decisive = Judgment.objects.filter(project=project, reask_of__isnull=True, by_judge=False,
                                       choice__in=(Choice.A, Choice.B))
    key = f"dynamic-k-reliability:{project.pk}:{project.created_at.timestamp():.6f}"
    cached = cache.get(key)
    if cached is not None:
        # Only the judgments since the last fit are counted (a range on the (project, id) index),
        # not the whole project on every submit.
        new = decisive.filter(id__gt=cached["last_id"]).count()
        if new <= REFIT_GROWTH * max(cached["n"], FIT_MIN_JUDGMENTS):
            return cached["accuracy"]
    rows = list(decisive.values_list("id", "item_id", "annotator_id", "choice"))
    accuracy: dict[int, float] = {}
    if len(rows) >= FIT_MIN_JUDGMENTS:
        table = np.array([(i, a, c == Choice.B) for _pk, i, a, c in rows], dtype=np.int64)
        fitted = one_coin_accuracy(table[:, 0], table[:, 1], table[:, 2])
        counts = np.unique(table[:, 1], return_counts=True)
        # The EM's estimate from n judgments, shrunk towards the prior by AGREEMENT_SHRINK pseudo
        # judgments: on sparse overlap (two or three votes an item) the raw estimate overfits, and an
        # overconfident weight stops items too early (bench/active_labelling.py: items stopped at
        # two votes were right 87% of the time at stop 0.95 before this).
        accuracy = {a: (n * fitted[a] + AGREEMENT_SHRINK * PRIOR_MEAN) / (n + AGREEMENT_SHRINK)
                    for a, n in zip(counts[0].tolist(), counts[1].tolist())}
    cache.set(key, {"n": len(rows), "last_id": max((r[0] for r in rows), default=0), "accuracy": accuracy},
              timeout=24 * 3600)
    return accuracy


def one_coin_accuracy(item: np.ndarray, annotator: np.ndarray, chose_b: np.ndarray, *, n_iter: int = 50) -> dict[int, float]:
    """Dawid-Skene's one-coin model for two classes, by EM: each annotator picks the true side with
    probability p_a. E-step: P(B wins item i) from the prior and every vote's likelihood; M-step:
    p_a = the expected share of their votes that went to the true side. Starts from the vote
    shares. Written here rather than taken from rewards.aggregation (the full Dawid-Skene), which
    sits in a layer above calibration (tests/test_house_plan.py); tests/calibration/test_dynamic_k.py
    checks it against that one on a pool."""
    items, i = np.unique(item, return_inverse=True)
    people, a = np.unique(annotator, return_inverse=True)
    y = chose_b.astype(float)
    votes = np.bincount(i, minlength=items.size)
    q = (np.bincount(i, weights=y, minlength=items.size) + 0.5) / (votes + 1.0)
    p = np.full(people.size, PRIOR_MEAN)
    for _ in range(n_iter):
        right = y * q[i] + (1 - y) * (1 - q[i])
        p = np.clip(np.bincount(a, weights=right, minlength=people.size) / np.bincount(a, minlength=people.size),
                    0.01, 0.99)
        prior = float(np.clip(q.mean(), 0.01, 0.99))
        weight = np.log(p / (1 - p))[a]
        log_odds = np.log(prior / (1 - prior)) + np.bincount(i, weights=np.where(y == 1, weight, -weight),
                                                              minlength=items.size)
        new_q = 1.0 / (1.0 + np.exp(-log_odds))
        if np.abs(new_q - q).max() < 1e-6:
            q = new_q
            break
        q = new_q
    return {int(person): float(value) for person, value in zip(people, p)}


def annotator_accuracy(*, project_id: int, annotator_ids: list[int], project: Project | None = None) -> dict[int, float]:
    """Posterior mean accuracy per annotator: the Beta prior (centred on agreement_accuracy when
    `project` is given and fitted, else PRIOR_MEAN) updated with their clear-cut anchor answers."""
    rows = (AnchorResult.objects.filter(project_id=project_id, annotator_id__in=annotator_ids, clear_cut=True)
            .values("annotator_id").annotate(n=Count("id"), right=Count("id", filter=Q(correct=True))))
    found = {r["annotator_id"]: (r["right"], r["n"]) for r in rows}
    centre = agreement_accuracy(project=project) if project is not None else {}
    out = {}
    for a in annotator_ids:
        right, n = found.get(a, (0, 0))
        mean = min(max(centre.get(a, PRIOR_MEAN), 0.5), ACCURACY_CAP)
        out[a] = min((right + PRIOR_WEIGHT * mean) / (n + PRIOR_WEIGHT), ACCURACY_CAP)
    return out


def winner_posterior(votes: list[tuple[str, float]]) -> float:
    """P(B wins) from (canonical choice, annotator accuracy) pairs; 0.5 with no decisive vote."""
    log_odds = 0.0
    for choice, accuracy in votes:
        if choice in (Choice.A, Choice.B):
            weight = math.log(accuracy / (1.0 - accuracy))
            log_odds += weight if choice == Choice.B else -weight
    return 1.0 / (1.0 + math.exp(-log_odds))


def next_target(*, judged: int, leased: int, posterior: float, no_winner: int, project: Project) -> int:
    """The target of an item with `judged` judgments and `leased` slots counted."""
    k_min, k_max = min(project.k_min, project.overlap), project.overlap
    confident = max(posterior, 1.0 - posterior) >= project.stop_confidence
    no_winner_consensus = judged >= k_min and no_winner >= NO_WINNER_SHARE * judged
    wanted = judged if (confident or no_winner_consensus) else judged + 1
    return max(min(max(wanted, k_min), k_max), leased)


def item_target_update(*, item_id: int) -> Item | None:
    """Recompute one live comparison's target (no-op for anything else)."""
    with transaction.atomic():
        item = (Item.objects.select_for_update(of=("self",)).select_related("project", "prompt")
                .filter(pk=item_id, kind=ItemKind.COMPARISON, in_live_queue=True, reask_of__isnull=True).first())
        if item is None or not item.project.dynamic_k or item.closed_by_judge:
            return None
        rows = list(Judgment.objects.filter(item_id=item.pk, by_judge=False).values_list("annotator_id", "choice"))
        accuracy = annotator_accuracy(project_id=item.project_id, annotator_ids=sorted({a for a, _ in rows}),
                                      project=item.project)
        posterior = winner_posterior([(choice, accuracy[a]) for a, choice in rows])
        no_winner = sum(1 for _a, choice in rows if choice in (Choice.TIE, Choice.BOTH_BAD))
        target = next_target(judged=len(rows), leased=item.assigned_count, posterior=posterior,
                             no_winner=no_winner, project=item.project)
        needs_skill = item.needs_skill or (target > len(rows) > min(item.project.k_min, item.project.overlap)
                                           and _skill_held(item))
        informative = informativeness_of(posterior)
        if (target, needs_skill, informative) != (item.target_judgments, item.needs_skill, item.informativeness):
            Item.objects.filter(pk=item.pk).update(target_judgments=target, needs_skill=needs_skill,
                                                   informativeness=informative)
            item.target_judgments, item.needs_skill, item.informativeness = target, needs_skill, informative
        return item


def informativeness_of(p: float) -> int:
    """Item.informativeness for a winner's probability p: 1000·(1 − |2p − 1|), 1000 at a coin toss."""
    return int(round(1000 * (1.0 - abs(2.0 * p - 1.0))))


def _skill_held(item: Item) -> bool:
    """Whether the item is in one of its project's skill domains and someone there holds the skill
    (escalating to nobody would leave the item unanswered)."""
    domain = (item.prompt.domain or "").strip().lower()
    wanted = {d.strip().lower() for d in item.project.skill_domains or ()}
    return bool(domain) and domain in wanted and AnnotatorSkill.objects.filter(
        project_id=item.project_id, skill=domain).exists()


def targets_reset(*, project: Project) -> int:
    """After dynamic_k is switched: every live comparison gets the target its policy gives now (on:
    recomputed from its judgments; off: the overlap, and nothing needs a skill any more). Set-based,
    since it runs in the lead's request: one read of the judgments and one UPDATE per target value
    (at most the overlap), each never below the slots leased meanwhile. Returns how many items
    were looked at."""
    # Items an AI judge closed (HyPER routing) stay closed whatever the policy.
    live = Item.objects.filter(project=project, kind=ItemKind.COMPARISON, in_live_queue=True, reask_of__isnull=True,
                               closed_by_judge=False)
    if not project.dynamic_k:
        # Never below what is already leased or judged (imports may have gone past k).
        live.filter(target_judgments__lt=project.overlap).update(target_judgments=project.overlap)
        live.filter(needs_skill=True).update(needs_skill=False)
        # What dynamic k's posterior said no longer orders the queue (the routing model's word does).
        live.filter(judgment_count__gt=0).update(informativeness=INFORMATIVENESS_UNKNOWN)
        return live.count()
    votes: dict[int, list[tuple[int, str]]] = {}
    for item_id, annotator_id, choice in Judgment.objects.filter(
            item__in=live, reask_of__isnull=True, by_judge=False).values_list("item_id", "annotator_id", "choice"):
        votes.setdefault(item_id, []).append((annotator_id, choice))
    accuracy = annotator_accuracy(project_id=project.pk, annotator_ids=sorted({a for v in votes.values() for a, _ in v}),
                                  project=project)
    by_target: dict[int, list[int]] = {}
    informative: list[Item] = []
    ids = list(live.values_list("id", flat=True))
    for item_id in ids:
        rows = votes.get(item_id, [])
        posterior = winner_posterior([(c, accuracy[a]) for a, c in rows])
        target = next_target(judged=len(rows), leased=0, posterior=posterior,
                             no_winner=sum(1 for _a, c in rows if c in (Choice.TIE, Choice.BOTH_BAD)), project=project)
        by_target.setdefault(target, []).append(item_id)
        if rows:  # items nobody judged keep what the routing reward model said of them
            informative.append(Item(pk=item_id, informativeness=informativeness_of(posterior)))
    for target, members in by_target.items():
        Item.objects.filter(pk__in=members).update(target_judgments=Greatest(F("assigned_count"), Value(target)))
    Item.objects.bulk_update(informative, ["informativeness"], batch_size=500)
    return len(ids)


ROUTING_FIELDS = ("dynamic_k", "k_min", "stop_confidence")


def routing_update(*, project: Project, changes: dict) -> Project:
    """Change the dynamic-k settings (all or nothing, each problem on its field), then bring every
    live comparison's target in line with them (targets_reset)."""
    from annotation.errors import ValidationFailed

    unknown = set(changes) - set(ROUTING_FIELDS)
    errors = {name: "Unknown setting." for name in sorted(unknown)}
    values = {name: changes.get(name, getattr(project, name)) for name in ROUTING_FIELDS}
    if not isinstance(values["dynamic_k"], bool):
        errors["dynamic_k"] = "true or false."
    k_min = values["k_min"]
    if isinstance(k_min, bool) or not isinstance(k_min, int) or not 1 <= k_min <= project.overlap:
        errors["k_min"] = f"A whole number from 1 to the overlap ({project.overlap})."
    confidence = values["stop_confidence"]
    if isinstance(confidence, bool) or not isinstance(confidence, (int, float)) or not 0.5 <= confidence <= 0.999:
        errors["stop_confidence"] = "From 0.5 to 0.999."
    if errors:
        raise ValidationFailed("Please fix the highlighted settings.", field_errors=errors)
    Project.objects.filter(pk=project.pk).update(**values)
    for name, value in values.items():
        setattr(project, name, value)
    targets_reset(project=project)
    return project


def skill_domains_held(*, project: Project) -> set[str]:
    """The project's skill domains (lower-case) where at least one annotator holds the skill: the
    only ones an item may be escalated to (escalating to nobody would leave it unanswered)."""
    wanted = {d.strip().lower() for d in project.skill_domains or () if d.strip()}
    if not wanted:
        return set()
    return set(AnnotatorSkill.objects.filter(project=project, skill__in=wanted).values_list("skill", flat=True))
