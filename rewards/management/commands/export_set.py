"""python manage.py export_set SET --format F --out PATH [--split train|test]

SET is a preference set id or PROJECT:VERSION (e.g. demo:3). Writes PATH and PATH.manifest.json;
the rows are streamed, so a million pairs export in flat memory."""
from __future__ import annotations

import json
import sys

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from rewards.curation import SPLITS
from rewards.models import PreferenceSet
from rewards.services.sets import set_jsonl, set_manifest, set_parquet
from rewards.set_formats import FILE_EXTENSIONS, SET_FORMATS


def find_set(ref: str) -> PreferenceSet:
    qs = PreferenceSet.objects.select_related("project")
    if ":" in ref:
        slug, _, version = ref.rpartition(":")
        found = qs.filter(project__slug=slug, version=int(version)).first() if version.isdigit() else None
    else:
        found = qs.filter(pk=int(ref)).first() if ref.isdigit() else None
    if found is None:
        raise CommandError(f"No preference set {ref!r}: give its id or PROJECT:VERSION.")
    return found


class Command(BaseCommand):
    help = "Export a frozen preference set in any of its formats (JSONL, or parquet for verl) with a manifest."

    def add_arguments(self, parser):
        parser.add_argument("set", help="set id, or PROJECT:VERSION")
        parser.add_argument("--format", choices=SET_FORMATS, default="trl", dest="fmt")
        parser.add_argument("--split", choices=SPLITS, default="")
        parser.add_argument("--out", required=True, help="output path, or - for stdout (no manifest then)")

    def handle(self, *args, set: str, fmt: str, split: str, out: str, **options):
        preference_set = find_set(set)
        manifest = set_manifest(preference_set=preference_set, fmt=fmt, split=split)
        total = preference_set.counts.get("by_split", {}).get(split) if split else preference_set.counts.get("pairs")
        if FILE_EXTENSIONS.get(fmt) == "parquet":
            if out == "-":
                raise CommandError("Parquet needs a file: give --out PATH.")
            count = set_parquet(preference_set=preference_set, fmt=fmt, path=out, split=split)
            self._manifest(out, manifest, count)
            return
        chunks = set_jsonl(preference_set=preference_set, fmt=fmt, split=split)
        if out == "-":
            for chunk in chunks:
                sys.stdout.buffer.write(chunk)
            return
        count = 0
        with open(out, "wb") as sink, tqdm(total=total, unit="row", disable=None, file=sys.stderr) as bar:
            for chunk in chunks:
                sink.write(chunk)
                lines = chunk.count(b"\n")
                count += lines
                bar.update(lines)
        self._manifest(out, manifest, count)

    def _manifest(self, out: str, manifest: dict, count: int) -> None:
        with open(f"{out}.manifest.json", "w", encoding="utf-8") as fh:
            json.dump({**manifest, "rows": count}, fh, indent=2, sort_keys=True)
        self.stderr.write(f"Wrote {count} rows ({manifest['format']}) to {out} and {out}.manifest.json.")
