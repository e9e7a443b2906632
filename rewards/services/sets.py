"""Freezing preference sets, exporting them, and comparing two versions.

Freeze reads the project's judgments, authored pairs and rankings, keeps the work of annotators
whose standing the policy allows, aggregates comparisons (majority or Dawid-Skene), applies the
policy's filters, splits train/test by domain and tag, and writes every pair with its texts
copied in, in one transaction. Same data + same policy = same pairs, order, split and hash.
"""
from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable, Iterator

import numpy as np
from django.contrib.auth import get_user_model
from django.db import connection, transaction
from django.db.models import Max
from django.utils import timezone

from annotation.models import Choice, DerivedPair, Item, ItemResponse, Judgment, Project, RankingJudgment
from annotation.services.jobs import JobKind, job_enqueue, job_fresh, job_guarded, job_kind_register, job_retryable
from annotation.ranking import expand_pairs
from calibration.bias import text_features
from calibration.discovery import premise_agreement
from calibration.models import AnalyticsSnapshot, Standing
from calibration.services.reasks import self_consistency

from ..aggregation import Aggregate, bradley_terry, dawid_skene, majority
from ..bias_aware import bias_aware_fit, consistency_prior
from ..curation import Candidate, CurationPolicy, content_hash, coverage_report, sample, split_of
from ..formats import PAIR_FORMATS, jsonl_line, majority_vote, preference_row, prompt_as_text
from ..set_formats import PROMPT_FORMATS, READER_ARGS, SET_FORMATS, pair_row, prompt_rows, ranking_rows
from ..models import FreezeRequest, FreezeStatus, PreferenceSet, SetPair

BATCH = 5000


class PolicyError(ValueError):
    def __init__(self, errors: dict[str, str]):
        super().__init__("; ".join(f"{k}: {v}" for k, v in errors.items()))
        self.errors = errors


def _counted(project: Project, policy: CurationPolicy):
    """A predicate on annotator ids: does their standing count under this policy? Annotators
    without a standing row have never been gated: they count as active."""
    states = dict(Standing.objects.filter(project=project).values_list("annotator_id", "state"))
    allowed = set(policy.standings)
    return lambda annotator_id: states.get(annotator_id, "active") in allowed


BY_JUDGE = 17  # a comparison row's field: labelled by an AI judge (Judgment.by_judge)
WEIGHT = 18  # a comparison row's last field: what it counts for in the aggregation (see _comparisons)


