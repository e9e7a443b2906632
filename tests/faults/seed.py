"""Seeds the private database of a fault test (run as `python -m tests.faults.seed`, with
DATABASE_URL pointing at it): a project with items, annotators with API tokens and a lead with a
logged-in session. Prints what the test needs as JSON."""
from __future__ import annotations

import json
import os
import sys

import django


def main(items: int, annotators: int, overlap: int) -> dict:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.test")
    django.setup()
    from django.conf import settings
    from django.test import Client
    from annotation.services.tokens import token_issue

    from annotation.models import Role
    from tests.factories import ItemFactory, ProjectFactory, member

    project = ProjectFactory(overlap=overlap)
    ItemFactory.create_batch(items, project=project)
    tokens = [token_issue(user=member(project))[1] for _ in range(annotators)]
    lead = member(project, Role.LEAD)
    client = Client()
    client.force_login(lead)
    return {"slug": project.slug, "tokens": tokens, "lead_token": token_issue(user=lead)[1],
            "lead_cookie": f"{settings.SESSION_COOKIE_NAME}={client.cookies[settings.SESSION_COOKIE_NAME].value}"}


if __name__ == "__main__":
    print(json.dumps(main(*(int(a) for a in sys.argv[1:4]))))
