from __future__ import annotations

import pytest

from annotation.models import Role
from tests.factories import ItemFactory, ProjectFactory, make_anchor, member


@pytest.fixture
def calibrated_project(db):
    """A project with 8 live items, a calibration set of 4 clear-cut anchors (expert sides mixed)
    and 6 hidden anchors."""
    project = ProjectFactory()
    ItemFactory.create_batch(8, project=project)
    in_set = [make_anchor(project, in_set=True, choice=c) for c in ("a", "b", "a", "b")]
    hidden = [make_anchor(project, choice=c) for c in ("a", "b", "a", "b", "a", "b")]
    return project, in_set, hidden


@pytest.fixture
def newcomer(calibrated_project):
    return member(calibrated_project[0], Role.ANNOTATOR)


@pytest.fixture
def calib_lead(calibrated_project):
    return member(calibrated_project[0], Role.LEAD)
