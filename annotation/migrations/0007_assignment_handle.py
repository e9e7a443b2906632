"""Assignments get an opaque handle: annotators address their work by it, never by a database id."""
import secrets

from django.db import migrations, models

import annotation.models


def fill_handles(apps, schema_editor):
    Assignment = apps.get_model("annotation", "Assignment")
    batch = []
    for assignment in Assignment.objects.filter(handle__isnull=True).only("pk").iterator(chunk_size=2000):
        assignment.handle = secrets.token_urlsafe(16)
        batch.append(assignment)
        if len(batch) >= 2000:
            Assignment.objects.bulk_update(batch, ["handle"])
            batch = []
    if batch:
        Assignment.objects.bulk_update(batch, ["handle"])


class Migration(migrations.Migration):
    dependencies = [("annotation", "0006_project_monitor_thresholds")]

    operations = [
        migrations.AddField(
            model_name="assignment", name="handle", field=models.CharField(max_length=32, null=True, editable=False),
        ),
        migrations.RunPython(fill_handles, migrations.RunPython.noop),
        migrations.AlterField(
            model_name="assignment",
            name="handle",
            field=models.CharField(
                default=annotation.models.assignment_handle_new, editable=False, max_length=32, unique=True
            ),
        ),
    ]
