"""Importing judgments made elsewhere (annotation.judgment_import reads the file): all or
nothing, every problem reported with its line or task, idempotent on a re-run.

- Annotators are found or created by the name the file gives them, per project
  (`ImportedAnnotator`): a user who cannot log in (unusable password), a member with the annotator
  role marked `imported`. Without a standing row they count as active, as everywhere.
- Items: ours by external id (a comparison of the project); preference-file and Label Studio
  pairs become comparison items found again by their content (`Prompt.external_id` = the pair's
  key), so a second file with the same pairs adds judgments to the same items.
- Each judgment is a submitted assignment and its judgment, as if made here, with the time, the
  time spent and the side shown the file gave ("" when unknown: the position analysis leaves
  those out). A judgment already in the project for the same annotator and item is left alone
  when it says the same, and is an error when it says something else (edit it instead).
"""
from __future__ import annotations

import re
import uuid
from collections import Counter
from dataclasses import dataclass, field

from django.contrib.auth import get_user_model
from django.db import transaction
from django.db.models import F
from django.db.models.functions import Greatest
from django.utils import timezone

from ..judgment_import import ImportedJudgment, RecordError, read_records
from ..models import (
    Assignment,
    AssignmentStatus,
    ImportedAnnotator,
    Item,
    ItemKind,
    Judgment,
    Membership,
    Project,
    Prompt,
    Response,
    Role,
)

MAX_ERRORS = 1000
SOURCE = "judgment_import"


@dataclass
class JudgmentImportResult:
    records: int = 0
    created: int = 0
    unchanged: int = 0
    annotators_created: int = 0
    items_created: int = 0
    errors: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors


def _username(project: Project, name: str, taken: set[str]) -> str:
    """A readable, valid and unused username for an imported annotator: their name, then the
    project ("alice@demo"), made unique with a number."""
    base = re.sub(r"[^\w.@+-]", "_", name)[:100] or "annotator"
    candidate = f"{base}@{project.slug}"[:150]
    n = 2
    while candidate in taken:
        candidate = f"{base}-{n}@{project.slug}"[:150]
        n += 1
    taken.add(candidate)
    return candidate


def _same(judgment: Judgment, record: ImportedJudgment) -> bool:
    return (judgment.choice, judgment.strength, judgment.rationale) == (record.choice, record.strength, record.rationale)


def judgments_import(*, project: Project, fh) -> JudgmentImportResult:
    """Read every record of `fh` (binary), check them all, and write them only if none fails."""
    result = JudgmentImportResult()
    records: list[ImportedJudgment] = []
    for record in read_records(fh):
        result.records += 1
        if isinstance(record, RecordError):
            result.errors.append(str(record))
        else:
            records.append(record)
    # Items named by external id must exist, as comparisons of this project (a swapped re-ask's
    # shadow shares its original's prompt and is never the item a judgment names).
    wanted = {r.item_external_id for r in records if r.item_external_id}
    comparisons = Item.objects.filter(project=project, kind=ItemKind.COMPARISON, reask_of__isnull=True)
    by_external: dict[str, list[Item]] = {}
    for item in comparisons.filter(prompt__external_id__in=wanted).select_related("prompt"):
        by_external.setdefault(item.prompt.external_id, []).append(item)
    pair_keys = {r.pair.key for r in records if r.pair}
    by_pair = {item.prompt.external_id: item for item in comparisons.filter(
        prompt__external_id__in=pair_keys).select_related("prompt")}
    for record in records:
        if record.item_external_id:
            found = by_external.get(record.item_external_id, [])
            if not found:
                result.errors.append(f"{record.where}: no comparison item with external id {record.item_external_id!r} in this project")
            elif len(found) > 1:
                result.errors.append(f"{record.where}: external id {record.item_external_id!r} names {len(found)} comparison items")
    known = dict(ImportedAnnotator.objects.filter(project=project).values_list("name", "user_id"))
    # One judgment per annotator and item, in the file and against the project.
    seen: dict[tuple[str, str], str] = {}
    for record in records:
        key = (record.annotator, record.item_external_id or record.pair.key)
        if key in seen:
            result.errors.append(f"{record.where}: {record.annotator!r} judged this item already ({seen[key]})")
        else:
            seen[key] = record.where
    existing: dict[tuple[int, int], Judgment] = {}
    if known:
        item_ids = [items[0].pk for items in by_external.values() if len(items) == 1] + [i.pk for i in by_pair.values()]
        for judgment in Judgment.objects.filter(project=project, annotator_id__in=known.values(), item_id__in=item_ids):
            existing[(judgment.annotator_id, judgment.item_id)] = judgment
    plan: list[tuple[ImportedJudgment, Item | None]] = []
    for record in records:
        item = (by_external.get(record.item_external_id, [None])[0] if record.item_external_id
                else by_pair.get(record.pair.key))
        user_id = known.get(record.annotator)
        old = existing.get((user_id, item.pk)) if (user_id and item) else None
        if old is not None:
            if _same(old, record):
                result.unchanged += 1
            else:
                result.errors.append(f"{record.where}: {record.annotator!r} already has a different judgment on this "
                                     "item here (imported before, or made here); edit it instead of importing again")
            continue
        plan.append((record, item))
    if result.errors:
        result.errors = result.errors[:MAX_ERRORS]
        return result
    with transaction.atomic():
        _write(project, plan, known, result)
    return result


