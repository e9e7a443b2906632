"""My work, the session view, the edit window and the Settings page, through the pages: an
annotator sees and edits only their own judgments, in the terms they saw (A/B), within the
project's edit window, with a gold judgment indistinguishable from a live one; goals and settings
are validated field by field; and who may not call each route."""
from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from annotation import history
from annotation.models import Assignment, Judgment, JudgmentRevision, Role
from annotation.services.judgments import edit_window_check
from annotation.errors import NotAllowed
from tests.factories import ItemFactory, ProjectFactory, label_all, make_anchor, member

pytestmark = pytest.mark.django_db


def _client(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def _labelled(n: int = 3):
    project = ProjectFactory()
    for _ in range(n):
        ItemFactory(project=project)
    annotator = member(project)
    label_all(project, [annotator], prefer="a", rationale="A is the better answer here.")
    return project, annotator


def test_my_work_lists_own_judgments_in_shown_terms_and_none_of_anyone_elses():
    project, annotator = _labelled()
    other = member(project)
    label_all(project, [other], prefer="b", rationale="Someone else's private reasoning.")
    html = _client(annotator).get(f"/p/{project.slug}/my-work/").content.decode()
    assert html.count('class="card my-row"') == 3
    assert "Someone else&#x27;s private reasoning" not in html and "Someone else's private" not in html
    # Each row says what this annotator chose on their screen: "a" shown left is "A is better".
    for j in Judgment.objects.filter(annotator=annotator):
        shown = "A is better" if j.shown_left == "a" else "B is better"
        row = re.search(rf'id="judgment-{j.pk}".*?</article>', html, re.S).group(0)
        assert shown in row
    # No item ids reach the page.
    for item_id in Judgment.objects.filter(annotator=annotator).values_list("item_id", flat=True):
        assert f"item-{item_id}" not in html and f"/items/{item_id}" not in html


def test_editing_through_my_work_keeps_the_old_version_and_errors_keep_the_input():
    project, annotator = _labelled(1)
    judgment = Judgment.objects.get(annotator=annotator)
    client = _client(annotator)
    url = f"/p/{project.slug}/my-work/{judgment.pk}/edit/"
    form = client.get(url)
    assert form.status_code == 200 and 'name="rationale"' in form.content.decode()
    bad = client.post(url, {"choice": "tie", "rationale": "short"})
    assert bad.status_code == 422 and "short" in bad.content.decode()
    judgment.refresh_from_db()
    assert judgment.revision == 1 and judgment.choice == "a"
    good = client.post(url, {"choice": "tie", "rationale": "On reflection the two are equally good."})
    assert good.status_code == 200 and "Saved." in good.content.decode()
    judgment.refresh_from_db()
    assert (judgment.choice, judgment.revision) == ("tie", 2)
    assert JudgmentRevision.objects.get(judgment=judgment).choice == "a"
    # Another annotator cannot open or save it: as if it did not exist.
    stranger = _client(member(project))
    assert stranger.get(url).status_code == 404
    assert stranger.post(url, {"choice": "left", "strength": "clear", "rationale": "Trying to change it."}).status_code == 404
    judgment.refresh_from_db()
    assert judgment.choice == "tie"


def test_the_edit_window_closes_edits_in_the_page_and_in_the_service():
    project, annotator = _labelled(1)
    judgment = Judgment.objects.get(annotator=annotator)
    Judgment.objects.filter(pk=judgment.pk).update(created_at=timezone.now() - timedelta(hours=25))
    client = _client(annotator)
    url = f"/p/{project.slug}/my-work/{judgment.pk}/edit/"
    assert client.get(url).status_code == 409
    refused = client.post(url, {"choice": "tie", "rationale": "On reflection the two are equally good."})
    assert refused.status_code == 409 and "edit window" in refused.content.decode()
    judgment.refresh_from_db()
    assert judgment.choice == "a"
    html = client.get(f"/p/{project.slug}/my-work/").content.decode()
    assert "no longer editable" in html and "my-work/%d/edit/" % judgment.pk not in html
    project.edit_window_hours = 0
    judgment.created_at = timezone.now()
    with pytest.raises(NotAllowed, match="does not allow"):
        edit_window_check(judgment=judgment, project=project)


def test_a_gold_judgment_is_listed_and_edited_like_a_live_one(monkeypatch):
    """A hidden anchor's judgment looks the same in My work and edits the same way; its anchor
    score, recorded at submit, does not change."""
    from calibration.models import AnchorResult
    from calibration.services import queue as calibration_queue
    from calibration.services.queue import hidden_answers_score_missing

    project = ProjectFactory()
    for _ in range(3):
        ItemFactory(project=project)
    anchor = make_anchor(project)
    monkeypatch.setattr(calibration_queue._rng, "random", lambda: 0.0)  # the first request draws the anchor
    annotator = member(project)
    label_all(project, [annotator], prefer="a", rationale="A is the better answer here.")
    hidden_answers_score_missing()  # what the beat does for answers the page's deferred scoring left
    gold = Judgment.objects.get(annotator=annotator, item=anchor.item)
    live = Judgment.objects.filter(annotator=annotator).exclude(pk=gold.pk).first()
    assert AnchorResult.objects.filter(judgment=gold).exists()
    client = _client(annotator)
    html = client.get(f"/p/{project.slug}/my-work/").content.decode()

    def shape(pk):
        row = re.search(rf'<article class="card my-row" id="judgment-{pk}".*?</article>', html, re.S).group(0)
        return re.sub(r">[^<]*<", "><", re.sub(r"\d+", "", row))  # markup only: no texts, no numbers

    assert shape(gold.pk) == shape(live.pk)
    before = list(AnchorResult.objects.filter(judgment=gold).values_list("correct", flat=True))
    for j in (gold, live):
        edited = client.post(f"/p/{project.slug}/my-work/{j.pk}/edit/",
                             {"choice": "tie", "rationale": "On reflection the two are equally good."})
        assert edited.status_code == 200
    assert list(AnchorResult.objects.filter(judgment=gold).values_list("correct", flat=True)) == before


def _finished(annotator, minutes_ago, now):
    for minutes, assignment in zip(minutes_ago, Assignment.objects.filter(annotator=annotator).order_by("pk")):
        Assignment.objects.filter(pk=assignment.pk).update(finished_at=now - timedelta(minutes=minutes))


def test_session_counts_today_and_shows_the_break_reminder_after_a_long_stretch():
    project, annotator = _labelled(7)
    now = timezone.now().replace(hour=12)  # the middle of a day: nothing below crosses midnight
    _finished(annotator, (60, 50, 40, 30, 20, 11, 0), now)  # 11-minute pause: the stretch starts again
    session = history.annotator_session(project=project, annotator=annotator, now=now)
    assert session.done_today == 7 and session.break_due is False and session.stretch_minutes == 0
    _finished(annotator, (55, 46, 37, 28, 19, 10, 1), now)  # 9-minute gaps: one stretch of 54 minutes
    session = history.annotator_session(project=project, annotator=annotator, now=now)
    assert session.break_due and session.stretch_minutes == 54
    _finished(annotator, (55 + 60 * 24, 46, 37, 28, 19, 10, 1), now)  # one of them yesterday
    assert history.annotator_session(project=project, annotator=annotator, now=now).done_today == 6
    # Just after midnight: a stretch begun yesterday still counts for the reminder, not for today.
    midnight = now.replace(hour=0, minute=20)
    _finished(annotator, (55, 46, 37, 28, 19, 10, 1), midnight)
    session = history.annotator_session(project=project, annotator=annotator, now=midnight)
    assert session.done_today == 3 and session.break_due
    # A pause of more than 10 minutes ends the stretch: no reminder.
    assert history.annotator_session(project=project, annotator=annotator, now=now + timedelta(minutes=11)).break_due is False
    # The page shows it (rendered at the real time: move the stretch to now).
    real = timezone.now()
    _finished(annotator, (55, 46, 37, 28, 19, 10, 1), real)
    html = _client(annotator).get(f"/p/{project.slug}/label/").content.decode()
    reminder = re.search(r'<p class="break-reminder[^>]*>', html).group(0)
    assert "hidden" not in reminder
    _finished(annotator, (60, 50, 40, 30, 20, 11, 0), real)
    html = _client(annotator).get(f"/p/{project.slug}/label/").content.decode()
    assert "hidden" in re.search(r'<p class="break-reminder[^>]*>', html).group(0)


def test_goals_the_annotator_and_the_lead_set_are_checked_and_used():
    project, annotator = _labelled(2)
    lead = member(project, Role.LEAD)
    project.daily_goal = 40
    project.save(update_fields=["daily_goal"])
    client = _client(annotator)
    html = client.get(f"/p/{project.slug}/my-work/").content.decode()
    session = re.search(r"<section class=\"card session\".*?</section>", html, re.S).group(0)
    assert "of a goal of <b>40</b>" in session and "(the project's)" in session, session
    assert client.post(f"/p/{project.slug}/my-work/goal/", {"target": "-3"}).status_code == 422
    assert client.post(f"/p/{project.slug}/my-work/goal/", {"target": "lots"}).status_code == 422
    ok = client.post(f"/p/{project.slug}/my-work/goal/", {"target": "12"})
    assert ok.status_code == 200 and "of a goal of <b>12</b>" in ok.content.decode()
    assert history.goal_for(project=project, annotator=annotator) == (12, False)
    _client(lead).post(f"/p/{project.slug}/settings/goals/{annotator.username}/", {"target": "30"})
    assert history.goal_for(project=project, annotator=annotator) == (30, False)
    # Only annotators set their own goal on My work; only leads set goals in Settings.
    for who, status in ((lead, 403), (member(project, Role.ENGINEER), 403)):
        assert _client(who).post(f"/p/{project.slug}/my-work/goal/", {"target": "5"}).status_code == status
    assert _client(annotator).post(f"/p/{project.slug}/settings/goals/{annotator.username}/", {"target": "99"}).status_code == 403
    assert history.goal_for(project=project, annotator=annotator) == (30, False)


def test_settings_save_all_or_nothing_with_each_error_on_its_field():
    project = ProjectFactory()
    lead = _client(member(project, Role.LEAD))
    url = f"/p/{project.slug}/settings/"
    bad = lead.post(url, {"name": "Renamed", "description": "", "min_rationale_chars": "20", "lease_seconds": "5",
                          "edit_window_hours": "abc", "daily_goal": "10"})
    assert bad.status_code == 422
    body = bad.content.decode()
    assert "Enter a number from 60" in body and "Enter a whole number." in body and 'value="Renamed"' in body
    project.refresh_from_db()
    assert project.name != "Renamed"
    ok = lead.post(url, {"name": "Renamed", "description": "d", "min_rationale_chars": "30", "lease_seconds": "600",
                         "edit_window_hours": "2", "daily_goal": "10"})
    assert ok.status_code == 302
    project.refresh_from_db()
    assert (project.name, project.min_rationale_chars, project.lease_seconds, project.edit_window_hours,
            project.daily_goal) == ("Renamed", 30, 600, 2, 10)


def test_my_work_edit_and_goal_routes_refuse_other_roles():
    project, annotator = _labelled(1)
    judgment = Judgment.objects.get(annotator=annotator)
    outsider = member(ProjectFactory())
    for path in (f"/p/{project.slug}/my-work/{judgment.pk}/edit/", f"/p/{project.slug}/my-work/goal/"):
        assert Client().post(path).status_code == 302
        for who, status in ((member(project, Role.LEAD), 403), (member(project, Role.ENGINEER), 403), (outsider, 404)):
            assert _client(who).post(path, {"target": "3", "choice": "tie", "rationale": "x" * 30}).status_code == status
    judgment.refresh_from_db()
    assert judgment.revision == 1


def test_the_overview_counts_agree_with_each_annotators_n_done_and_say_why_they_differ():
    """The lead's "tasks done" per annotator is the label page's "N done" (every kind, hidden
    anchors among them), and the page says how it relates to the comparison-judgment count."""
    from annotation.services.routing import annotator_progress
    from tests.factories import adversarial_line, bad_case_line, import_lines, ranking_line

    project = ProjectFactory()
    import_lines(project, [ranking_line("Rank these", 3), bad_case_line("Q?", "Bad."), adversarial_line("Q2?", "Good.")])
    for _ in range(2):
        ItemFactory(project=project)
    people = [member(project) for _ in range(2)]
    label_all(project, people)
    lead = _client(member(project, Role.LEAD))
    html = lead.get(f"/p/{project.slug}/lead/").content.decode()
    table = re.search(r'<table class="data" id="per-annotator">.*?</table>', html, re.S).group(0)
    for person in people:
        done = annotator_progress(project=project, annotator=person)["done"]
        row = re.search(rf"<tr><td>{person.username}</td><td>(\d+)</td><td>(\d+)</td>", table)
        assert int(row.group(1)) == done, (person.username, row.group(0), done)
        assert int(row.group(2)) == Judgment.objects.filter(annotator=person).count()
        # The label page shows the same number.
        page = _client(person).post(f"/p/{project.slug}/label/next/").content.decode()
        assert f"{done} done" in page
    judgments = Judgment.objects.filter(project=project).count()
    assert re.search(rf'id="judgment-count">{judgments}<', html)
    assert re.search(rf'id="tasks-done">{sum(annotator_progress(project=project, annotator=p)["done"] for p in people)}<', html)
    assert judgments < sum(annotator_progress(project=project, annotator=p)["done"] for p in people)  # they differ here
    assert "calibration rounds are in neither" in html


def test_my_work_pages_25_at_a_time_newest_first_and_keeps_the_kind():
    project, annotator = _labelled(27)
    client = _client(annotator)
    first = client.get(f"/p/{project.slug}/my-work/").content.decode()
    second = client.get(f"/p/{project.slug}/my-work/?kind=comparisons&page=2").content.decode()
    assert first.count('class="card my-row"') == 25 and second.count('class="card my-row"') == 2
    assert 'href="?kind=comparisons&amp;page=2"' in first and "Page 2 of 2" in second
    newest = Judgment.objects.filter(annotator=annotator).order_by("-created_at", "-id")
    assert first.index(f'id="judgment-{newest[0].pk}"') < first.index(f'id="judgment-{newest[1].pk}"')
    assert f'id="judgment-{newest[26].pk}"' in second