def _comparisons(project: Project, policy: CurationPolicy, counts: Counter, spec_versions: set) -> list[Candidate]:
    counted = _counted(project, policy)
    rows = (
        Judgment.objects.filter(project=project, reask_of__isnull=True)  # re-asks measure, they are not data
        .filter(**({"by_judge": False} if policy.judge_labels == "exclude" else {}))
        .order_by("item_id", "id")
        .values_list(
            "id", "item_id", "annotator_id", "choice", "strength", "spec_version__version",
            "item__prompt_id", "item__response_a_id", "item__response_b_id", "item__prompt__messages",
            "item__response_a__text", "item__response_b__text", "item__prompt__domain", "item__prompt__difficulty",
            "item__prompt__ground_truth", "rationale", "shown_left", "by_judge",
        )
    )
    if policy.judge_labels == "exclude":
        left_out = Judgment.objects.filter(project=project, reask_of__isnull=True, by_judge=True).count()
        if left_out:
            counts["judge_judgments_left_out"] += left_out
    if policy.judge_labels != "include":
        # Items HyPER routing closed on a judge's word alone have no people's label to give.
        closed = Item.objects.filter(project=project, closed_by_judge=True, judgment_count=0).count()
        if closed:
            counts["items_closed_by_judge_left_out"] += closed
    per_item: dict[int, list] = defaultdict(list)
    # judge_labels "tiebreak": judges' decisive votes per item, kept out of the aggregation (even a
    # tiny weight tips a close Dawid-Skene posterior); used only where people's result has no winner.
    judge_votes: dict[int, Counter] = defaultdict(Counter)
    biased = _bias_filter(project, policy, counts)
    # A judgment under drop_biased counts for policy.biased_weight (0: left out); a pair of its
    # own (aggregation none) cannot count in part, so there anything below 1 leaves it out.
    down_weight = policy.biased_weight if policy.aggregation != "none" else 0.0
    for row in rows.iterator(chunk_size=BATCH):
        if not counted(row[2]):
            counts["judgments_left_out_by_standing"] += 1
            continue
        weight = 1.0
        if row[BY_JUDGE]:
            # A judge's label: a tie-breaker (never a pair of its own, never in the aggregation), or
            # one more rater.
            if policy.judge_labels == "tiebreak":
                if policy.aggregation in ("none", "bradley_terry") or row[3] not in (Choice.A, Choice.B):
                    counts["judge_judgments_left_out"] += 1
                else:
                    judge_votes[row[1]][row[3]] += 1
                continue
            counts["judge_judgments_counted"] += 1
            per_item[row[1]].append((*row, 1.0))
            continue
        dropped = biased(row)
        if dropped and down_weight <= 0.0:
            counts[f"judgments_left_out_for_{dropped}_bias"] += 1
            continue
        if dropped:
            counts[f"judgments_down_weighted_for_{dropped}_bias"] += 1
            weight = down_weight
        counts["judgments_counted"] += 1
        if row[5] is not None:
            spec_versions.add(row[5])
        per_item[row[1]].append((*row, weight))

    def candidate(key: str, row, choice: str, strength: str, agg: Aggregate, rationales) -> Candidate:
        prompt_id, a_id, b_id, messages, text_a, text_b, domain, difficulty, truth = row[6:15]
        chosen, rejected = ((a_id, text_a), (b_id, text_b)) if choice == Choice.A else ((b_id, text_b), (a_id, text_a))
        return Candidate(
            key=key, prompt_id=prompt_id, chosen_id=chosen[0], rejected_id=rejected[0], messages=messages,
            chosen=chosen[1], rejected=rejected[1], strength=strength, tag="comparison", flaw_type="",
            domain=domain, difficulty=difficulty, confidence=round(agg.confidence, 6), votes=agg.votes,
            ground_truth=truth, rationales=tuple(rationales),
        )

    out: list[Candidate] = []
    if policy.aggregation == "none":
        for group in per_item.values():
            for row in group:
                if row[3] in (Choice.A, Choice.B):
                    out.append(candidate(f"judgment:{row[0]}", row, row[3], row[4], Aggregate(row[3], 1.0, 1), [row[15]]))
        return out
    if policy.aggregation == "bradley_terry":
        return _bradley_terry_pairs(per_item, policy, counts)
    eligible = {item: group for item, group in per_item.items() if len(group) >= policy.min_judgments}
    counts["items_below_min_judgments"] += len(per_item) - len(eligible)
    votes = [(item, row[2], row[3], row[WEIGHT]) for item, group in eligible.items() for row in group]
    if policy.aggregation == "bias_aware":
        consistency = {a: (c.reasks, c.flips) for a, c in self_consistency(project=project).items() if c.reasks}
        aggregated = _bias_aware(eligible, votes, counts, consistency=consistency)
    else:
        aggregated = dawid_skene(votes)[0] if policy.aggregation == "dawid_skene" else majority(votes)
    for item, group in sorted(eligible.items()):
        agg = aggregated[item]
        if agg.label not in (Choice.A, Choice.B) and judge_votes.get(item):
            agg = _tiebreak(agg, group, judge_votes[item], counts)
        if agg.label not in (Choice.A, Choice.B):
            counts["items_without_a_winner"] += 1
            continue
        if agg.confidence < policy.min_confidence:
            counts["items_below_min_confidence"] += 1
            continue
        # Strength: the lower median among the judgments that chose the winner. Dawid-Skene may
        # pick a label nobody chose (it learned that these raters answer the opposite): the
        # strength is then unknown and the policy's "clear" margin applies.
        _, strength = majority_vote((row[3], row[4]) for row in group if row[3] == agg.label) or ("", "")
        rationales = [row[15] for row in group if row[3] == agg.label]
        out.append(candidate(f"item:{item}", group[0], agg.label, strength, agg, rationales))
    return out


