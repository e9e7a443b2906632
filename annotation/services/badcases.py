"""Bad cases: responses found bad by a both-bad judgment, by production feedback (import source
`production_bad_case`) or by a lead. Each bad response gets exactly one rewrite task however often
and from wherever it is reported: reports of the same response are serialised on its row."""
from __future__ import annotations

from django.db import transaction

from ..errors import Conflict
from ..models import BadCase, BadCaseSource, Item, ItemKind, Judgment, Project, Response


def _rewrite_task(*, project: Project, response: Response) -> Item:
    # One expert rewrite per bad case; a sent-back rewrite returns to its author, not the queue.
    return Item.objects.create(
        project=project, kind=ItemKind.REWRITE, prompt_id=response.prompt_id, response_a=response,
        target_judgments=1,
    )


@transaction.atomic
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
    if source not in BadCaseSource.values:
        raise ValueError(f"unknown bad-case source {source!r}")
    response = Response.objects.select_for_update().select_related("prompt").get(pk=response.pk)
    if response.prompt.project_id != project.pk:
        raise Conflict("That response belongs to another project.")
    if hasattr(response, "negative_of"):
        raise Conflict("That response is an adversarial negative: it is bad on purpose.")
    existing = BadCase.objects.filter(response=response).first()
    if existing is not None:
        existing.reports += 1
        if source not in existing.sources:
            existing.sources = [*existing.sources, source]
        existing.save(update_fields=["reports", "sources"])
        return existing, False
    case = BadCase.objects.create(
        project=project,
        response=response,
        source=source,
        sources=[source],
        reported_by=reported_by,
        judgment=judgment,
        note=note.strip(),
        item=_rewrite_task(project=project, response=response),
    )
    return case, True


def bad_cases_from_judgment(*, judgment: Judgment, item: Item) -> list[BadCase]:
    """A both-bad judgment reports both of the item's responses."""
    cases = []
    # Fixed order (by id): two judgments reporting the same pair lock the rows alike, no deadlock.
    for response_id in sorted((item.response_a_id, item.response_b_id)):
        response = Response(pk=response_id)
        try:
            case, _ = bad_case_report(
                project=judgment.project, response=response, source=BadCaseSource.BOTH_BAD,
                reported_by=judgment.annotator, judgment=judgment,
            )
        except Conflict:  # an adversarial negative in a comparison: bad by design, no rewrite
            continue
        cases.append(case)
    return cases


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
