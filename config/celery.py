"""The Celery app. Queues: `default` (CPU work) and `gpu` (training, concurrency 1)."""
import os
from pathlib import Path

from celery import Celery, signals

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.production")

app = Celery("preference_studio")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

_FOLDER_OPTIONS = ("data_folder_in", "data_folder_out", "processed_folder", "control_folder")
_folders_made = False


@signals.worker_init.connect
@signals.before_task_publish.connect
def broker_folders_make(**_) -> None:
    """The embedded filesystem broker (`make run`) needs its folders before the first message is
    read or written; made here, once per process, rather than when settings are imported."""
    global _folders_made
    if _folders_made:
        return
    options = app.conf.broker_transport_options or {}
    for key in _FOLDER_OPTIONS:
        if options.get(key):
            Path(options[key]).mkdir(parents=True, exist_ok=True)
    _folders_made = True
