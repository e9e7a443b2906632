"""The candidate query is compiled once per shape with stand-in ids, then bound to the real ones
(annotation.services.routing.candidate_sql). It must be exactly what a fresh compile for the real
project and annotator gives, for every shape the queue uses, and a cached shape must never carry
one project's or annotator's ids into another's query."""
from __future__ import annotations

import pytest

from annotation.models import ItemKind, Role
from annotation.services import routing
from annotation.services.queue import queue_next
from calibration.services.queue import QUEUE_HOOKS
from tests.factories import ItemFactory, ProjectFactory, make_anchor, member

pytestmark = pytest.mark.django_db

SHAPES = [
    {"held_out": False, "narrow": None, "kind": ""},
    {"held_out": False, "narrow": QUEUE_HOOKS.narrow, "kind": ""},
    {"held_out": False, "narrow": QUEUE_HOOKS.narrow, "kind": ItemKind.COMPARISON},
    {"held_out": True, "narrow": QUEUE_HOOKS.narrow, "kind": ""},
]


@pytest.mark.parametrize("skill_domains", [[], ["legal", "Medical "]])
@pytest.mark.parametrize("shape", SHAPES)
def test_the_bound_shape_equals_a_fresh_compile(shape, skill_domains):
    first, second = ProjectFactory(skill_domains=skill_domains), ProjectFactory(skill_domains=skill_domains)
    people = [member(first, Role.ANNOTATOR), member(second, Role.ANNOTATOR)]
    routing._compiled.clear()
    for project, annotator in [(first, people[0]), (second, people[1]), (first, people[1])]:
        bound = routing.candidate_sql(project=project, annotator=annotator, **shape)
        fresh = routing._compile_candidates(project=project, annotator=annotator, **shape)
        assert bound == (fresh[0], list(fresh[1]))
        assert routing._PROJECT_ID not in bound[1] and routing._ANNOTATOR_ID not in bound[1]
    assert len(routing._compiled) == 1, "one shape, compiled once"


def test_two_projects_served_one_after_the_other_get_their_own_items():
    """Through the real queue: a cached shape from one project never leases another's item."""
    one, two = ProjectFactory(), ProjectFactory()
    ItemFactory.create_batch(3, project=one)
    ItemFactory.create_batch(3, project=two)
    make_anchor(one)
    first, second = member(one), member(two)
    for _ in range(3):
        assert queue_next(project=one, annotator=first).item.project_id == one.pk
        assert queue_next(project=two, annotator=second).item.project_id == two.pk
        for annotator, project in ((first, one), (second, two)):
            held = routing.assignment_held(project=project, annotator=annotator, now=routing.timezone.now())
            held.status = "expired"  # free the slot without judging, so the next call leases anew
            held.save(update_fields=["status"])


def test_the_claim_statement_is_bound_to_each_caller():
    """The submit's claim is compiled once per shape too (annotation.services.work): each
    annotator gets their own assignment, by handle or by id, with its project, item and the gates'
    reads; someone else's handle or id finds nothing."""
    from django.db import transaction

    from annotation.services import work

    one, two = ProjectFactory(), ProjectFactory()
    ItemFactory.create_batch(2, project=one)
    ItemFactory.create_batch(2, project=two)
    first, second = member(one), member(two)
    leases = {first: queue_next(project=one, annotator=first), second: queue_next(project=two, annotator=second)}
    work._claim_shapes.clear()
    with transaction.atomic():
        for annotator, lease in leases.items():
            for by in ({"handle": lease.handle, "assignment_id": None}, {"handle": None, "assignment_id": lease.pk}):
                claimed = work._claim_row(annotator=annotator, **by)
                assert claimed.pk == lease.pk and claimed.item_id == lease.item_id
                assert claimed.project.pk == lease.project_id and claimed.item.kind == "comparison"
                assert claimed.project.current_spec is not None and claimed.still_member is True
                assert claimed.claim_known["standing_state"] == "active" and claimed.claim_known["anchor_id"] is None
        assert work._claim_row(annotator=first, handle=leases[second].handle, assignment_id=None) is None
        assert work._claim_row(annotator=first, handle=None, assignment_id=leases[second].pk) is None
    assert len(work._claim_shapes) == 2, "two shapes (by handle, by id), each compiled once"


def test_a_page_request_users_lazy_wrapper_claims_like_the_user():
    """A page's request.user is a SimpleLazyObject (session auth), not the user model."""
    from django.db import transaction
    from django.utils.functional import SimpleLazyObject

    from annotation.services import work

    project = ProjectFactory()
    ItemFactory.create_batch(1, project=project)
    annotator = member(project)
    lease = queue_next(project=project, annotator=SimpleLazyObject(lambda: annotator))
    work._claim_shapes.clear()
    with transaction.atomic():
        claimed = work._claim_row(annotator=SimpleLazyObject(lambda: annotator), handle=lease.handle, assignment_id=None)
    assert claimed.pk == lease.pk


