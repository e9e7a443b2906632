"""python manage.py seed_demo: a demo project with users of every role and items to label."""
from __future__ import annotations

from pathlib import Path

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from rest_framework.authtoken.models import Token

from annotation.models import Project, Role
from annotation.services.imports import import_file
from annotation.services.projects import membership_add, project_create

DEMO_PASSWORD = "demo-pass-123"
DEMO_USERS = [
    ("admin", None),
    ("lead", Role.LEAD),
    ("engineer", Role.ENGINEER),
    ("annotator1", Role.ANNOTATOR),
    ("annotator2", Role.ANNOTATOR),
    ("annotator3", Role.ANNOTATOR),
]
FIXTURE = Path(__file__).resolve().parents[2] / "fixtures" / "demo_items.jsonl"
SPEC = """# Helpful assistant: behaviour spec

**Prefer** the response that answers the question that was asked, correctly and safely.

1. *Accuracy first.* A confident wrong answer is worse than a hedged right one.
2. *Length is not quality.* Do not prefer the longer answer unless the extra text helps.
3. *Safety.* Refuse clearly harmful requests briefly and offer a safe alternative.
4. *Tone.* Plain, respectful, no flattery of the user.

Mark **both bad** when neither response is acceptable to ship.
"""


class Command(BaseCommand):
    help = "Create the demo project, users (password: %s) and items; safe to run twice." % DEMO_PASSWORD

    def handle(self, *args, **options):
        User = get_user_model()
        project = Project.objects.filter(slug="demo").first()
        if project is None:
            project = project_create(
                slug="demo",
                name="Demo: helpful assistant",
                spec_text=SPEC,
                overlap=3,
                min_rationale_chars=15,
            )
            result = import_file(project=project, path=FIXTURE)
            self.stdout.write(f"Imported {result.items_created} demo items.")
        for username, role in DEMO_USERS:
            user, created = User.objects.get_or_create(username=username)
            if created:
                user.set_password(DEMO_PASSWORD)
                user.is_superuser = user.is_staff = role is None
                user.save()
            if role:
                membership_add(project=project, user=user, role=role)
            Token.objects.get_or_create(user=user)
        self.stdout.write("Demo logins (password %s): %s" % (DEMO_PASSWORD, ", ".join(u for u, _ in DEMO_USERS)))
