"""Importing judgments made elsewhere: our JSONL on items by external id, preference files
(prompt/chosen/rejected, TRL's conversational shape, Anthropic HH transcripts) and a Label Studio
pairwise JSON export; all or nothing with every problem by line or task; idempotent on re-run;
annotators created as imported members who cannot log in; the REST import and who may not call it;
and judgments without a known side left out of the position analysis."""
from __future__ import annotations

import io
import json

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.core.files.uploadedfile import SimpleUploadedFile

from annotation.models import Assignment, ImportedAnnotator, Item, Judgment, Membership, Role
from annotation.services.judgment_imports import judgments_import
from tests.factories import ProjectFactory, api_as, import_lines, member

pytestmark = pytest.mark.django_db


def _jsonl(rows) -> io.BytesIO:
    return io.BytesIO("".join(json.dumps(r) + "\n" for r in rows).encode())


def _project_with_items(n: int = 3):
    project = ProjectFactory()
    import_lines(project, [{"prompt": f"Q{i}?", "responses": [f"first {i}", f"second {i}"], "external_id": f"q{i}"}
                           for i in range(n)])
    return project


OURS = [
    {"annotator": "alice", "item": "q0", "choice": "a", "strength": "clear", "shown_left": "b", "seconds": 12.5,
     "rationale": "First is right.", "time": "2026-03-01T10:00:00Z"},
    {"annotator": "alice", "item": "q1", "choice": "right", "shown_left": "a", "strength": "slight"},
    {"annotator": "bob", "item": "q0", "choice": "tie"},
    {"annotator": 42, "item": "q2", "choice": "both_bad", "rationale": "Neither answers."},
]


def test_our_jsonl_imports_judgments_on_items_by_external_id():
    project = _project_with_items()
    result = judgments_import(project=project, fh=_jsonl(OURS))
    assert result.ok, result.errors
    assert (result.created, result.annotators_created, result.items_created) == (4, 3, 0)
    alice = ImportedAnnotator.objects.get(project=project, name="alice").user
    first = Judgment.objects.get(annotator=alice, item__prompt__external_id="q0")
    assert (first.choice, first.strength, first.shown_left, first.time_spent_ms) == ("a", "clear", "b", 12_500)
    assert first.created_at.isoformat().startswith("2026-03-01T10:00:00")
    # "right" with a on the left is b.
    assert Judgment.objects.get(annotator=alice, item__prompt__external_id="q1").choice == "b"
    assert Assignment.objects.filter(project=project, status="submitted").count() == 4
    assert Item.objects.get(prompt__external_id="q0").judgment_count == 2
    # Imported annotators: members with the annotator role, marked, who cannot log in.
    membership = Membership.objects.get(project=project, user=alice)
    assert membership.role == Role.ANNOTATOR and membership.imported and not alice.has_usable_password()
    assert ImportedAnnotator.objects.get(project=project, name="42").user.username == f"42@{project.slug}"


def test_a_rerun_imports_nothing_twice_and_a_changed_answer_is_refused_whole():
    project = _project_with_items()
    assert judgments_import(project=project, fh=_jsonl(OURS)).created == 4
    again = judgments_import(project=project, fh=_jsonl(OURS))
    assert again.ok and (again.created, again.unchanged, again.annotators_created) == (0, 4, 0)
    changed = [dict(OURS[0], choice="b"), {"annotator": "carol", "item": "q1", "choice": "a", "strength": "clear"}]
    refused = judgments_import(project=project, fh=_jsonl(changed))
    assert not refused.ok and refused.errors[0].startswith("line 1:") and "different judgment" in refused.errors[0]
    assert Judgment.objects.filter(project=project).count() == 4  # carol's good line was not written either
    assert not ImportedAnnotator.objects.filter(name="carol").exists()