def _write(project: Project, plan, known: dict[str, int], result: JudgmentImportResult) -> None:
    User = get_user_model()
    names = sorted({record.annotator for record, _ in plan} - set(known))
    if names:
        taken = set(User.objects.filter(username__endswith=f"@{project.slug}").values_list("username", flat=True))
        users = [User(username=_username(project, name, taken)) for name in names]
        for user in users:
            user.set_unusable_password()
        users = User.objects.bulk_create(users)
        ImportedAnnotator.objects.bulk_create(
            [ImportedAnnotator(project=project, name=name, user=user) for name, user in zip(names, users)])
        Membership.objects.bulk_create(
            [Membership(project=project, user=user, role=Role.ANNOTATOR, imported=True) for user in users])
        known.update({name: user.pk for name, user in zip(names, users)})
        result.annotators_created = len(users)
    # New pairs: one prompt, two responses and a comparison item each.
    new_pairs = {}
    for record, item in plan:
        if item is None and record.pair.key not in new_pairs:
            new_pairs[record.pair.key] = record.pair
    items_by_key: dict[str, Item] = {}
    if new_pairs:
        prompts = Prompt.objects.bulk_create([
            Prompt(project=project, messages=pair.messages, domain=pair.domain, source=SOURCE, external_id=key)
            for key, pair in new_pairs.items()])
        responses = Response.objects.bulk_create([
            Response(prompt=prompt, text=text)
            for prompt, pair in zip(prompts, new_pairs.values()) for text in (pair.first, pair.second)])
        items = Item.objects.bulk_create([
            Item(project=project, prompt=prompt, response_a=responses[2 * i], response_b=responses[2 * i + 1],
                 kind=ItemKind.COMPARISON, target_judgments=project.overlap)
            for i, prompt in enumerate(prompts)])
        items_by_key = dict(zip(new_pairs, items))
        result.items_created = len(items)
    now = timezone.now()
    rows = [(record, item or items_by_key[record.pair.key]) for record, item in plan]
    assignments = Assignment.objects.bulk_create([
        Assignment(project=project, item=item, annotator_id=known[record.annotator], status=AssignmentStatus.SUBMITTED,
                   shown_left=record.shown_left, leased_at=record.at or now, lease_expires_at=record.at or now,
                   finished_at=record.at or now)
        for record, item in rows])
    judgments = Judgment.objects.bulk_create([
        Judgment(assignment=assignment, project=project, item=item, annotator_id=known[record.annotator],
                 choice=record.choice, strength=record.strength, rationale=record.rationale,
                 time_spent_ms=record.time_spent_ms, shown_left=record.shown_left,
                 spec_version=project.current_spec, client_token=uuid.uuid4())
        for assignment, (record, item) in zip(assignments, rows)])
    # created_at is set on insert: give each judgment the time the file says it was made.
    dated = []
    for judgment, (record, _item) in zip(judgments, rows):
        if record.at is not None:
            judgment.created_at = judgment.updated_at = record.at
            dated.append(judgment)
    Judgment.objects.bulk_update(dated, ["created_at", "updated_at"], batch_size=1000)
    # Imported judgments count toward k; an item that gets more than its target has its target
    # raised to what it holds (it is full: no more live work on it).
    for item_id, n in Counter(item.pk for _record, item in rows).items():
        Item.objects.filter(pk=item_id).update(
            judgment_count=F("judgment_count") + n, assigned_count=F("assigned_count") + n,
            target_judgments=Greatest(F("target_judgments"), F("assigned_count") + n))
    result.created = len(judgments)
