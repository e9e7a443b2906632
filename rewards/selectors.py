"""Reads for exports: preference, ranking and SFT rows streamed from the database, never built in
memory."""
from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from itertools import groupby

from annotation.models import (
    Choice, DerivedPair, ItemResponse, Judgment, PairTag, Project, RankingJudgment, Rewrite, RewriteStatus,
)
from annotation.ranking import expand_pairs, mean_ranking, ranks_of, scores_of
from calibration.selectors import excluded_annotator_ids

from .models import FreezeRequest, PreferenceSet, RewardModel
from .formats import (
    RANKING_FORMAT, SFT_FORMATS, TAGS, majority_vote, preference_row, ranking_row, sft_row,
)

AGGREGATIONS = ("none", "majority")


def _judgments(project: Project, *, include_excluded: bool):
    qs = Judgment.objects.filter(project=project)
    if not include_excluded:
        # Excluded annotators keep their judgments (for analysis) but do not train reward models.
        qs = qs.exclude(annotator_id__in=excluded_annotator_ids(project=project))
    return qs


@dataclass(frozen=True)
class ExportExclusions:
    annotators: int
    judgments: int


def export_exclusions(*, project: Project) -> ExportExclusions:
    """How many judgments (and from how many annotators) an export leaves out by default."""
    left_out = Judgment.objects.filter(project=project, annotator_id__in=excluded_annotator_ids(project=project))
    return ExportExclusions(
        annotators=left_out.values("annotator_id").distinct().count(), judgments=left_out.count()
    )


def _judgment_rows(project: Project, *, include_excluded: bool):
    return (
        _judgments(project, include_excluded=include_excluded)
        .order_by("item_id", "id")
        .values_list(
            "item_id",
            "choice",
            "strength",
            "item__prompt__messages",
            "item__response_a__text",
            "item__response_b__text",
        )
        .iterator(chunk_size=2000)
    )


def preference_rows(
    *,
    project: Project,
    fmt: str,
    aggregate: str = "none",
    include_excluded: bool = False,
    tags: Iterable[str] | None = None,
) -> Iterator[dict]:
    """Every row an export of `fmt` holds, streamed. Pair formats: comparison judgments (one per
    judgment with `none`, per item by majority), approved rewrites and adversarial negatives,
    and rankings expanded into pairs; `tags` narrows to some of these. `ranking`: one row per
    ranking judgment, or per item by mean score. SFT formats: one row per approved rewrite.
    Work of annotators whose standing is `excluded` is left out unless asked for."""
    if aggregate not in AGGREGATIONS:
        raise ValueError(f"unknown aggregation {aggregate!r}; use one of {', '.join(AGGREGATIONS)}")
    if fmt == RANKING_FORMAT:
        yield from ranking_rows(project=project, aggregate=aggregate, include_excluded=include_excluded)
        return
    if fmt in SFT_FORMATS:
        yield from sft_rows(project=project, fmt=fmt, include_excluded=include_excluded)
        return
    wanted = set(TAGS if tags is None else tags)
    unknown = wanted - set(TAGS)
    if unknown:
        raise ValueError(f"unknown tag(s) {', '.join(sorted(unknown))}; use {', '.join(TAGS)}")
    if PairTag.COMPARISON in wanted:
        yield from _comparison_pairs(project, fmt=fmt, aggregate=aggregate, include_excluded=include_excluded)
    authored = wanted & {PairTag.REWRITE, PairTag.ADVERSARIAL}
    if authored:
        yield from _derived_pairs(project, fmt=fmt, tags=authored, include_excluded=include_excluded)
    if PairTag.RANKING in wanted:
        for messages, _domain, _truth, tiers, texts in _rankings(project, aggregate=aggregate, include_excluded=include_excluded):
            for better, worse, strength in expand_pairs(tiers):
                yield preference_row(
                    fmt=fmt, messages=messages, chosen=texts[better], rejected=texts[worse],
                    strength=strength, tag=PairTag.RANKING,
                )


def _comparison_pairs(project: Project, *, fmt: str, aggregate: str, include_excluded: bool) -> Iterator[dict]:
    rows = _judgment_rows(project, include_excluded=include_excluded)
    if aggregate == "none":
        for _item, choice, strength, messages, text_a, text_b in rows:
            if choice in (Choice.A, Choice.B):
                yield _pair(fmt, messages, choice, strength, text_a, text_b)
        return
    for _item, group in groupby(rows, key=lambda r: r[0]):
        group = list(group)
        outcome = majority_vote((r[1], r[2]) for r in group)
        if outcome and outcome[0] in (Choice.A, Choice.B):
            _, _, _, messages, text_a, text_b = group[0]
            yield _pair(fmt, messages, outcome[0], outcome[1], text_a, text_b)


