#!/usr/bin/env bash
# Refresh requirements/constraints.txt, the lock that `make run`, `make test` and the Dockerfile
# install with (`pip install -c requirements/constraints.txt ...`). pyproject.toml keeps the ranges
# for users; this file pins one tested version of every dependency of every extra (web + train + dev).
#
#   bash scripts/lock.sh                          # add/drop what pyproject.toml changed, keep other pins
#   bash scripts/lock.sh --upgrade                # move every pin to the newest release pyproject allows
#   bash scripts/lock.sh --upgrade-package trl    # move one package (repeatable; `trl==1.17.0` works too)
#
# Any extra argument goes to pip-compile. torch stays at requirements/pins.in. The tool (pip-tools,
# pinned below) lives in a throwaway venv under /tmp, never in .venv. Resolve on Linux x86-64 with
# Python 3.11 (what the Dockerfile and CI use): pip-compile resolves for the interpreter it runs on.
# Then `make test` reinstalls .venv from the new lock (the targets depend on the file).
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
PIP_TOOLS_VERSION=7.7.0
OUT=requirements/constraints.txt

"$PYTHON" - <<'PY'
import platform, sys
if sys.version_info[:2] != (3, 11) or platform.system() != "Linux" or platform.machine() != "x86_64":
    sys.exit(f"lock.sh: resolve with CPython 3.11 on Linux x86_64 (got {platform.python_version()} "
             f"on {platform.system()} {platform.machine()}); set PYTHON=/path/to/python3.11")
PY

tool=$(mktemp -d /tmp/preference-studio-lock.XXXXXX)
trap 'rm -rf "$tool"' EXIT
"$PYTHON" -m venv "$tool/venv"
"$tool/venv/bin/pip" install -q --upgrade pip "pip-tools==$PIP_TOOLS_VERSION"

CUSTOM_COMPILE_COMMAND="bash scripts/lock.sh" "$tool/venv/bin/pip-compile" \
    --quiet \
    --all-extras \
    --strip-extras \
    --allow-unsafe \
    --no-emit-index-url \
    --no-emit-trusted-host \
    --no-emit-find-links \
    --constraint requirements/pins.in \
    --output-file "$OUT" \
    "$@" \
    pyproject.toml

# A local build label (torch 2.13.0+cpu, found on this machine's disk) would fail where that wheel
# is absent (the Docker image): keep the public version, which pip still satisfies with the local
# CPU wheel here (it sorts above PyPI's build of the same version).
sed -i -E 's/^([A-Za-z0-9._-]+==[^ +;#]+)\+[A-Za-z0-9.]+/\1/' "$OUT"

if grep -qiE '^(nvidia-|triton==)' "$OUT"; then
    echo "lock.sh: $OUT pins CUDA packages (nvidia-*/triton): torch resolved to a CUDA build" >&2
    exit 1
fi
echo "lock.sh: wrote $OUT ($(grep -cE '^[A-Za-z0-9]' "$OUT") pins)"
