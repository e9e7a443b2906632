"""python manage.py export_preferences --project SLUG --format trl --out FILE [--aggregate majority]
[--tags comparison,rewrite,adversarial,ranking]"""
from __future__ import annotations

import sys

from django.core.management.base import BaseCommand, CommandError

from annotation.models import Project
from rewards.formats import FORMATS, TAGS, jsonl_line
from rewards.selectors import AGGREGATIONS, export_exclusions, export_rows_or_reason


class Command(BaseCommand):
    help = (
        "Stream preference pairs (TRL formats), rankings or SFT rows from approved rewrites as JSONL "
        "that the trainers read unchanged (ties and both-bad never become pairs)."
    )

    def add_arguments(self, parser):
        parser.add_argument("--project", required=True)
        parser.add_argument("--format", choices=FORMATS, default="trl", dest="fmt")
        parser.add_argument("--aggregate", choices=AGGREGATIONS, default="none")
        parser.add_argument("--out", required=True, help="output path, or - for stdout")
        parser.add_argument(
            "--tags", default=",".join(TAGS),
            help=f"pair formats: which pairs, comma-separated from {', '.join(TAGS)} (default: all)",
        )
        parser.add_argument(
            "--include-excluded", action="store_true",
            help="also export judgments of annotators whose standing is excluded",
        )

    def handle(self, *args, project: str, fmt: str, aggregate: str, out: str, include_excluded: bool, tags: str, **options):
        try:
            target = Project.objects.get(slug=project)
        except Project.DoesNotExist:
            raise CommandError(f"No project with slug {project!r}.") from None
        wanted = [t.strip() for t in tags.split(",") if t.strip()]
        unknown = sorted(set(wanted) - set(TAGS))
        if unknown:
            raise CommandError(f"Unknown tag(s) {', '.join(unknown)}; use {', '.join(TAGS)}.")
        rows, why = export_rows_or_reason(
            project=target, fmt=fmt, aggregate=aggregate, include_excluded=include_excluded, tags=wanted
        )
        if rows is None:  # no file at all rather than an empty one
            raise CommandError(f"Nothing to export, no file written. {why}")
        count = 0
        sink = sys.stdout if out == "-" else open(out, "w", encoding="utf-8")
        try:
            for row in rows:
                sink.write(jsonl_line(row))
                count += 1
        finally:
            if sink is not sys.stdout:
                sink.close()
        self.stderr.write(f"Wrote {count} rows ({fmt}, aggregate={aggregate}) to {out}.")
        left_out = export_exclusions(project=target)
        if left_out.judgments and not include_excluded:
            self.stderr.write(
                f"Left out {left_out.judgments} judgments of {left_out.annotators} excluded annotator(s) "
                "(--include-excluded to keep them)."
            )
