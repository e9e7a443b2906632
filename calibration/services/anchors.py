"""Anchors: create from an item, edit with history, import from JSONL, choose the calibration set."""
from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field

from django.conf import settings
from django.db import transaction

from annotation.errors import Conflict, ValidationFailed
from annotation.importing import (
    LineError, ParsedItem, file_too_large, numbered_lines, parse_item, parse_json_object,
)
from annotation.models import Choice, FlawType, Item, ItemKind, ItemStatus, Project, Prompt
from annotation.services.imports import items_create
from annotation.services.judgments import choice_errors

from ..explanations import ExplanationError, explanation_normalise
from ..models import Anchor, AnchorResult, AnchorRevision, CalibrationPolicy
from .policy import policy_get

MAX_EXPLANATION = 20_000


@dataclass
class ExpertAnswer:
    """The expert's answer in canonical terms: `a`/`b` are the item's response_a/response_b."""

    choice: str
    strength: str = ""
    dimensions: dict[str, str] = field(default_factory=dict)
    explanation: str = ""
    clear_cut: bool = True
    flaw_tags: tuple[str, ...] = ()  # flaws of the rejected response (FlawType values)


def expert_answer_validate(*, project: Project, answer: ExpertAnswer) -> dict[str, str]:
    errors = choice_errors(project=project, choice=answer.choice, strength=answer.strength,
                           dimensions=answer.dimensions, choices=tuple(Choice.values), better=(Choice.A, Choice.B),
                           choice_message="Choose a, b, tie or both_bad.")
    if not answer.explanation.strip():
        errors["explanation"] = "Explain the expert answer: annotators read it as feedback."
    elif len(answer.explanation) > MAX_EXPLANATION:
        errors["explanation"] = f"Keep the explanation under {MAX_EXPLANATION} characters."
    else:
        try:
            explanation_normalise(answer.explanation)
        except ExplanationError as exc:
            errors["explanation"] = str(exc)
    tags = answer.flaw_tags
    if not isinstance(tags, (list, tuple)) or not all(isinstance(t, str) for t in tags):
        errors["flaw_tags"] = "Flaw tags must be a list of flaw types."
    elif set(tags) - set(FlawType.values):
        errors["flaw_tags"] = (f"Unknown flaw type(s): {', '.join(sorted(set(tags) - set(FlawType.values)))}; "
                               f"known: {', '.join(FlawType.values)}.")
    elif tags and answer.choice not in (Choice.A, Choice.B):
        errors["flaw_tags"] = "Flaw tags describe the response the expert rejected: choose a or b first."
    return errors


def _check(project: Project, answer: ExpertAnswer) -> None:
    errors = expert_answer_validate(project=project, answer=answer)
    if errors:
        raise ValidationFailed("Please fix the expert answer.", field_errors=errors)


def _apply(anchor: Anchor, answer: ExpertAnswer) -> None:
    anchor.expert_choice = answer.choice
    anchor.expert_strength = answer.strength if answer.choice in (Choice.A, Choice.B) else ""
    anchor.expert_dimension_choices = dict(sorted(answer.dimensions.items()))
    # Stored with stable response names, rendered per reader (calibration/explanations.py).
    anchor.explanation = explanation_normalise(answer.explanation.strip())
    anchor.clear_cut = answer.clear_cut
    anchor.flaw_tags = sorted(set(answer.flaw_tags))


@transaction.atomic
def anchor_create(
    *, item: Item, answer: ExpertAnswer, created_by=None, in_calibration_set: bool = False
) -> Anchor:
    """Turn an item into an anchor: it leaves the live queue and is served only as gold."""
    item = Item.objects.select_for_update().select_related("project").get(pk=item.pk)
    if item.kind != ItemKind.COMPARISON:
        raise ValidationFailed("Only comparison items can be anchors.", field_errors={"item": "Not a comparison."})
    if item.reask_of_id is not None:
        raise ValidationFailed("A swapped re-ask cannot be an anchor; make its original item one.",
                               field_errors={"item": "A swapped re-ask."})
    if Anchor.objects.filter(item=item).exists():
        raise Conflict("This item is already an anchor; edit it instead.")
    _check(item.project, answer)
    anchor = Anchor(project=item.project, item=item, created_by=created_by, in_calibration_set=in_calibration_set)
    _apply(anchor, answer)
    anchor.full_clean()
    anchor.save()
    # Served to every annotator (once each) from now on, never as a live item.
    Item.objects.filter(pk=item.pk).update(in_live_queue=False, target_judgments=Item.UNLIMITED_TARGET)
    return anchor