def _pair(fmt: str, messages, choice: str, strength: str, text_a: str, text_b: str) -> dict:
    chosen, rejected = (text_a, text_b) if choice == Choice.A else (text_b, text_a)
    return preference_row(fmt=fmt, messages=messages, chosen=chosen, rejected=rejected, strength=strength)


def _derived_pairs(project: Project, *, fmt: str, tags: set[str], include_excluded: bool) -> Iterator[dict]:
    qs = DerivedPair.objects.filter(project=project, tag__in=sorted(tags))
    if not include_excluded:
        qs = qs.exclude(author_id__in=excluded_annotator_ids(project=project))
    rows = qs.order_by("id").values_list(
        "prompt__messages", "chosen__text", "rejected__text", "strength", "tag", "flaw_type"
    )
    for messages, chosen, rejected, strength, tag, flaw_type in rows.iterator(chunk_size=2000):
        yield preference_row(
            fmt=fmt, messages=messages, chosen=chosen, rejected=rejected, strength=strength, tag=tag,
            flaw_type=flaw_type,
        )


def _rankings(project: Project, *, aggregate: str, include_excluded: bool):
    """(messages, domain, ground truth, tiers of response ids, {id: text}) per ranking judgment,
    or per item (mean score over its judgments) when aggregating."""
    qs = RankingJudgment.objects.filter(project=project)
    if not include_excluded:
        qs = qs.exclude(annotator_id__in=excluded_annotator_ids(project=project))
    rows = qs.order_by("item_id", "id").values_list(
        "item_id", "ranking", "item__prompt__messages", "item__prompt__domain", "item__prompt__ground_truth"
    )
    for item_id, group in groupby(rows.iterator(chunk_size=2000), key=lambda r: r[0]):
        group = list(group)
        texts = dict(
            ItemResponse.objects.filter(item_id=item_id).values_list("response_id", "response__text")
        )
        _, _, messages, domain, truth = group[0]
        if aggregate == "none":
            for row in group:
                yield messages, domain, truth, row[1], texts
        else:
            yield messages, domain, truth, mean_ranking([scores_of(r[1]) for r in group]), texts


def ranking_rows(*, project: Project, aggregate: str = "none", include_excluded: bool = False) -> Iterator[dict]:
    for messages, domain, truth, tiers, texts in _rankings(project, aggregate=aggregate, include_excluded=include_excluded):
        ranks, scores = ranks_of(tiers), scores_of(tiers)
        yield ranking_row(
            messages=messages, domain=domain, ground_truth=truth,
            responses=[(rid, texts[rid], ranks[rid], scores[rid]) for rid in ranks],
        )


def sft_rows(*, project: Project, fmt: str, include_excluded: bool = False) -> Iterator[dict]:
    """Approved rewrites only: a rewrite waiting for review or sent back is not gold yet."""
    qs = Rewrite.objects.filter(project=project, status=RewriteStatus.APPROVED)
    if not include_excluded:
        qs = qs.exclude(author_id__in=excluded_annotator_ids(project=project))
    for messages, text in qs.order_by("id").values_list("item__prompt__messages", "text").iterator(chunk_size=2000):
        yield sft_row(fmt=fmt, messages=messages, completion=text)


def preference_sets_of(*, project: Project):
    return PreferenceSet.objects.filter(project=project).select_related("project", "created_by").order_by("-version")


def preference_set_by_id(*, pk: int):
    """Any project's set; the caller checks the reader's role in its project."""
    return PreferenceSet.objects.select_related("project", "created_by").filter(pk=pk).first()


def freeze_request_by_id(*, pk: int):
    """Any project's freeze; the caller checks the reader's role in its project."""
    return FreezeRequest.objects.select_related("project").filter(pk=pk).first()


def preference_set_get(*, project: Project, version: int):
    return PreferenceSet.objects.filter(project=project, version=version).select_related("project", "created_by").first()


def freeze_request_get(*, project: Project, request_id: int):
    return FreezeRequest.objects.filter(project=project, pk=request_id).select_related("preference_set").first()


def reward_models_of(*, project: Project):
    return RewardModel.objects.filter(project=project).select_related("preference_set", "created_by").order_by("-created_at")


def reward_model_get(*, project: Project, pk: int):
    return RewardModel.objects.filter(project=project, pk=pk).select_related("preference_set", "project").first()


def overrides_of(*, reward_model: RewardModel):
    return reward_model.overrides.select_related("user").order_by("-created_at")


def reward_model_by_id(*, pk: int):
    """Any project's reward model; the caller checks the reader's role in its project."""
    return RewardModel.objects.select_related("project", "preference_set").filter(pk=pk).first()


def preference_set_of(*, project: Project, pk: int):
    return PreferenceSet.objects.filter(project=project, pk=pk).first()