def _tiebreak(agg: Aggregate, group: list, judges: Counter, counts: Counter) -> Aggregate:
    """People's aggregation found no winner: the judges decide, but only an even A/B split of
    people's votes (not a consensus of ties or both-bads), and only if the judges agree on a side.
    The item keeps people's confidence, so min_confidence still applies to it."""
    people = Counter(row[3] for row in group)
    if not (people[Choice.A] == people[Choice.B] >= 1) or judges[Choice.A] == judges[Choice.B]:
        return agg
    counts["items_decided_by_judge_tiebreak"] += 1
    counts["judge_judgments_counted"] += judges[Choice.A] + judges[Choice.B]
    return Aggregate(Choice.A if judges[Choice.A] > judges[Choice.B] else Choice.B, agg.confidence, agg.votes)


def _bias_filter(project: Project, policy: CurationPolicy, counts: Counter):
    """A function of a judgment row: the bias flag (policy.drop_biased) under which it is left
    out, or "". Flags come from the latest analytics computation (its id goes into the counts);
    "where the bias applies" uses that computation's thresholds."""
    if not policy.drop_biased:
        return lambda row: ""
    snapshot = (AnalyticsSnapshot.objects.filter(project=project, status="succeeded")
                .order_by("-finished_at").only("pk", "payload").first())
    if snapshot is None:
        counts["bias_drops_without_analytics"] += 1
        return lambda row: ""
    counts["bias_flags_from_analytics_computation"] = snapshot.pk
    payload = snapshot.payload
    wanted = set(policy.drop_biased)
    flagged_names = {r["username"]: {f["kind"] for f in r["flags"]} & wanted for r in payload.get("annotators", [])}
    ids = dict(get_user_model().objects.filter(
        username__in=[n for n, kinds in flagged_names.items() if kinds]).values_list("pk", "username"))
    flags = {pk: flagged_names[name] for pk, name in ids.items()}
    gap_chars = payload.get("thresholds", {}).get("length_gap_chars", 30)
    assertive_gap = payload.get("thresholds", {}).get("assertive_gap", 1.0)
    features: dict[int, tuple] = {}

    def applies(kind: str, row) -> bool:
        if kind in ("position", "speed"):
            return True
        if row[1] not in features:
            prompt = " ".join(str(m.get("content", "")) for m in row[9] if isinstance(m, dict) and m.get("role") == "user")
            features[row[1]] = (text_features(row[10]), text_features(row[11]),
                                premise_agreement(prompt, row[10]), premise_agreement(prompt, row[11]))
        fa, fb, agree_a, agree_b = features[row[1]]
        if kind == "length":
            return abs(fb.chars - fa.chars) > gap_chars
        if kind == "confidence":
            return abs(fb.assertiveness - fa.assertiveness) >= assertive_gap
        if kind == "formatting":
            return fa.is_list != fb.is_list
        return agree_a != agree_b  # sycophancy

    def check(row) -> str:
        for kind in sorted(flags.get(row[2], ())):
            if applies(kind, row):
                return kind
        return ""

    return check


def _judgment_cues(group: list, features: dict) -> list[tuple[int, int, int, int]]:
    """Per judgment row, the side each cue favours (+1 B, -1 A, 0 neither): the side shown on the
    left, the longer response (by more than 30 characters), the more assertive one (by at least one
    booster per 100 words), the one formatted as a list."""
    out = []
    for row in group:
        fa, fb = features[row[1]]
        left = {"a": -1, "b": 1}.get(row[16], 0)  # unknown sides (imported) carry no position cue
        gap = fb.chars - fa.chars
        assertive = fb.assertiveness - fa.assertiveness
        out.append((left, (gap > 30) - (gap < -30), (assertive >= 1) - (assertive <= -1), int(fb.is_list) - int(fa.is_list)))
    return out


