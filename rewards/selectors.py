"""Reads for exports: preference rows streamed from the database, never built in memory."""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from itertools import groupby

from annotation.models import Choice, Judgment, Project
from calibration.selectors import excluded_annotator_ids

from .formats import majority_vote, preference_row

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
    *, project: Project, fmt: str, aggregate: str = "none", include_excluded: bool = False
) -> Iterator[dict]:
    """One row per judgment (`none`) or per item by majority; ties and both-bad never become pairs.
    Judgments of annotators whose standing is `excluded` are left out unless asked for."""
    if aggregate not in AGGREGATIONS:
        raise ValueError(f"unknown aggregation {aggregate!r}; use one of {', '.join(AGGREGATIONS)}")
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
