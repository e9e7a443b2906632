"""The suite's one permission matrix: the people of a project by role, the usual refusal tables,
and checks that call an endpoint or page as each refused person and list every status that is not
the expected one (an empty list is a pass, and the failure message names every mismatch)."""
from __future__ import annotations

from django.test import Client
from rest_framework.test import APIClient

from annotation.models import Project, Role
from tests.factories import ProjectFactory, api_as, member

# API: who is refused, and how. Leads and engineers read; annotators never; outsiders learn nothing.
READERS = {"anonymous": 401, "outsider": 404, "annotator": 403}
ENGINEERS = {**READERS, "lead": 403}
LEADS_ONLY = {**READERS, "engineer": 403}
# Pages: anonymous people are sent to the login page.
LEAD_PAGE = {"anonymous": 302, "annotator": 403, "engineer": 403, "outsider": 404}
ANALYST_PAGE = {"anonymous": 302, "annotator": 403, "outsider": 404}


def people_of(project: Project, *, outsider_role: str = Role.LEAD, **more: str) -> dict:
    """An annotator, a lead and an engineer of `project`, an `outsider` (with `outsider_role` in
    another project) and any `more` (name -> role) of this one."""
    people = {role: member(project, role) for role in (Role.ANNOTATOR, Role.LEAD, Role.ENGINEER)}
    people["outsider"] = member(ProjectFactory(), outsider_role)
    people.update({name: member(project, role) for name, role in more.items()})
    return people


def _api_client(people: dict, who: str) -> APIClient:
    return APIClient() if who == "anonymous" else api_as(people[who])


def _page_client(people: dict, who: str) -> Client:
    client = Client()
    if who != "anonymous":
        client.force_login(people[who])
    return client


def api_mismatches(people: dict, method: str, url: str, expected: dict[str, int], body=None) -> list[str]:
    """Call the API as each person in `expected`; every answer that is not the expected status."""
    out = []
    for who, status in expected.items():
        response = getattr(_api_client(people, who), method)(url, {} if body is None else body, format="json")
        if response.status_code != status:
            out.append(f"{who} {method.upper()} {url}: {response.status_code}, expected {status}")
    return out


def page_mismatches(people: dict, method: str, url: str, expected: dict[str, int], data=None) -> list[str]:
    """Open (get) or post to a page as each person in `expected`; every answer that is not the
    expected status, and any 302 that does not lead to the login page."""
    out = []
    for who, status in expected.items():
        client = _page_client(people, who)
        response = client.get(url) if method == "get" else client.post(url, data or {})
        if response.status_code != status:
            out.append(f"{who} {method.upper()} {url}: {response.status_code}, expected {status}")
        elif status == 302 and who == "anonymous" and "/accounts/login/" not in response["Location"]:
            out.append(f"{who} {method.upper()} {url}: redirected to {response['Location']}, not the login page")
    return out
