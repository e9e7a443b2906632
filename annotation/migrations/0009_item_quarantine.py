from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("annotation", "0008_importjob_heartbeat_at")]

    operations = [
        migrations.AlterField(
            model_name="item",
            name="status",
            field=models.CharField(
                choices=[("active", "Active"), ("paused", "Paused"), ("quarantined", "Quarantined")],
                default="active", max_length=16,
            ),
        ),
        migrations.AddField(
            model_name="item",
            name="quarantine_reason",
            field=models.TextField(blank=True, help_text="Why it could not be shown (quarantined items)."),
        ),
    ]
