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
    FORMATS, RANKING_FORMAT, SFT_FORMATS, TAGS, majority_vote, preference_row, ranking_row, sft_row,
)

AGGREGATIONS = ("none", "majority")


def _judgments(project: Project, *, include_excluded: bool):
    # Swapped re-asks are not data; AI judges' labels reach training data only through a set whose
    # curation policy takes them (judge_labels), never through a quick export.
    qs = Judgment.objects.filter(project=project, reask_of__isnull=True, by_judge=False)
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
    left_out = Judgment.objects.filter(project=project, reask_of__isnull=True,
                                       annotator_id__in=excluded_annotator_ids(project=project))
    return ExportExclusions(
        annotators=left_out.values("annotator_id").distinct().count(), judgments=left_out.count()
    )


@dataclass(frozen=True)
class ExportSources:
    """What an export could be made of now, counted (excluded annotators' work left out unless
    asked for): the inputs each format turns into rows."""
    comparisons: int  # comparison judgments
    one_sided: int  # of those, preferring one response: ties and both-bad never become pairs
    rewrite_pairs: int  # from approved expert rewrites
    adversarial_pairs: int
    rankings: int  # ranking judgments
    approved_rewrites: int  # expert rewrites approved (the SFT rows)
    rewrites_waiting: int  # expert rewrites not approved yet (not gold, not exported)
    left_out: ExportExclusions


def export_sources(*, project: Project, include_excluded: bool = False) -> ExportSources:
    excluded = [] if include_excluded else excluded_annotator_ids(project=project)
    judgments = Judgment.objects.filter(project=project, reask_of__isnull=True, by_judge=False).exclude(
        annotator_id__in=excluded)
    pairs = DerivedPair.objects.filter(project=project).exclude(author_id__in=excluded)
    rewrites = Rewrite.objects.filter(project=project).exclude(author_id__in=excluded)
    return ExportSources(
        comparisons=judgments.count(),
        one_sided=judgments.filter(choice__in=[Choice.A, Choice.B]).count(),
        rewrite_pairs=pairs.filter(tag=PairTag.REWRITE).count(),
        adversarial_pairs=pairs.filter(tag=PairTag.ADVERSARIAL).count(),
        rankings=RankingJudgment.objects.filter(project=project).exclude(annotator_id__in=excluded).count(),
        approved_rewrites=rewrites.filter(status=RewriteStatus.APPROVED).count(),
        rewrites_waiting=rewrites.exclude(status=RewriteStatus.APPROVED).count(),
        left_out=ExportExclusions(0, 0) if include_excluded else export_exclusions(project=project),
    )


def export_empty_reason(*, fmt: str, sources: ExportSources, tags: Iterable[str] = TAGS) -> str | None:
    """Why an export with these settings holds no row, in words for the page, the API and the
    CLI; None when its sources are there (an aggregated export can still come out empty: every
    item's majority a tie; export_rows_or_reason says so)."""
    if fmt == RANKING_FORMAT:
        if sources.rankings:
            return None
        why = "This project has no ranking judgments: the ranking format holds one row per ranking."
    elif fmt in SFT_FORMATS:
        if sources.approved_rewrites:
            return None
        waiting = f" ({sources.rewrites_waiting} waiting for review or sent back)" if sources.rewrites_waiting else ""
        why = (f"This project has no approved expert rewrites{waiting}: the SFT formats hold one row per "
               "approved rewrite.")
    else:
        wanted = [t for t in TAGS if t in set(tags)]
        found = {
            PairTag.COMPARISON: (sources.one_sided, f"{sources.comparisons} comparison judgments, "
                                 f"{sources.one_sided} preferring one response (ties and both-bad never become pairs)"),
            PairTag.REWRITE: (sources.rewrite_pairs, f"{sources.rewrite_pairs} pairs from approved expert rewrites"),
            PairTag.ADVERSARIAL: (sources.adversarial_pairs, f"{sources.adversarial_pairs} adversarial pairs"),
            PairTag.RANKING: (sources.rankings, f"{sources.rankings} ranking judgments"),
        }
        if not wanted:
            return "No pair kinds were chosen: choose at least one of " + ", ".join(TAGS) + "."
        if any(found[t][0] for t in wanted):
            return None
        why = f"No preference pairs from {', '.join(wanted)}: " + "; ".join(found[t][1] for t in wanted) + "."
    if sources.left_out.judgments:
        why += (f" {sources.left_out.judgments} judgments of {sources.left_out.annotators} excluded annotator(s) "
                "are left out; including excluded annotators keeps them.")
    return why


def export_rows_or_reason(*, project: Project, fmt: str, aggregate: str = "none", include_excluded: bool = False,
                          tags: Iterable[str] | None = None) -> tuple[Iterator[dict] | None, str]:
    """preference_rows, or (None, why) when they would be none: the API answers 409 and the CLI
    refuses instead of writing an empty file. Only a first row is read to find out, and that
    reading is closed at once: the rows handed back are a fresh stream that starts when read (a
    started stream would hold a server-side cursor open until the response is consumed)."""
    def rows():
        return preference_rows(project=project, fmt=fmt, aggregate=aggregate, include_excluded=include_excluded,
                               tags=tags)

    probe = rows()
    try:
        first = next(probe, None)
    finally:
        probe.close()
    if first is not None:
        return rows(), ""
    sources = export_sources(project=project, include_excluded=include_excluded)
    why = export_empty_reason(fmt=fmt, sources=sources, tags=TAGS if tags is None else tags)
    return None, why or ("Its sources are there, but none becomes a row with these settings: with one row per "
                         "item, every item's majority is a tie or both bad; a ranking whose responses all tie "
                         "gives no pairs.")


def export_overview(*, sources: ExportSources) -> list[tuple[str, str | None]]:
    """(format, why it would be empty or None) for every format at the default settings."""
    return [(fmt, export_empty_reason(fmt=fmt, sources=sources)) for fmt in FORMATS]


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