def test_every_bad_line_is_reported_with_its_number_and_nothing_is_written():
    project = _project_with_items()
    lines = [
        OURS[0],
        {"annotator": "bob", "item": "nope", "choice": "a"},
        {"annotator": "bob", "item": "q1", "choice": "left"},
        {"annotator": "bob", "item": "q1", "choice": "tie", "strength": "clear"},
        {"annotator": "bob", "item": "q2", "choice": "a", "seconds": -1},
        {"annotator": "bob", "item": "q2", "choice": "a", "time": "yesterday"},
        {"annotator": "bob", "item": "q2", "choice": "a", "colour": "red"},
        {"annotator": "alice", "item": "q0", "choice": "b"},
        {"item": "q2", "choice": "a"},
    ]
    body = "".join(json.dumps(r) + "\n" for r in lines) + "{not json\n"
    result = judgments_import(project=project, fh=io.BytesIO(body.encode()))
    expected = {
        2: "no comparison item with external id 'nope'", 3: "needs 'shown_left'", 4: "'strength' goes with",
        5: "'seconds' must be", 6: "ISO 8601", 7: "unknown field(s): colour", 8: "judged this item already (line 1)",
        9: "missing 'annotator'", 10: "line 10:",
    }
    for line, text in expected.items():
        assert any(e.startswith(f"line {line}:") and text in e for e in result.errors), (line, result.errors)
    assert not any(e.startswith("line 1:") for e in result.errors)
    assert Judgment.objects.count() == 0 and ImportedAnnotator.objects.count() == 0


def test_preference_files_become_items_and_judgments_found_again_by_content():
    project = ProjectFactory()
    rows = [
        {"prompt": "Capital of France?", "chosen": "Paris.", "rejected": "Lyon.", "annotator_id": "w1"},
        {"prompt": "Capital of France?", "chosen": "Lyon.", "rejected": "Paris.", "worker_id": "w2"},
        # TRL's conversational shape: the answers carry the conversation.
        {"chosen": [{"role": "user", "content": "2+2?"}, {"role": "assistant", "content": "4"}],
         "rejected": [{"role": "user", "content": "2+2?"}, {"role": "assistant", "content": "5"}]},
        # Anthropic HH: whole transcripts, no prompt.
        {"chosen": "\n\nHuman: Hi there\n\nAssistant: Hello! How can I help?",
         "rejected": "\n\nHuman: Hi there\n\nAssistant: Go away."},
    ]
    result = judgments_import(project=project, fh=_jsonl(rows))
    assert result.ok, result.errors
    assert (result.created, result.items_created) == (4, 3)
    france = Item.objects.get(project=project, prompt__messages__icontains="France")
    assert {france.response_a.text, france.response_b.text} == {"Paris.", "Lyon."}
    choices = {j.annotator.imported_as.name: j for j in Judgment.objects.filter(item=france)}
    paris = "a" if france.response_a.text == "Paris." else "b"
    assert choices["w1"].choice == paris and choices["w2"].choice != paris
    assert choices["w1"].shown_left == ""  # not known
    hh = Item.objects.get(project=project, prompt__messages__icontains="Hi there")
    assert hh.prompt.messages == [{"role": "user", "content": "Hi there"}]
    assert {hh.response_a.text, hh.response_b.text} == {"Hello! How can I help?", "Go away."}
    unnamed = Judgment.objects.get(item__prompt__messages__icontains="2+2")
    assert unnamed.annotator.imported_as.name == "imported"
    # The same file again: the same items, nothing new.
    again = judgments_import(project=project, fh=_jsonl(rows))
    assert (again.created, again.unchanged, again.items_created) == (0, 4, 0)
    # A's chosen answer is not always response a: the order does not depend on the choice.
    assert {j.choice for j in Judgment.objects.filter(project=project)} >= {"a", "b"}


LABEL_STUDIO = [
    {"id": 11, "data": {"prompt": "Best greeting?", "text1": "Hello there.", "text2": "Yo."},
     "annotations": [
         {"completed_by": {"id": 3, "email": "ann@example.com"}, "lead_time": 7.5, "created_at": "2026-02-02T09:00:00.000000Z",
          "result": [{"type": "pairwise", "from_name": "pw", "to_name": ["text1", "text2"], "value": {"selected": "right"}}]},
         {"completed_by": 4, "was_cancelled": True, "result": []},
         {"completed_by": 5, "result": [{"type": "choices", "from_name": "c", "to_name": ["text1", "text2"],
                                         "value": {"choices": ["tie"]}}]},
     ]},
    {"id": 12, "data": {"question": "2+2?", "answer1": "4", "answer2": "22"},
     "annotations": [{"completed_by": 3, "result": [{"type": "choices", "value": {"choices": ["answer1"]}}]}]},
]


