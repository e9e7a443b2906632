"""Bad cases: responses found bad by a both-bad judgment, by production feedback (import source
`production_bad_case`) or by a lead. Each bad response gets exactly one rewrite task however often
and from wherever it is reported: reports of the same response are serialised on its row."""
from __future__ import annotations

from django.db import transaction
from django.db.models import Exists, OuterRef

from ..errors import Conflict
from ..models import AdversarialNegative, BadCase, BadCaseSource, Item, ItemKind, Judgment, Project, Response


def bad_case_report(
    *,
    project: Project,
    response: Response,
    source: str,
    reported_by=None,
    judgment: Judgment | None = None,
    note: str = "",
) -> tuple[BadCase, bool]:
    """Report a response as bad. Returns (bad case, created); a repeat report only records its
    source on the existing bad case."""
    outcome = _report(project=project, response_ids=[response.pk], source=source, reported_by=reported_by,
                      judgment=judgment, note=note)
    if outcome[0] is None:
        raise Conflict("That response is an adversarial negative: it is bad on purpose.")
    return outcome[0]


def bad_cases_from_judgment(*, judgment: Judgment, item: Item) -> list[BadCase]:
    """A both-bad judgment reports both of the item's responses (an adversarial negative in a
    comparison is bad by design: no rewrite)."""
    outcome = _report(project=judgment.project, response_ids=[item.response_a_id, item.response_b_id],
                      source=BadCaseSource.BOTH_BAD, reported_by=judgment.annotator, judgment=judgment)
    return [case for case, _ in filter(None, outcome)]


def _report(*, project: Project, response_ids: list[int], source: str, reported_by=None,
            judgment: Judgment | None = None, note: str = "") -> list[tuple[BadCase, bool] | None]:
    """Report these responses, in a fixed number of statements whatever their number (a "both
    bad" answer reports two inside the submit; one at a time through the ORM it cost 14 statements
    and savepoints there): lock them, read their bad cases, create what is missing in one insert
    per table, count repeats. Locking by id in a fixed order serialises reports of the same
    response without deadlocks. Returns, per response in the given order, (bad case, created), or
    None for an adversarial negative. Joins the caller's transaction when there is one."""
    if source not in BadCaseSource.values:
        raise ValueError(f"unknown bad-case source {source!r}")
    with transaction.atomic(savepoint=False):
        locked = {
            pk: (prompt_id, owner, negative)
            for pk, prompt_id, owner, negative in Response.objects.select_for_update(of=("self",))
            .filter(pk__in=response_ids).order_by("pk")
            .annotate(negative=Exists(AdversarialNegative.objects.filter(response_id=OuterRef("pk"))))
            .values_list("pk", "prompt_id", "prompt__project_id", "negative")
        }
        foreign = any(pk not in locked or locked[pk][1] != project.pk for pk in response_ids)
        if not foreign:
            existing, created = _record(project=project, response_ids=response_ids, locked=locked, source=source,
                                        reported_by=reported_by, judgment=judgment, note=note)
    if foreign:  # raised outside the block: a caller's transaction stays usable
        raise Conflict("That response belongs to another project.")
    return [None if locked[pk][2] else (existing[pk], False) if pk in existing else (created[pk], True)
            for pk in response_ids]


def _record(*, project, response_ids, locked, source, reported_by, judgment, note):
    existing = {case.response_id: case for case in BadCase.objects.filter(response_id__in=response_ids)}
    for case in existing.values():
        case.reports += 1
        if source not in case.sources:
            case.sources = [*case.sources, source]
        case.save(update_fields=["reports", "sources"])
    fresh = [pk for pk in dict.fromkeys(response_ids) if pk not in existing and not locked[pk][2]]
    # One expert rewrite per bad case; a sent-back rewrite returns to its author, not the queue.
    tasks = Item.objects.bulk_create([
        Item(project=project, kind=ItemKind.REWRITE, prompt_id=locked[pk][0], response_a_id=pk, target_judgments=1)
        for pk in fresh])
    created = {case.response_id: case for case in BadCase.objects.bulk_create([
        BadCase(project=project, response_id=pk, source=source, sources=[source], reported_by=reported_by,
                judgment=judgment, note=note.strip(), item=task)
        for pk, task in zip(fresh, tasks)])}
    return existing, created


def bad_cases_import(*, project: Project, responses: list[Response], items: list[Item]) -> list[BadCase]:
    """Bad cases for freshly imported production responses and their rewrite items (bulk: an
    import writes thousands; the responses are new, so none can be reported twice)."""
    return BadCase.objects.bulk_create(
        [
            BadCase(
                project=project, response=response, source=BadCaseSource.PRODUCTION,
                sources=[BadCaseSource.PRODUCTION.value], item=item,
            )
            for response, item in zip(responses, items)
        ]
    )