def _bias_aware(eligible: dict[int, list], votes: list, counts: Counter,
                consistency: dict[int, tuple[int, int]] | None = None) -> dict[int, Aggregate]:
    """Dawid-Skene first (an item it calls a tie or both bad stays so); every other item's winner
    is the bias-aware model's (rewards/bias_aware.py), fitted on the decisive judgments, with each
    annotator's reliability pulled toward what their swapped re-asks say (`consistency`:
    annotator id -> (re-asks, flips))."""
    base = dawid_skene(votes)[0]
    features = {item: (text_features(group[0][10]), text_features(group[0][11])) for item, group in eligible.items()}
    items = sorted(eligible)
    index = {item: k for k, item in enumerate(items)}
    annotators = sorted({row[2] for group in eligible.values() for row in group})
    who = {a: k for k, a in enumerate(annotators)}
    rows = [row for item in items for row in eligible[item] if row[3] in (Choice.A, Choice.B)]
    if not rows:
        return base
    cues = [c for item in items for c in _judgment_cues([r for r in eligible[item] if r[3] in (Choice.A, Choice.B)], features)]
    priors = [consistency_prior(*(consistency or {}).get(a, (0, 0))) for a in annotators]
    fit = bias_aware_fit(
        np.array([index[r[1]] for r in rows]), np.array([who[r[2]] for r in rows]),
        np.array([r[3] == Choice.B for r in rows], dtype=float), np.array(cues), n_items=len(items),
        n_annotators=len(annotators), reliability_centre=np.array([p[0] for p in priors]),
        reliability_weight=np.array([p[1] for p in priors]), weights=np.array([r[WEIGHT] for r in rows]))
    counts["annotators_with_reasks_in_reliability"] += sum(1 for a in annotators if a in (consistency or {}))
    out = {}
    for item in items:
        agg = base[item]
        decisive = sum(1 for r in eligible[item] if r[3] in (Choice.A, Choice.B))
        if agg.label in ("tie", "both_bad") or decisive == 0:
            out[item] = agg
            continue
        q = float(fit.posterior_b[index[item]])
        label = Choice.B if q > 0.5 else Choice.A if q < 0.5 else None
        if label is not None and agg.label is not None and label != agg.label:
            counts["items_decided_otherwise_than_dawid_skene"] += 1
        out[item] = Aggregate(label=label, confidence=max(q, 1 - q), votes=agg.votes)
    return out


BT_STRENGTH = ((0.85, "strong"), (0.65, "clear"), (0.0, "slight"))


def _bradley_terry_pairs(per_item: dict[int, list], policy: CurationPolicy, counts: Counter) -> list[Candidate]:
    """Bradley-Terry over every decisive comparison of a prompt's responses (across items): one
    pair per pair of responses ever compared, the stronger one chosen, with P(chosen beats
    rejected) as the confidence and the strength from it (>= 0.85 strong, >= 0.65 clear)."""
    games: dict[tuple[int, int, int], list] = defaultdict(list)  # (prompt, low id, high id) -> rows
    outcomes = []
    for group in per_item.values():
        for row in group:
            choice, prompt_id, a_id, b_id = row[3], row[6], row[7], row[8]
            if choice not in (Choice.A, Choice.B):
                continue
            winner, loser = (a_id, b_id) if choice == Choice.A else (b_id, a_id)
            outcomes.append((prompt_id, winner, loser, row[WEIGHT]))
            games[(prompt_id, min(a_id, b_id), max(a_id, b_id))].append((row, winner))
    scores = bradley_terry(outcomes)
    out = []
    for (prompt_id, low, high), played in sorted(games.items()):
        if len(played) < policy.min_judgments:
            counts["pairs_below_min_judgments"] += 1
            continue
        p = scores[prompt_id]
        if np.isclose(p[low], p[high]):  # equally strong: no pair, as a tie never makes one
            counts["pairs_without_a_winner"] += 1
            continue
        chosen, rejected = (low, high) if p[low] > p[high] else (high, low)
        confidence = p[chosen] / (p[chosen] + p[rejected]) if p[chosen] + p[rejected] > 0 else 0.5
        if confidence < policy.min_confidence:
            counts["pairs_below_min_confidence"] += 1
            continue
        row = played[0][0]
        texts = {row[7]: row[10], row[8]: row[11]}
        out.append(Candidate(
            key=f"bt:{prompt_id}:{low}:{high}", prompt_id=prompt_id, chosen_id=chosen, rejected_id=rejected,
            messages=row[9], chosen=texts[chosen], rejected=texts[rejected],
            strength=next(name for floor, name in BT_STRENGTH if confidence >= floor), tag="comparison",
            flaw_type="", domain=row[12], difficulty=row[13], confidence=round(confidence, 6), votes=len(played),
            ground_truth=row[14], rationales=tuple(r[15] for r, winner in played if winner == chosen),
        ))
    return out


