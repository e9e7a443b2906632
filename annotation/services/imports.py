"""JSONL import: every line validated first (errors reported with line numbers), then all of it
written in one transaction, or nothing. The file is streamed twice; only the set of external ids
is held in memory, so a 100k-line file imports in constant memory per batch."""
from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from django.conf import settings
from django.core.cache import cache
from django.core.files.uploadedfile import UploadedFile
from django.db import IntegrityError, transaction
from django.utils import timezone

from ..errors import ValidationFailed
from ..importing import LineError, ParsedItem, file_too_large, numbered_lines, parse_line
from ..models import ImportJob, ImportStatus, Item, ItemKind, ItemResponse, Project, Prompt, Response
from .badcases import bad_cases_import
from .jobs import JobKind, job_enqueue, job_fresh, job_guarded, job_kind_register, job_retryable

log = logging.getLogger(__name__)

BATCH = 1000
MAX_REPORTED_ERRORS = 1000

Progress = Callable[[str, int, int], None]  # (phase, done, total)


@dataclass
class ImportResult:
    total_lines: int = 0
    items_created: int = 0
    error_count: int = 0
    errors: list[dict] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.error_count == 0


def _count_lines(path: Path) -> int:
    # In chunks, not `for line in fh`: one 50 MB line would otherwise be held whole.
    count, last = 0, b"\n"
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            count += chunk.count(b"\n")
            last = chunk[-1:]
    return count + (last != b"\n")


def import_file_size_error(*, size: int) -> str | None:
    """Why a file of this size is refused (IMPORT_MAX_FILE_BYTES), or None: the one check for the
    upload (page, REST) and for the file the CLI or the worker reads."""
    return file_too_large(size, limit=settings.IMPORT_MAX_FILE_BYTES, setting="IMPORT_MAX_FILE_BYTES")


def import_validate(*, project: Project, path: Path, progress: Progress | None = None) -> ImportResult:
    too_large = import_file_size_error(size=path.stat().st_size)
    if too_large:
        return ImportResult(error_count=1, errors=[{"line": 0, "message": too_large}])
    total = _count_lines(path)
    result = ImportResult(total_lines=total)
    seen_ids: dict[str, int] = {}
    existing = set(
        Prompt.objects.filter(project=project, external_id__isnull=False).values_list("external_id", flat=True)
    )
    with open(path, "rb") as fh:
        for number, raw in numbered_lines(fh):
            try:
                parsed = parse_line(raw)
                if parsed.external_id is not None:
                    if parsed.external_id in existing:
                        raise LineError(f"external_id {parsed.external_id!r} already exists in this project")
                    if parsed.external_id in seen_ids:
                        raise LineError(
                            f"external_id {parsed.external_id!r} repeats line {seen_ids[parsed.external_id]}"
                        )
                    seen_ids[parsed.external_id] = number
            except LineError as exc:
                result.error_count += 1
                if len(result.errors) < MAX_REPORTED_ERRORS:
                    result.errors.append({"line": number, "message": str(exc)})
            if progress and number % BATCH == 0:
                progress("validating", number, total)
    if progress:
        progress("validating", total, total)
    return result


def items_create(*, project: Project, batch: list[ParsedItem], in_live_queue: bool = True) -> list[Item]:
    """Write validated items (prompts, responses, items, ranking members, bad cases) in a few bulk
    inserts. Production bad cases become rewrite tasks with their bad case."""
    prompts = Prompt.objects.bulk_create(
        [
            Prompt(
                project=project,
                messages=p.messages,
                domain=p.domain,
                difficulty=p.difficulty,
                tags=p.tags,
                source=p.source,
                ground_truth=p.ground_truth,
                external_id=p.external_id,
            )
            for p in batch
        ]
    )
    responses = Response.objects.bulk_create(
        [
            Response(prompt=prompt, text=r.text, model_name=r.model_name, metadata=r.metadata)
            for prompt, parsed in zip(prompts, batch)
            for r in parsed.responses
        ]
    )
    per_line: list[list[Response]] = []
    start = 0
    for parsed in batch:
        per_line.append(responses[start:start + len(parsed.responses)])
        start += len(parsed.responses)

    def target(kind: str) -> int:
        if not in_live_queue:
            return Item.UNLIMITED_TARGET
        if kind == ItemKind.REWRITE:
            return 1
        # Dynamic k: a comparison starts at k_min and grows while it is contested (dynamic_k.py).
        return project.k_min if kind == ItemKind.COMPARISON and project.dynamic_k else project.overlap

    items = Item.objects.bulk_create(
        [
            Item(
                project=project,
                kind=parsed.kind,
                prompt=prompt,
                response_a=mine[0] if parsed.kind != ItemKind.RANKING else None,
                response_b=mine[1] if parsed.kind == ItemKind.COMPARISON else None,
                target_judgments=target(parsed.kind),
                priority=parsed.priority,
                in_live_queue=in_live_queue,
            )
            for prompt, parsed, mine in zip(prompts, batch, per_line)
        ]
    )
    ItemResponse.objects.bulk_create(
        [
            ItemResponse(item=item, response=response, position=position)
            for item, mine in zip(items, per_line)
            if item.kind == ItemKind.RANKING
            for position, response in enumerate(mine)
        ]
    )
    rewrite = [(mine[0], item) for item, mine in zip(items, per_line) if item.kind == ItemKind.REWRITE]
    if rewrite:
        bad_cases_import(project=project, responses=[r for r, _ in rewrite], items=[i for _, i in rewrite])
    return items