def test_a_label_studio_pairwise_export_is_read_with_its_sides_and_times():
    project = ProjectFactory()
    upload = io.BytesIO(json.dumps(LABEL_STUDIO).encode())
    result = judgments_import(project=project, fh=upload)
    assert result.ok, result.errors
    assert (result.created, result.items_created) == (3, 2)
    greeting = Item.objects.get(project=project, prompt__messages__icontains="greeting")
    assert (greeting.response_a.text, greeting.response_b.text) == ("Hello there.", "Yo.")  # first compared = a
    ann = ImportedAnnotator.objects.get(project=project, name="ann@example.com").user
    picked = Judgment.objects.get(item=greeting, annotator=ann)
    assert (picked.choice, picked.shown_left, picked.time_spent_ms) == ("b", "a", 7500)  # text1 was on the left
    assert picked.created_at.isoformat().startswith("2026-02-02T09:00:00")
    assert Judgment.objects.get(item=greeting, annotator__imported_as__name="5").choice == "tie"
    assert Judgment.objects.get(item__prompt__messages__icontains="2+2").choice == "a"
    bad = [{"id": 1, "data": {"prompt": "x"}, "annotations": [{"completed_by": 1, "result": []}]},
           {"id": 2, "data": {"prompt": "y", "text1": "p", "text2": "q"},
            "annotations": [{"completed_by": 1, "result": [{"type": "pairwise", "value": {"selected": "up"}}]}]}]
    refused = judgments_import(project=project, fh=io.BytesIO(json.dumps(bad).encode()))
    assert refused.errors[0].startswith("task 1 (id 1), annotation 1:") and "no two answers" in refused.errors[0]
    assert refused.errors[1].startswith("task 2 (id 2), annotation 1:") and "left or right" in refused.errors[1]
    assert Judgment.objects.filter(project=project).count() == 3


def test_the_command_imports_and_says_why_it_refuses(tmp_path):
    project = _project_with_items()
    good = tmp_path / "good.jsonl"
    good.write_text("".join(json.dumps(r) + "\n" for r in OURS))
    out = io.StringIO()
    call_command("import_judgments", str(good), project=project.slug, stdout=out)
    assert "Imported 4 judgments" in out.getvalue()
    out = io.StringIO()
    call_command("import_judgments", str(good), project=project.slug, stdout=out)
    assert "Imported 0 judgments" in out.getvalue() and "4 already there" in out.getvalue()
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"annotator": "z", "item": "missing", "choice": "a"}) + "\n")
    err = io.StringIO()
    with pytest.raises(CommandError, match="Nothing imported"):
        call_command("import_judgments", str(bad), project=project.slug, stderr=err)
    assert "line 1:" in err.getvalue()


def test_the_rest_import_for_leads_and_engineers_only():
    project = _project_with_items()
    url = f"/api/projects/{project.slug}/judgment-imports/"

    def upload(rows):
        return {"file": SimpleUploadedFile("j.jsonl", "".join(json.dumps(r) + "\n" for r in rows).encode())}

    for who, status in (("annotator", 403), ("outsider", 404)):
        user = member(project) if who == "annotator" else member(ProjectFactory())
        assert api_as(user).post(url, upload(OURS), format="multipart").status_code == status
    assert Judgment.objects.count() == 0
    lead = api_as(member(project, Role.LEAD))
    refused = lead.post(url, upload([{"annotator": "a", "item": "zz", "choice": "a"}]), format="multipart")
    assert refused.status_code == 422 and refused.json()["errors"][0].startswith("line 1:")
    created = lead.post(url, upload(OURS), format="multipart")
    assert created.status_code == 201 and created.json()["created"] == 4
    engineer = api_as(member(project, Role.ENGINEER))
    assert engineer.post(url, upload(OURS), format="multipart").json()["unchanged"] == 4


def _position_flagged(project, name: str) -> bool:
    from calibration.services.analytics import analytics_compute

    payload = analytics_compute(project=project)
    row = next(r for r in payload["annotators"] if r["username"].startswith(f"{name}@"))
    return any(f["kind"] == "position" for f in row["flags"])


