from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from rest_framework.test import APIClient

from annotation.models import Role
from annotation.services.judgments import JudgmentInput

from .factories import ItemFactory, ProjectFactory, member


@pytest.fixture
def project(db):
    return ProjectFactory()


@pytest.fixture
def items(project):
    return ItemFactory.create_batch(5, project=project)


@pytest.fixture
def annotator(project):
    return member(project, Role.ANNOTATOR)


@pytest.fixture
def lead(project):
    return member(project, Role.LEAD)


@pytest.fixture
def engineer(project):
    return member(project, Role.ENGINEER)


@pytest.fixture
def api():
    return APIClient()


def api_as(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


def good_input(choice: str = "left", strength: str = "clear", **kw) -> JudgmentInput:
    return JudgmentInput(
        choice=choice,
        strength=strength if choice in ("left", "right") else "",
        rationale=kw.pop("rationale", "Left is accurate and concise."),
        **kw,
    )


def submit_payload(choice: str = "left", strength: str = "clear", **kw) -> dict:
    return {
        "choice": choice,
        "strength": strength if choice in ("left", "right") else "",
        "rationale": "A reason that is long enough.",
        "time_spent_ms": 4200,
        "client_token": str(uuid.uuid4()),
        **kw,
    }


@contextmanager
def celery_worker(settings) -> Iterator[None]:
    """A real Celery worker in this process on the real Redis broker, consuming this xdist
    process's own queue (config/settings/test.py), emptied of anything an earlier run left."""
    from celery.contrib.testing.worker import start_worker

    from config.celery import app

    assert settings.CELERY_BROKER_URL.startswith("redis://"), "tests use the real Redis broker"
    app.conf.broker_url = settings.CELERY_BROKER_URL
    app.control.purge()
    with start_worker(app, perform_ping_check=False, pool="solo", concurrency=1, loglevel="WARNING"):
        yield
