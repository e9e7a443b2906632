"""Defence in depth: an item that cannot be shown (data that got past validation by another path,
or changed under the item) never blocks the queue. The annotator gets the next item, through the page and the API; the item
is quarantined with its reason and the lead sees it; it does not come back after a lease."""
from __future__ import annotations

import pytest
from django.test import Client

from annotation.models import Assignment, Item, ItemStatus, Response, Role
from annotation.services.queue import queue_next
from tests.factories import ItemFactory, ProjectFactory, api_as, import_lines, member, ranking_line

pytestmark = pytest.mark.django_db

def _world():
    """A ranking the annotator holds, then one of its responses deleted (a lead removing a bad
    response by another path): the held lease's shown order now names a response that is gone."""
    project = ProjectFactory(overlap=1)
    import_lines(project, [ranking_line("Rank these answers", 3)])
    ranking = Item.objects.get(project=project, kind="ranking")
    Item.objects.filter(pk=ranking.pk).update(priority=10)  # served first
    good = ItemFactory(project=project)
    annotator = member(project)
    held = queue_next(project=project, annotator=annotator)
    assert held.item_id == ranking.pk
    Response.objects.filter(pk=held.shown_order[1]).delete()
    return project, ranking, good, annotator


def test_the_page_serves_the_next_item_and_quarantines_the_broken_one():
    project, broken, good, annotator = _world()
    client = Client()
    client.force_login(annotator)
    response = client.post(f"/p/{project.slug}/label/next/")
    assert response.status_code == 200
    assert good.response_a.text in response.content.decode()
    broken.refresh_from_db()
    assert broken.status == ItemStatus.QUARANTINED
    assert "KeyError" in broken.quarantine_reason
    # The annotator holds no trace of it, and it is out of the queue for everyone, even after
    # the lease would have expired.
    assert not Assignment.objects.filter(item=broken).exists() and broken.assigned_count == 0
    other = member(project)
    assert api_as(other).post(f"/api/projects/{project.slug}/next/").status_code == 204


def test_the_api_serves_the_next_item_and_the_lead_sees_the_reason():
    project, broken, good, annotator = _world()
    response = api_as(annotator).post(f"/api/projects/{project.slug}/next/")
    assert response.status_code == 200
    assert {response.json()["left"]["text"], response.json()["right"]["text"]} == {
        good.response_a.text, good.response_b.text}
    lead = member(project, Role.LEAD)
    client = Client()
    client.force_login(lead)
    page = client.get(f"/p/{project.slug}/items/")
    assert page.status_code == 200
    html = page.content.decode()
    assert f'id="item-{broken.pk}"' in html and "Quarantined" in html and "KeyError" in html


def test_text_the_lead_inspects_is_always_displayable():
    from annotation.services.quarantine import text_displayable

    assert text_displayable("a\ud800b\x00c\udfff") == "a\ufffdbc\ufffd"
    text_displayable("a\ud800b").encode("utf-8")
