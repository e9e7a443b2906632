"""python manage.py import_judgments FILE --project SLUG: judgments made elsewhere (our JSONL, a
preference file with prompt/chosen/rejected, or a Label Studio pairwise JSON export), checked
whole, then imported all or nothing; running it again imports nothing twice."""
from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from annotation.models import Project
from annotation.services.judgment_imports import judgments_import


class Command(BaseCommand):
    help = "Import judgments made elsewhere (JSONL or a Label Studio JSON export). All or nothing; idempotent."

    def add_arguments(self, parser):
        parser.add_argument("file")
        parser.add_argument("--project", required=True, help="project slug")

    def handle(self, *args, file: str, project: str, **options):
        try:
            target = Project.objects.get(slug=project)
        except Project.DoesNotExist:
            raise CommandError(f"No project with slug {project!r}.") from None
        try:
            with open(file, "rb") as fh:
                result = judgments_import(project=target, fh=fh)
        except FileNotFoundError:
            raise CommandError(f"No such file: {file}") from None
        if not result.ok:
            for error in result.errors:
                self.stderr.write(error)
            raise CommandError(f"Nothing imported: {len(result.errors)} problem(s) in {result.records} record(s).")
        self.stdout.write(self.style.SUCCESS(
            f"Imported {result.created} judgments into {target.slug} ({result.unchanged} already there, "
            f"{result.annotators_created} annotators and {result.items_created} items created)."))
