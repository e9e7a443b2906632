# The two commands: `make run` (embedded default: SQLite, no services) and `make test` (everything,
# against real PostgreSQL, Redis, a Celery worker and headless Chromium, installed when missing).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
LOCK := requirements/constraints.txt

.PHONY: run test venv venv-test services-up services-down bench screenshots clean

# Every install takes its versions from the lock requirements/constraints.txt (pyproject.toml keeps
# the ranges for users); refresh it with `bash scripts/lock.sh`. A new lock reinstalls both targets.
$(VENV)/.web: pyproject.toml $(LOCK)
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q -c $(LOCK) -e .
	touch $@

# torch is pinned to the CPU build that lies on disk before the `train` extra is resolved: a bare
# `torch` requirement would otherwise pull a multi-GB CUDA build.
$(VENV)/.test: pyproject.toml $(LOCK) $(VENV)/.web
	$(PIP) install -q -c $(LOCK) "torch==2.13.0"
	$(PIP) install -q -c $(LOCK) -e ".[train,dev]"
	touch $@

venv: $(VENV)/.web
venv-test: $(VENV)/.test

run: venv
	bash scripts/run.sh

test: venv-test
	bash scripts/test.sh

services-up:
	bash scripts/services.sh up

services-down:
	bash scripts/services.sh down

bench: venv-test
	bash scripts/services.sh up && source var/services.env && $(PY) bench/annotate_load.py

# Every page, for every role, at desktop (1280 px) and phone (390 px) width, into var/screenshots/
# (the accessibility walk of tests/frontend/test_accessibility_browser.py, saving as it goes).
screenshots: venv-test
	PREFSTUDIO_SCREENSHOTS=$(CURDIR)/var/screenshots bash scripts/test.sh -n 0 tests/frontend/test_accessibility_browser.py

clean:
	rm -rf $(VENV) var staticfiles
