"""python manage.py import_items FILE --project SLUG: validate every line, then import all or nothing."""
from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from annotation.models import Project
from annotation.services.imports import import_file


class Command(BaseCommand):
    help = "Import comparison items from a JSONL file (one item per line). All or nothing."

    def add_arguments(self, parser):
        parser.add_argument("file")
        parser.add_argument("--project", required=True, help="project slug")
        parser.add_argument("--no-progress", action="store_true")

    def handle(self, *args, file: str, project: str, no_progress: bool, **options):
        try:
            target = Project.objects.get(slug=project)
        except Project.DoesNotExist:
            raise CommandError(f"No project with slug {project!r}.") from None
        bars: dict[str, tqdm] = {}

        def progress(phase: str, done: int, total: int) -> None:
            if no_progress:
                return
            bar = bars.get(phase)
            if bar is None:
                bar = bars[phase] = tqdm(total=total, desc=phase, unit="line", file=self.stderr._out)
            bar.update(done - bar.n)

        try:
            result = import_file(project=target, path=file, progress=progress)
        except FileNotFoundError:
            raise CommandError(f"No such file: {file}") from None
        finally:
            for bar in bars.values():
                bar.close()
        if not result.ok:
            for error in result.errors:
                # Line 0 is the file as a whole (over IMPORT_MAX_FILE_BYTES): no line to name.
                where = f"line {error['line']}: " if error["line"] else ""
                self.stderr.write(f"{where}{error['message']}")
            if result.error_count > len(result.errors):
                self.stderr.write(f"... {result.error_count - len(result.errors)} more")
            if result.errors and result.errors[0]["line"] == 0:
                raise CommandError(f"Nothing imported: {result.errors[0]['message']}")
            raise CommandError(
                f"Nothing imported: {result.error_count} of {result.total_lines} lines are invalid."
            )
        self.stdout.write(self.style.SUCCESS(f"Imported {result.items_created} items into {target.slug}."))
