"""Model output is untrusted: it renders as inert text, never as live HTML."""
from __future__ import annotations

import pytest
from django.test import Client

from annotation.models import Response
from annotation.services.projects import spec_publish
from tests.factories import ItemFactory, member

pytestmark = pytest.mark.django_db

HOSTILE = [
    "<script>window.__xss = 1</script>",
    '<img src=x onerror="window.__xss = 2">',
    '"><svg onload=alert(3)>',
]


def test_hostile_prompt_and_responses_render_escaped(project):
    item = ItemFactory(project=project)
    Response.objects.filter(pk=item.response_a_id).update(text=HOSTILE[0] + HOSTILE[2])
    Response.objects.filter(pk=item.response_b_id).update(text=HOSTILE[1])
    item.prompt.messages = [{"role": "user", "content": HOSTILE[1]}]
    item.prompt.save()
    client = Client()
    client.force_login(member(project))
    html = client.post(f"/p/{project.slug}/label/next/").content.decode()
    assert "<script>window" not in html and "<img src=x" not in html and "<svg" not in html
    assert "&lt;script&gt;window.__xss = 1&lt;/script&gt;" in html
    assert "&lt;img src=x onerror=&quot;window.__xss = 2&quot;&gt;" in html


def test_behaviour_spec_markdown_is_sanitised(project):
    spec_publish(project=project, text="# Rules\n\n**bold** <script>alert(1)</script> <a href=\"javascript:alert(2)\" onclick=\"x()\">link</a>")
    client = Client()
    client.force_login(member(project))
    html = client.get(f"/p/{project.slug}/label/").content.decode()
    assert "<strong>bold</strong>" in html
    assert "<script>alert" not in html and "javascript:" not in html and "onclick" not in html