@transaction.atomic
def anchor_update(
    *,
    anchor_id: int,
    project: Project,
    editor,
    reason: str = "",
    answer: ExpertAnswer | None = None,
    in_calibration_set: bool | None = None,
    active: bool | None = None,
) -> Anchor:
    """Edit an anchor. A change of the expert answer keeps the old one as a revision and rescores
    every result on this anchor (the standing changes those results caused stay in the audit).
    An `answer` equal to the current one is no change: no reason needed, no revision."""
    anchor = Anchor.objects.select_for_update().get(pk=anchor_id, project=project)
    if answer is not None and _unchanged(anchor, answer):
        answer = None
    if answer is not None:
        _check(project, answer)
        if not reason.strip():
            raise ValidationFailed("Say why the expert answer changes.", field_errors={"reason": "Required."})
        AnchorRevision.objects.create(
            anchor=anchor,
            revision=anchor.revision,
            expert_choice=anchor.expert_choice,
            expert_strength=anchor.expert_strength,
            expert_dimension_choices=anchor.expert_dimension_choices,
            explanation=anchor.explanation,
            clear_cut=anchor.clear_cut,
            flaw_tags=anchor.flaw_tags,
            reason=reason.strip(),
            replaced_by=editor,
        )
        _apply(anchor, answer)
        anchor.revision += 1
        results = AnchorResult.objects.filter(anchor=anchor)
        results.update(clear_cut=anchor.clear_cut, correct=False)
        results.filter(choice=anchor.expert_choice).update(correct=True)
    if in_calibration_set is not None:
        anchor.in_calibration_set = in_calibration_set
    if active is not None and active != anchor.active:
        anchor.active = active
        # A retired anchor's item is paused, so routing (which serves only active items) drops it.
        Item.objects.filter(pk=anchor.item_id).update(status=ItemStatus.ACTIVE if active else ItemStatus.PAUSED)
    anchor.full_clean()
    anchor.save()
    return anchor


def _unchanged(anchor: Anchor, answer: ExpertAnswer) -> bool:
    probe = Anchor(expert_choice=anchor.expert_choice)
    try:
        _apply(probe, answer)
    except ExplanationError:
        return False  # an invalid answer is a change; validation then says what is wrong
    fields = ("expert_choice", "expert_strength", "expert_dimension_choices", "explanation", "clear_cut", "flaw_tags")
    return all(getattr(probe, f) == getattr(anchor, f) for f in fields)


def calibration_set_choose(*, project: Project, size: int | None = None) -> dict:
    """Pick the calibration set from the active anchors so that it covers the project's domains
    and dimensions: round-robin over domains, preferring clear-cut anchors that add a dimension
    not yet covered, and alternating the expert's side so 'always pick A' cannot pass."""
    size = size or policy_get(project=project).calibration_size
    anchors = list(
        Anchor.objects.filter(project=project, active=True)
        .select_related("item__prompt")
        .order_by("id")
    )
    by_domain: dict[str, list[Anchor]] = defaultdict(list)
    for anchor in anchors:
        by_domain[anchor.item.prompt.domain or ""].append(anchor)
    chosen: list[Anchor] = []
    covered_dims: set[str] = set()
    side_count = {Choice.A: 0, Choice.B: 0}
    while len(chosen) < min(size, len(anchors)):
        progressed = False
        for domain in sorted(by_domain):
            pool = by_domain[domain]
            if not pool or len(chosen) >= size:
                continue

            def score(a: Anchor) -> tuple:
                new_dims = len(set(a.expert_dimension_choices) - covered_dims)
                side_penalty = side_count.get(a.expert_choice, 0)
                return (not a.clear_cut, -new_dims, side_penalty, a.pk)

            best = min(pool, key=score)
            pool.remove(best)
            chosen.append(best)
            covered_dims.update(best.expert_dimension_choices)
            if best.expert_choice in side_count:
                side_count[best.expert_choice] += 1
            progressed = True
        if not progressed:
            break
    chosen_ids = {a.pk for a in chosen}
    with transaction.atomic():
        Anchor.objects.filter(project=project).exclude(pk__in=chosen_ids).update(in_calibration_set=False)
        Anchor.objects.filter(pk__in=chosen_ids).update(in_calibration_set=True)
    return calibration_set_coverage(project=project)


def calibration_set_coverage(*, project: Project) -> dict:
    """What the calibration set covers, against the domains of the project's live items."""
    in_set = list(
        Anchor.objects.filter(project=project, active=True, in_calibration_set=True).values_list(
            "item__prompt__domain", "expert_dimension_choices", "clear_cut", "expert_choice"
        )
    )
    domains: dict[str, int] = defaultdict(int)
    dimensions: set[str] = set()
    for domain, dims, _clear, _choice in in_set:
        domains[domain or "(none)"] += 1
        dimensions.update(dims)
    live_domains = set(
        Item.objects.filter(project=project, in_live_queue=True, kind=ItemKind.COMPARISON)
        .values_list("prompt__domain", flat=True)
        .distinct()
    )
    policy = CalibrationPolicy.objects.filter(project=project).first() or CalibrationPolicy(project=project)
    return {
        "size": len(in_set),
        "target": policy.calibration_size,
        "clear_cut": sum(1 for row in in_set if row[2]),
        "domains": dict(sorted(domains.items())),
        "missing_domains": sorted(d or "(none)" for d in live_domains if (d or "(none)") not in domains),
        "dimensions": sorted(dimensions),
        "missing_dimensions": [k for k in project.dimension_keys if k not in dimensions],
        "expert_sides": {
            side: sum(1 for row in in_set if row[3] == side) for side in (Choice.A, Choice.B, Choice.TIE, Choice.BOTH_BAD)
        },
    }


