#!/usr/bin/env bash
# make run: migrate, seed the demo project, start a Celery worker (filesystem broker) and serve.
set -euo pipefail
cd "$(dirname "$0")/.."
export DJANGO_SETTINGS_MODULE=config.settings.local
PY=.venv/bin/python
mkdir -p var
$PY manage.py migrate --noinput -v0
$PY manage.py seed_demo
# -B: the same process runs the periodic tasks (stale leases, and the reapers that fail a job or run
# whose worker died, or send again a queued one whose message was lost).
$PY -m celery -A config worker -B -s var/celerybeat-schedule -Q default,gpu,scoring --pool=solo --loglevel=warning >var/worker.log 2>&1 &
worker=$!
trap 'kill $worker 2>/dev/null || true' EXIT
cat <<TXT

  Preference Studio is serving on http://127.0.0.1:${PORT:-8000}
  Log in as annotator1 (labelling), lead (overview, import), engineer (export) or admin;
  every demo password is demo-pass-123.  API docs: http://127.0.0.1:${PORT:-8000}/api/docs/
  Background worker log: var/worker.log

TXT
$PY manage.py runserver "127.0.0.1:${PORT:-8000}"
