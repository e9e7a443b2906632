from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from annotation.models import Role

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