# ---------------------------------------------------------------- import

ANCHOR_KEYS = {"choice", "strength", "dimensions", "explanation", "clear_cut", "calibration_set", "flaw_tags"}


def parse_expert(value, *, project: Project) -> tuple[ExpertAnswer, bool]:
    if not isinstance(value, dict):
        raise LineError("'expert' must be an object with choice, strength, dimensions, explanation, clear_cut")
    unknown = set(value) - ANCHOR_KEYS
    if unknown:
        raise LineError(f"'expert' has unknown field(s): {', '.join(sorted(unknown))}")
    clear_cut = value.get("clear_cut", True)
    in_set = value.get("calibration_set", False)
    if not isinstance(clear_cut, bool) or not isinstance(in_set, bool):
        raise LineError("'clear_cut' and 'calibration_set' must be true or false")
    answer = ExpertAnswer(
        choice=value.get("choice") if isinstance(value.get("choice"), str) else "",
        strength=value.get("strength") or "",
        dimensions=value.get("dimensions") or {},
        explanation=value.get("explanation") if isinstance(value.get("explanation"), str) else "",
        clear_cut=clear_cut,
        flaw_tags=tuple(value["flaw_tags"]) if isinstance(value.get("flaw_tags"), list) else value.get("flaw_tags", ()),
    )
    errors = expert_answer_validate(project=project, answer=answer)
    if errors:
        raise LineError("; ".join(f"expert {k}: {v}" for k, v in errors.items()))
    return answer, in_set


@dataclass
class AnchorImportResult:
    created: int = 0
    errors: list[dict] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors


def anchors_import(*, project: Project, lines: Iterable[str | bytes], created_by=None) -> AnchorImportResult:
    """Import anchors from JSONL: an item line (as for `import_items`) plus an `expert` object.
    All or nothing; every bad line is reported with its number. Anchor files are small (tens to
    hundreds of lines), so they are validated in memory and written in one request."""
    result = AnchorImportResult()
    parsed: list[tuple[ParsedItem, ExpertAnswer, bool]] = []
    existing = set(
        Prompt.objects.filter(project=project, external_id__isnull=False).values_list("external_id", flat=True)
    )
    seen: dict[str, int] = {}
    # An upload knows its size: refuse a file over the limit before reading a line of it. Lines
    # are read with the bounded reader and parsed by the hostile-JSON loader (annotation/untrusted.py).
    too_large = file_too_large(
        getattr(lines, "size", 0) or 0, limit=settings.ANCHORS_IMPORT_MAX_FILE_BYTES,
        setting="ANCHORS_IMPORT_MAX_FILE_BYTES",
    )
    if too_large:
        result.errors.append({"line": 0, "message": too_large})
        return result
    for number, raw in numbered_lines(lines):
        try:
            obj = parse_json_object(raw)
            if "expert" not in obj:
                raise LineError("missing 'expert' (the expert answer)")
            answer, in_set = parse_expert(obj.pop("expert"), project=project)
            item = parse_item(obj)
            if item.kind != ItemKind.COMPARISON:
                raise LineError("an anchor is a comparison: give exactly two responses")
            if item.external_id is not None:
                if item.external_id in existing:
                    raise LineError(f"external_id {item.external_id!r} already exists in this project")
                if item.external_id in seen:
                    raise LineError(f"external_id {item.external_id!r} repeats line {seen[item.external_id]}")
                seen[item.external_id] = number
            parsed.append((item, answer, in_set))
        except LineError as exc:
            result.errors.append({"line": number, "message": str(exc)})
    if result.errors or not parsed:
        if not parsed and not result.errors:
            result.errors.append({"line": 0, "message": "the file has no anchors"})
        return result
    with transaction.atomic():
        items = items_create(project=project, batch=[p[0] for p in parsed], in_live_queue=False)
        anchors = []
        for item, (_, answer, in_set) in zip(items, parsed):
            anchor = Anchor(project=project, item=item, created_by=created_by, in_calibration_set=in_set)
            _apply(anchor, answer)
            anchors.append(anchor)
        Anchor.objects.bulk_create(anchors)
    result.created = len(anchors)
    return result

