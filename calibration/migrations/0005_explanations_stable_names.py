"""Expert explanations get stable response names ({response_a}/{response_b}) so feedback can name
each response as the annotator saw it. Lenient: what cannot be resolved stays as written (the
next edit of that anchor asks the lead to resolve it)."""
from django.db import migrations

from calibration.explanations import explanation_normalise


def forwards(apps, schema_editor):
    for name in ("Anchor", "AnchorRevision"):
        model = apps.get_model("calibration", name)
        for row in model.objects.only("pk", "explanation").iterator(chunk_size=500):
            stored = explanation_normalise(row.explanation, strict=False)
            if stored != row.explanation:
                model.objects.filter(pk=row.pk).update(explanation=stored)


class Migration(migrations.Migration):
    dependencies = [("calibration", "0004_analyticssnapshot_heartbeat_at")]

    operations = [migrations.RunPython(forwards, migrations.RunPython.noop)]
