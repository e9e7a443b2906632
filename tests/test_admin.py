"""Every model the admin lists opens for a superuser and is refused to staff-less members; the
audit-only ones (calibration, runs, sets) offer no add, change or delete."""
from __future__ import annotations

import pytest
from django.contrib import admin
from django.contrib.auth import get_user_model
from django.test import Client

from tests.factories import ProjectFactory, member

pytestmark = pytest.mark.django_db


def test_every_registered_model_opens_for_a_superuser_and_not_for_a_lead():
    superuser = get_user_model().objects.create_superuser("root-admin", "r@example.com", "pw-12345678-long")
    lead = member(ProjectFactory(), "lead")
    root, other = Client(), Client()
    root.force_login(superuser)
    other.force_login(lead)
    models = list(admin.site._registry)
    assert {m._meta.label for m in models} >= {"calibration.Anchor", "calibration.Standing", "training.Run",
                                               "rewards.PreferenceSet", "annotation.ApiToken"}
    for model in models:
        url = f"/admin/{model._meta.app_label}/{model._meta.model_name}/"
        assert root.get(url).status_code == 200, url
        assert other.get(url).status_code == 302, url  # to the admin login: not staff


@pytest.mark.parametrize("label", ["calibration.Anchor", "calibration.AnchorResult", "training.Run"])
def test_audit_models_cannot_be_added_changed_or_deleted(label, rf):
    model = next(m for m in admin.site._registry if m._meta.label == label)
    request = rf.get("/")
    request.user = get_user_model()(is_superuser=True, is_staff=True)
    model_admin = admin.site._registry[model]
    assert not model_admin.has_add_permission(request)
    assert not model_admin.has_change_permission(request)
    assert not model_admin.has_delete_permission(request)
