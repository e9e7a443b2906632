#!/usr/bin/env bash
# make test: start PostgreSQL and Redis (installing them and Chromium when missing), run the
# whole suite against them, stop them again.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/services.sh up
trap 'bash scripts/services.sh down' EXIT
source var/services.env
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_DATASETS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
.venv/bin/python -m pytest -n "${PYTEST_WORKERS:-2}" --dist loadgroup "$@"
