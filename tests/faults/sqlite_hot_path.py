"""Run by tests/faults/test_sqlite_hot_path.py in a process of its own on a fresh SQLite database
(the embedded default): the annotator's loop through the whole stack, API and page. Prints JSON."""
from __future__ import annotations

import json
import uuid

import django

django.setup()

from django.conf import settings  # noqa: E402
from django.contrib.auth import get_user_model  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.test import Client  # noqa: E402

from annotation.models import Judgment  # noqa: E402
from annotation.services.projects import membership_add, project_create  # noqa: E402
from annotation.services.tokens import token_issue  # noqa: E402
from tests.factories import import_lines, make_anchor  # noqa: E402

call_command("migrate", verbosity=0)
settings.ALLOWED_HOSTS = ["*"]
project = project_create(slug="embedded", name="Embedded", spec_text="# Spec", overlap=2, min_rationale_chars=5)
import_lines(project, [{"prompt": f"Question {i}?", "responses": [f"a{i}", f"b{i}"]} for i in range(6)])
make_anchor(project)
annotator = get_user_model().objects.create_user("embedded-annotator", password="pw-12345678")
membership_add(project=project, user=annotator, role="annotator")
_, secret = token_issue(user=annotator, name="embedded")
api = Client(HTTP_AUTHORIZATION=f"Token {secret}")
statuses = []
for _ in range(3):
    served = api.post("/api/projects/embedded/next/")
    statuses.append(served.status_code)
    answer = api.post(f"/api/assignments/{served.json()['assignment']}/submit/",
                      {"choice": "left", "strength": "clear", "rationale": "Left is right.",
                       "client_token": str(uuid.uuid4())}, content_type="application/json")
    statuses.append(answer.status_code)
page = Client()
page.force_login(annotator)
first = page.post("/p/embedded/label/next/", HTTP_HX_REQUEST="true")
statuses.append(first.status_code)
print(json.dumps({"statuses": statuses, "judgments": Judgment.objects.count(), "page_has_form": "judgment-form" in
                  first.content.decode()}))