def _derived(project: Project, policy: CurationPolicy, tags: set[str]) -> list[Candidate]:
    counted = _counted(project, policy)
    rows = DerivedPair.objects.filter(project=project, tag__in=sorted(tags)).order_by("id").values_list(
        "id", "author_id", "prompt_id", "chosen_id", "rejected_id", "prompt__messages", "chosen__text",
        "rejected__text", "strength", "tag", "flaw_type", "prompt__domain", "prompt__difficulty",
        "prompt__ground_truth", "rewrite__rationale", "negative__rationale", "note",
    )
    return [
        Candidate(
            key=f"derived:{pk}", prompt_id=prompt_id, chosen_id=chosen_id, rejected_id=rejected_id,
            messages=messages, chosen=chosen, rejected=rejected, strength=strength, tag=tag, flaw_type=flaw,
            domain=domain, difficulty=difficulty, confidence=1.0, votes=1, ground_truth=truth,
            rationales=(rewrite_why or negative_why or note or "",),
        )
        for (pk, author, prompt_id, chosen_id, rejected_id, messages, chosen, rejected, strength, tag, flaw, domain,
             difficulty, truth, rewrite_why, negative_why, note) in rows.iterator(chunk_size=BATCH)
        if counted(author)
    ]


def _rankings(project: Project, policy: CurationPolicy) -> list[Candidate]:
    counted = _counted(project, policy)
    rows = RankingJudgment.objects.filter(project=project).order_by("id").values_list(
        "id", "annotator_id", "item_id", "ranking", "item__prompt_id", "item__prompt__messages",
        "item__prompt__domain", "item__prompt__difficulty", "item__prompt__ground_truth", "rationale",
    )
    texts: dict[int, str] = {}
    out = []
    for pk, annotator, item, ranking, prompt_id, messages, domain, difficulty, truth, why in rows.iterator(chunk_size=BATCH):
        if not counted(annotator):
            continue
        missing = [rid for tier in ranking for rid in tier if rid not in texts]
        if missing:
            texts.update(ItemResponse.objects.filter(item_id=item).values_list("response_id", "response__text"))
        for better, worse, strength in expand_pairs(ranking):
            out.append(Candidate(
                key=f"ranking:{pk}:{better}:{worse}", prompt_id=prompt_id, chosen_id=better, rejected_id=worse,
                messages=messages, chosen=texts[better], rejected=texts[worse], strength=strength, tag="ranking",
                flaw_type="", domain=domain, difficulty=difficulty, confidence=1.0, votes=1,
                ground_truth=truth, rationales=(why,), unit=f"ranking:{pk}",
            ))
    return out


def candidates_collect(*, project: Project, policy: CurationPolicy) -> tuple[list[Candidate], Counter, list[int]]:
    """Every pair the policy keeps, sorted by key, with the counts of what it left out."""
    counts: Counter = Counter()
    spec_versions: set[int] = set()
    tags = set(policy.tags)
    found: list[Candidate] = []
    if "comparison" in tags:
        found += _comparisons(project, policy, counts, spec_versions)
    if tags & {"rewrite", "adversarial"}:
        found += _derived(project, policy, tags & {"rewrite", "adversarial"})
    if "ranking" in tags:
        found += _rankings(project, policy)
    found.sort(key=lambda c: c.key)
    return found, counts, sorted(spec_versions)


Progress = Callable[[str, int], None]  # (phase, percent)