def test_the_shared_assignment_serializer_gives_what_a_fresh_one_gives_for_every_kind():
    """annotation.api serialises every next with one AssignmentOutput instance: for every item kind
    its output must equal a fresh serializer's, and the API must send exactly that."""
    import json

    from annotation import selectors, serializers
    from annotation.api import _ASSIGNMENT_OUTPUT
    from annotation.models import Assignment
    from tests.factories import adversarial_line, api_as, bad_case_line, import_lines, ranking_line

    project = ProjectFactory(overlap=1)
    ItemFactory(project=project)
    import_lines(project, [ranking_line("Order these", 4), bad_case_line("Fix it", "A bad answer"),
                           adversarial_line("Be wrong", "A good answer")])
    annotator = member(project, Role.ANNOTATOR)
    client = api_as(annotator)
    kinds = set()
    while (answer := client.post(f"/api/projects/{project.slug}/next/")).status_code == 200:
        assignment = Assignment.objects.get(handle=answer.json()["assignment"])
        payload = selectors.assignment_payload(assignment=assignment)
        shared = _ASSIGNMENT_OUTPUT.to_representation(payload)
        assert shared == serializers.AssignmentOutput(payload).data
        assert answer.json() == json.loads(json.dumps(shared))
        kinds.add(shared["kind"])
        client.post(f"/api/assignments/{assignment.handle}/skip/")
    assert answer.status_code == 204
    assert kinds == {ItemKind.COMPARISON, ItemKind.RANKING, ItemKind.REWRITE, ItemKind.ADVERSARIAL}


BODIES = [
    {"choice": "left", "strength": "clear", "rationale": "Left is right.", "client_token": "2b7f3c1e-8f0a-4c55-9d8e-3f1c2a4b5d6e"},
    {"choice": "tie", "rationale": "", "time_spent_ms": "1500", "dimensions": {"accuracy": "right"},
     "client_token": "2b7f3c1e-8f0a-4c55-9d8e-3f1c2a4b5d6e"},
    {"choice": "up", "strength": 3, "dimensions": {"accuracy": "sideways"}, "rationale": None,
     "time_spent_ms": -1, "client_token": "not-a-uuid"},
    {"choice": ["left"], "dimensions": [], "time_spent_ms": 10**12},
    {},
    [],
    "left",
    None,
]


@pytest.mark.parametrize("body", BODIES)
def test_the_shared_submit_validator_gives_what_a_fresh_one_gives(body):
    """annotation.api validates every submit with one SubmitInput instance: it must accept exactly
    what a fresh serializer accepts, with the same validated data, and using it must leave nothing
    behind that changes the next call (every body is checked again after all the others). Errors
    come from a fresh serializer (they are rare, and it rewords a missing body)."""
    from rest_framework.exceptions import ValidationError

    from annotation import serializers
    from annotation.api import _SUBMIT_INPUT

    def shared(data):
        try:
            return "valid", _SUBMIT_INPUT.run_validation(data)
        except ValidationError:
            return "errors", None

    def fresh(data):
        serializer = serializers.SubmitInput(data=data)
        return ("valid", serializer.validated_data) if serializer.is_valid() else ("errors", None)

    outcomes = [shared(data) == fresh(data) for data in (body, *BODIES, body)]
    assert all(outcomes)
    assert shared(body)[0] == ("valid" if body in BODIES[:2] else "errors")


def test_the_shared_serializers_give_each_thread_its_own_answer_under_concurrency():
    """Eight threads validate and serialise different bodies through the one shared instance at
    once; every answer is the one a fresh serializer gives for that thread's own body."""
    import threading
    from datetime import datetime, timezone

    from rest_framework.exceptions import ValidationError

    from annotation import serializers
    from annotation.api import _ASSIGNMENT_OUTPUT, _SUBMIT_INPUT

    def payload(n: int) -> dict:
        return {"kind": "comparison", "assignment": f"handle-{n}", "prompt": [{"role": "user", "content": f"q{n}"}],
                "lease_expires_at": datetime(2026, 1, 1, n % 24, tzinfo=timezone.utc),
                "left": {"text": f"left {n}"}, "right": {"text": f"right {n}"}}

    wrong: list[str] = []

    def work(n: int) -> None:
        body = BODIES[n % len(BODIES)]
        fresh = serializers.SubmitInput(data=body)
        expected = fresh.validated_data if fresh.is_valid() else None
        shown = serializers.AssignmentOutput(payload(n)).data
        for _ in range(300):
            try:
                got = _SUBMIT_INPUT.run_validation(body)
            except ValidationError:
                got = None
            if got != expected or _ASSIGNMENT_OUTPUT.to_representation(payload(n)) != shown:
                wrong.append(f"thread {n}")
                return

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert wrong == []
