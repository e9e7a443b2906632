"""The Celery app. Queues: `default` (CPU work) and `gpu` (training, concurrency 1)."""
import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.production")

app = Celery("preference_studio")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