def preference_set_freeze(
    *, project: Project, policy: CurationPolicy, created_by=None, name: str = "", progress: Progress | None = None
) -> PreferenceSet:
    """Freeze the project's data under `policy` as the next version."""
    report = progress or (lambda phase, percent: None)
    errors = policy.errors()
    if errors:
        raise PolicyError(errors)
    report("reading and aggregating judgments", 5)
    candidates, counts, spec_versions = candidates_collect(project=project, policy=policy)
    report("sampling and splitting", 50)
    candidates, left_out = sample(candidates, policy)
    counts.update({f"left_out_{name}": n for name, n in left_out.items()})
    splits = split_of(candidates, fraction=policy.test_fraction, seed=policy.seed)
    pairs = [
        SetPair(
            position=i, key=c.key, prompt_id=c.prompt_id, chosen_response_id=c.chosen_id,
            rejected_response_id=c.rejected_id, messages=[{"role": m["role"], "content": m["content"]} for m in c.messages],
            prompt_text=prompt_as_text(c.messages), chosen=c.chosen, rejected=c.rejected,
            strength=c.strength, margin=round(policy.margin(c.strength), 6), tag=c.tag, flaw_type=c.flaw_type,
            domain=c.domain, difficulty=c.difficulty, confidence=c.confidence, votes=c.votes, split=splits[c.key],
            ground_truth=c.ground_truth, rationales=list(c.rationales),
        )
        for i, c in enumerate(candidates)
    ]
    summary = {
        "pairs": len(pairs),
        "by_split": dict(sorted(Counter(p.split for p in pairs).items())),
        "by_tag": dict(sorted(Counter(p.tag for p in pairs).items())),
        "by_domain": dict(sorted(Counter(p.domain or "(none)" for p in pairs).items())),
        **dict(sorted(counts.items())),
    }
    report("writing the frozen pairs", 70)
    with transaction.atomic():
        Project.objects.select_for_update().get(pk=project.pk)  # one freeze per project at a time
        version = (PreferenceSet.objects.filter(project=project).aggregate(v=Max("version"))["v"] or 0) + 1
        preference_set = PreferenceSet.objects.create(
            project=project, version=version, name=name.strip()[:200], policy=policy.to_dict(),
            content_hash=content_hash(policy, (p.content() for p in pairs)), counts=summary,
            coverage=coverage_report([
                {"domain": p.domain, "tag": p.tag, "flaw_type": p.flaw_type, "difficulty": p.difficulty, "chosen": p.chosen,
                 "rejected": p.rejected, "confidence": p.confidence, "split": p.split} for p in pairs
            ], policy),
            spec_versions=spec_versions, created_by=created_by,
        )
        for p in pairs:
            p.preference_set = preference_set
        SetPair.objects.bulk_create(pairs, batch_size=BATCH)
    report("done", 100)
    return preference_set


# ---------------------------------------------------------------- freezing on a worker


def _send_freeze(request_id: int) -> None:
    from ..tasks import freeze_set  # tasks import services

    freeze_set.delay(request_id)


# The lifecycle every background job shares (annotation/services/jobs.py): heartbeat, reaper,
# failed with the reason, retry.
FREEZES = job_kind_register(JobKind(name="freeze", model=FreezeRequest, task="rewards.tasks.freeze_set",
                                    send=_send_freeze))


def freeze_request(*, project: Project, policy: CurationPolicy, created_by=None, name: str = "") -> FreezeRequest:
    """Queue a freeze on the `default` worker queue; the policy is checked now, not there."""
    errors = policy.errors()
    if errors:
        raise PolicyError(errors)
    request = FreezeRequest.objects.create(project=project, policy=policy.to_dict(), name=name.strip()[:200],
                                           created_by=created_by)
    job_enqueue(FREEZES, request.pk)
    return request


def freeze_retry(*, request: FreezeRequest, user=None) -> FreezeRequest:
    """A failed freeze again, under the same policy and name: a new request (the failed one keeps its reason)."""
    job_retryable(request)
    return freeze_request(project=request.project, policy=CurationPolicy.from_dict(request.policy),
                          created_by=user, name=request.name)


def freeze_run(*, request_id: int) -> FreezeRequest:
    """Do a queued freeze (once: a redelivered one that is already running or done is left alone,
    or failed if its worker went silent), beating while it works."""

    def progress(phase: str, percent: int) -> None:
        FreezeRequest.objects.filter(pk=request_id).update(phase=phase, percent=percent, heartbeat_at=timezone.now())

    def body() -> None:
        request = FreezeRequest.objects.select_related("project", "created_by").get(pk=request_id)
        preference_set = preference_set_freeze(
            project=request.project, policy=CurationPolicy.from_dict(request.policy), created_by=request.created_by,
            name=request.name, progress=progress)
        # Unconditional: even a request given up on as stale did produce this set, and says so now.
        FreezeRequest.objects.filter(pk=request_id).update(
            status=FreezeStatus.SUCCEEDED, preference_set=preference_set, percent=100, phase="done", error="",
            finished_at=timezone.now())

    job_guarded(FREEZES, request_id, body, phase="starting", percent=1)
    return FreezeRequest.objects.select_related("project", "created_by").get(pk=request_id)