def test_judgments_without_a_known_side_are_left_out_of_the_position_analysis():
    """Someone who always picks the item's first answer, on the right of their screen each time,
    is flagged for position when the sides are known; imported without sides, the same choices
    say nothing about position (reading an unknown side as "b on the left" would flag them)."""
    from calibration.services.analytics import dataset_load

    known = ProjectFactory()
    import_lines(known, [{"prompt": f"Q{i}?", "responses": [f"alpha {i}", f"beta {i}"], "external_id": f"q{i}"}
                         for i in range(40)])
    rows = [{"annotator": "p", "item": f"q{i}", "choice": "a", "shown_left": "b"} for i in range(40)]
    rows += [{"annotator": f"o{k}", "item": f"q{i}", "choice": "ab"[(i + k) % 2], "shown_left": "ab"[i % 2]}
             for k in range(3) for i in range(40)]
    assert judgments_import(project=known, fh=_jsonl(rows)).ok
    assert _position_flagged(known, "p")

    unknown = ProjectFactory()
    prefs = [{"prompt": f"Q{i}?", "chosen": f"alpha {i}", "rejected": f"beta {i}", "annotator": "p"} for i in range(40)]
    prefs += [{"prompt": f"Q{i}?", "chosen": ("alpha", "beta")[(i + k) % 2] + f" {i}",
               "rejected": ("beta", "alpha")[(i + k) % 2] + f" {i}", "annotator": f"o{k}"} for k in range(3) for i in range(40)]
    assert judgments_import(project=unknown, fh=_jsonl(prefs)).ok
    assert not dataset_load(project=unknown).judgments.known_sides().any()
    assert not _position_flagged(unknown, "p")


def test_the_rest_import_refuses_a_file_over_its_request_sized_limit(settings):
    project = _project_with_items()
    settings.JUDGMENT_IMPORT_MAX_FILE_BYTES = 100
    body = "".join(json.dumps(r) + "\n" for r in OURS).encode()
    assert len(body) > 100
    refused = api_as(member(project, Role.LEAD)).post(
        f"/api/projects/{project.slug}/judgment-imports/", {"file": SimpleUploadedFile("j.jsonl", body)}, format="multipart")
    assert refused.status_code == 422 and "JUDGMENT_IMPORT_MAX_FILE_BYTES" in refused.content.decode()
    assert Judgment.objects.count() == 0


def test_an_item_with_a_swapped_reask_is_still_the_one_a_judgment_names():
    """A re-ask's shadow shares its original's prompt (calibration/services/reasks.py); imports by
    external id and by content both land on the original, and a re-run stays idempotent."""
    import uuid

    from annotation.services.judgments import judgment_submit
    from annotation.services.routing import assignment_lease
    from calibration.services.reasks import reask_plan
    from tests.factories import good_input

    project = _project_with_items(12)
    rows = [{"prompt": "Capital of France?", "chosen": "Paris.", "rejected": "Lyon.", "annotator_id": "w1"}]
    assert judgments_import(project=project, fh=_jsonl(rows)).ok
    france = Item.objects.get(project=project, prompt__messages__icontains="France")
    Item.objects.filter(pk=france.pk).update(priority=10)  # judged first, so it may be asked again
    insider = member(project)
    for _ in range(13):
        assignment = assignment_lease(project=project, annotator=insider)
        judgment_submit(assignment_id=assignment.pk, annotator=insider, data=good_input(), client_token=uuid.uuid4())
    shadows = [reask_plan(project_id=project.pk, annotator_id=insider.pk) for _ in range(3)]
    # The three judged before the last ten: France (by content) and q0, q1 (by external id).
    assert {s.reask_of.item_id for s in shadows} == {france.pk, *Item.objects.filter(
        prompt__external_id__in=["q0", "q1"], reask_of__isnull=True).values_list("pk", flat=True)}
    again = judgments_import(project=project, fh=_jsonl(OURS + rows))
    assert again.ok, again.errors
    assert (again.created, again.unchanged) == (4, 1)
    assert not Judgment.objects.filter(item__reask_of__isnull=False).exists()
    assert all(Item.objects.get(pk=s.pk).judgment_count == 0 for s in shadows)
    assert judgments_import(project=project, fh=_jsonl(OURS + rows)).created == 0