def import_write(*, project: Project, path: Path, total: int, progress: Progress | None = None) -> int:
    created = 0
    batch: list[ParsedItem] = []
    try:
        with transaction.atomic():
            with open(path, "rb") as fh:
                for number, raw in numbered_lines(fh):
                    batch.append(parse_line(raw))
                    if len(batch) >= BATCH:
                        created += len(items_create(project=project, batch=batch))
                        batch = []
                        if progress:
                            progress("writing", number, total)
                if batch:
                    created += len(items_create(project=project, batch=batch))
    except IntegrityError as exc:
        # Another import added one of these external ids after we validated.
        raise LineError(f"nothing imported: the data changed while importing ({exc})") from exc
    if progress:
        progress("writing", total, total)
    return created


def import_file(*, project: Project, path: Path | str, progress: Progress | None = None) -> ImportResult:
    """Validate the whole file; write it only when every line is good."""
    path = Path(path)
    result = import_validate(project=project, path=path, progress=progress)
    if result.ok:
        result.items_created = import_write(
            project=project, path=path, total=result.total_lines, progress=progress
        )
    return result


def _send_import(job_id: int) -> None:
    from ..tasks import run_import  # tasks import services; importing late avoids the cycle

    run_import.delay(job_id)


IMPORTS = job_kind_register(JobKind(
    name="import", model=ImportJob, task="annotation.tasks.run_import", send=_send_import,
    reason_field="message", nothing_done="Nothing was imported.", on_fail=(("phase", ""),),
))


def import_job_create(*, project: Project, upload: UploadedFile, created_by) -> ImportJob:
    """Store the upload and queue its import on the `default` worker queue."""
    too_large = import_file_size_error(size=upload.size)
    if too_large:
        raise ValidationFailed(f"Nothing was imported: {too_large}", field_errors={"file": too_large})
    job = ImportJob(project=project, created_by=created_by, original_name=upload.name[:255])
    job.file.save(f"{project.slug}.jsonl", upload, save=False)
    job.full_clean()
    job.save()
    job_enqueue(IMPORTS, job.pk)
    return job


def import_job_retry(*, job: ImportJob, user) -> ImportJob:
    """A failed import again, from the upload it stored: a new job (the failed one keeps its reason)."""
    job_retryable(job)
    again = ImportJob(project=job.project, created_by=user, file=job.file.name, original_name=job.original_name)
    again.full_clean()
    again.save()
    job_enqueue(IMPORTS, again.pk)
    return again


def _progress_key(job_id: int) -> str:
    return f"import-progress:{job_id}"


def import_job_progress(*, job: ImportJob) -> ImportJob:
    """The job as it stands (a dead worker noticed now, see services/jobs.py), with live progress:
    the writing phase runs inside one transaction, so its progress is published through the cache
    rather than the (not yet committed) job row."""
    job = job_fresh(IMPORTS, job)
    try:
        live = cache.get(_progress_key(job.pk))
    except Exception:  # noqa: BLE001 - no cache (Redis down): the row's own numbers, not an error page
        live = None
    if live and job.status == ImportStatus.RUNNING:
        job.phase, job.processed_lines, job.total_lines = live
    return job


def import_job_run(*, job_id: int) -> ImportJob:
    """Do a queued import (once: a redelivered message for a job that is not queued is left alone,
    or fails it if its worker went silent), beating while it works."""

    def progress(phase: str, done: int, total: int) -> None:
        try:
            cache.set(_progress_key(job_id), (phase, done, total), timeout=3600)
        except Exception:  # noqa: BLE001 - progress shown is a nicety; the import goes on without it
            log.debug("import %s progress not cached", job_id, exc_info=True)

    def body() -> None:
        job = ImportJob.objects.select_related("project").get(pk=job_id)
        try:
            result = import_file(project=job.project, path=job.file.path, progress=progress)
        except Exception as exc:  # noqa: BLE001 - any failure must leave the job failed, with why
            log.exception("import %s failed", job_id)
            job.status = ImportStatus.FAILED
            job.message = f"Nothing was imported: {exc}"
        else:
            job.total_lines = result.total_lines
            job.processed_lines = result.total_lines
            job.error_count = result.error_count
            job.errors = result.errors
            job.items_created = result.items_created
            if result.ok:
                job.status = ImportStatus.SUCCEEDED
                job.message = f"Imported {result.items_created} items."
            else:
                job.status = ImportStatus.FAILED
                job.message = (
                    f"Nothing was imported: {result.error_count} of {result.total_lines} lines are invalid."
                )
        job.phase = ""
        job.finished_at = timezone.now()
        # Unconditional, like a freeze: even a job given up on as silent did import, and says so now.
        job.save()
        try:
            cache.delete(_progress_key(job_id))
        except Exception:  # noqa: BLE001
            pass

    job_guarded(IMPORTS, job_id, body)
    return ImportJob.objects.get(pk=job_id)