def freeze_progress(*, request: FreezeRequest) -> FreezeRequest:
    """The request as it stands; a dead worker or a lost message is noticed now (services/jobs.py)."""
    return job_fresh(FREEZES, request)


PAIR_FIELDS = ("position", "key", "prompt_id", "chosen_response_id", "rejected_response_id", "messages", "chosen",
               "rejected", "strength", "margin", "tag", "flaw_type", "domain", "ground_truth", "rationales", "split")


def set_pairs(*, preference_set: PreferenceSet, split: str = "") -> Iterator[dict]:
    """The set's pairs as plain dicts in set order, streamed from the database."""
    qs = SetPair.objects.filter(preference_set=preference_set)
    if split:
        qs = qs.filter(split=split)
    for values in qs.order_by("position").values_list(*PAIR_FIELDS).iterator(chunk_size=BATCH):
        row = dict(zip(PAIR_FIELDS, values))
        row["chosen_id"], row["rejected_id"] = row.pop("chosen_response_id"), row.pop("rejected_response_id")
        yield row


def set_rows(*, preference_set: PreferenceSet, fmt: str, split: str = "") -> Iterator[dict]:
    """The set in any of its formats (rewards/set_formats.py), in set order, streamed: no set is
    held in memory (prompt formats remember only which prompt ids they have written)."""
    if fmt not in SET_FORMATS:
        raise ValueError(f"unknown format {fmt!r}; use one of {', '.join(SET_FORMATS)}")
    pairs = set_pairs(preference_set=preference_set, split=split)
    if fmt in PAIR_FORMATS:
        for p in pairs:
            yield preference_row(fmt=fmt, messages=p["messages"], chosen=p["chosen"], rejected=p["rejected"],
                                 strength=p["strength"], tag=p["tag"], flaw_type=p["flaw_type"], margin=p["margin"])
    elif fmt in PROMPT_FORMATS:
        yield from prompt_rows(pairs, fmt)
    elif fmt == "ranking":
        yield from ranking_rows(pairs)
    else:
        dimensions = preference_set.project.dimensions
        for p in pairs:
            row = pair_row(p, fmt, dimensions=dimensions)
            if row is not None:
                yield row


def set_parquet(*, preference_set: PreferenceSet, fmt: str, path, split: str = "", batch: int = BATCH) -> int:
    """Write a parquet format (verl) to `path` in row groups of `batch`: flat memory. Returns rows."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    where = path if hasattr(path, "write") else str(path)  # a path or an open binary file
    writer = None
    written = 0
    chunk: list[dict] = []

    def flush() -> None:
        nonlocal writer, written
        table = pa.Table.from_pylist(chunk, schema=writer.schema if writer else None)
        if writer is None:
            writer = pq.ParquetWriter(where, table.schema)
        writer.write_table(table)
        written += len(chunk)
        chunk.clear()

    try:
        for row in set_rows(preference_set=preference_set, fmt=fmt, split=split):
            chunk.append(row)
            if len(chunk) >= batch:
                flush()
        if chunk or writer is None:
            if not chunk and writer is None:  # an empty set still gets a readable (empty) file
                pq.write_table(pa.Table.from_pylist([]), where)
                return 0
            flush()
    finally:
        if writer is not None:
            writer.close()
    return written


def set_manifest(*, preference_set: PreferenceSet, fmt: str, split: str = "") -> dict:
    return {
        "set_id": preference_set.pk,
        "project": preference_set.project.slug,
        "version": preference_set.version,
        "content_hash": preference_set.content_hash,
        "policy": preference_set.policy,
        "counts": preference_set.counts,
        "spec_versions": preference_set.spec_versions,
        # Whether AI judges' labels are in it, in so many words (a set frozen before judges existed
        # has no judge_labels in its policy: it took people's labels only).
        "judge_labels": {"policy": preference_set.policy.get("judge_labels", "exclude"),
                         "counted": preference_set.counts.get("judge_judgments_counted", 0),
                         "left_out": preference_set.counts.get("judge_judgments_left_out", 0)},
        "format": fmt,
        "split": split or "all",
        "read_with": READER_ARGS[fmt],
    }


def preference_set_diff(*, older: PreferenceSet, newer: PreferenceSet) -> dict:
    """Pairs added, removed and changed (same key, other content) from `older` to `newer`."""
    def contents(s: PreferenceSet) -> dict[str, dict]:
        return {p.key: p.content() for p in SetPair.objects.filter(preference_set=s).order_by("position").iterator(chunk_size=BATCH)}

    a, b = contents(older), contents(newer)
    changed = []
    for key in sorted(a.keys() & b.keys()):
        if a[key] != b[key]:
            changed.append({"key": key, "fields": sorted(f for f in a[key] if a[key][f] != b[key][f])})
    return {
        "from": older.version, "to": newer.version,
        "added": sorted(b.keys() - a.keys()), "removed": sorted(a.keys() - b.keys()), "changed": changed,
    }


# ---------------------------------------------------------------- fast JSONL on PostgreSQL

# Python's repr of a float: PostgreSQL prints the same shortest digits, but "1" for 1.0.
_MARGIN = "CASE WHEN margin = trunc(margin) THEN trunc(margin)::bigint::text || '.0' ELSE margin::text END"
# Tags and flaw types are fixed identifiers: nothing in them needs escaping.
_TAIL = """', "margin": ' || """ + _MARGIN + """ || ', "tag": "' || tag || '", "flaw_type": '
    || CASE WHEN flaw_type = '' THEN 'null' ELSE '"' || flaw_type || '"' END || '}'"""
_LINES = {
    "trl": """'{"prompt": ' || to_json(prompt_text)::text || ', "chosen": ' || to_json(chosen)::text
        || ', "rejected": ' || to_json(rejected)::text || """ + _TAIL,
    # jsonb prints {"role": ..., "content": ...} (shorter key first) with Python's separators.
    "trl-conversational": """'{"prompt": ' || messages::text || ', "chosen": [{"role": "assistant", "content": '
        || to_json(chosen)::text || '}], "rejected": [{"role": "assistant", "content": ' || to_json(rejected)::text
        || '}]' || """ + _TAIL,
}


def set_jsonl(*, preference_set: PreferenceSet, fmt: str, split: str = "") -> Iterator[bytes]:
    """The set as JSONL bytes. On PostgreSQL the TRL pair formats are built by the database and
    streamed with COPY: byte for byte what the Python path writes (tested), at close to COPY's own
    rate (bench/export.py). Everything else goes through set_rows."""
    if connection.vendor == "postgresql" and fmt in _LINES:
        yield from _copy_lines(preference_set, fmt, split)
        return
    for row in set_rows(preference_set=preference_set, fmt=fmt, split=split):
        yield jsonl_line(row).encode()


def _copy_lines(preference_set: PreferenceSet, fmt: str, split: str) -> Iterator[bytes]:
    table = SetPair._meta.db_table
    where = "preference_set_id = %s" + (" AND split = %s" if split else "")
    params = [preference_set.pk] + ([split] if split else [])
    # CSV with a quote and a delimiter that JSON text can never hold raw (to_json escapes every
    # control character): no field is ever quoted, so COPY's output is exactly the lines.
    sql = (f"COPY (SELECT {_LINES[fmt]} FROM \"{table}\" WHERE {where} ORDER BY position) "
           "TO STDOUT (FORMAT csv, QUOTE E'\\x01', DELIMITER E'\\x02')")
    buffer = bytearray()
    with connection.cursor() as cursor:
        with cursor.connection.cursor().copy(sql, params) as copy:
            for row in copy:  # one COPY message per row: hand them on in 256 KB pieces
                buffer += row
                if len(buffer) >= 262_144:
                    yield bytes(buffer)
                    buffer.clear()
    if buffer:
        yield bytes(buffer)
