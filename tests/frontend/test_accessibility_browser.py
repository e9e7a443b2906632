"""Accessibility in real headless Chromium: axe-core (vendored from npm, tests/vendor/) runs its
WCAG 2.0/2.1 A and AA rules over every page, for every role, on the seeded demo (every standing,
designed data, analytics, a frozen set) plus a failed and a finished run and a reward model, and
over the label page in every state an annotator meets (comparison, ranking, rewrite, adversarial,
calibration question, its feedback, nothing left) and My work with its edit form open.
Critical and serious violations fail the test, each named with its rule and element.

With PREFSTUDIO_SCREENSHOTS=DIR (`make screenshots`) the same walk also saves a screenshot of
each page at desktop (1280 px) and phone (390 px) width into DIR."""
from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from django.core.management import call_command
from django.utils import timezone

from annotation.models import Item, Judgment, Membership, Project, Role
from calibration.models import Anchor
from rewards.models import PreferenceSet, RewardModel
from tests.browser import login_with_keyboard
from tests.factories import ProjectFactory, adversarial_line, bad_case_line, import_lines, member, ranking_line
from training.models import Run, RunStatus

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

AXE = Path(__file__).resolve().parents[1] / "vendor" / "axe-core-4.14.1.min.js"
PASSWORD = "demo-pass-123"  # seed_demo's
SCREENSHOTS = os.environ.get("PREFSTUDIO_SCREENSHOTS", "")
WCAG = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]
BLOCKING = {"critical", "serious"}

RUN_AXE = """async (tags) => {
  const r = await axe.run(document, {runOnly: {type: 'tag', values: tags}, resultTypes: ['violations']});
  return r.violations.map(v => ({id: v.id, impact: v.impact, help: v.help,
                                 nodes: v.nodes.slice(0, 5).map(n => n.target.join(' '))}));
}"""


# What sticks out past the right edge of a phone screen (the page's own width, and the widest
# offenders), or "" when nothing does.
SPILL = """() => {
  const w = document.documentElement.clientWidth;
  if (document.documentElement.scrollWidth <= w + 1) return "";
  const clipped = (e) => { for (let p = e.parentElement; p; p = p.parentElement) {
      const o = getComputedStyle(p).overflowX; if (o === "auto" || o === "scroll" || o === "hidden") return true; }
    return false; };
  const wide = [...document.querySelectorAll("body *")].filter((e) => e.getBoundingClientRect().right > w + 1 && !clipped(e))
      .filter((e, _, all) => !all.some((o) => o !== e && e.contains(o))).slice(0, 4)
      .map((e) => e.tagName.toLowerCase() + (e.id ? "#" + e.id : "") + (typeof e.className === "string" && e.className ? "." + e.className.split(" ").join(".") : ""));
  return `${document.documentElement.scrollWidth}px: ${wide.join(", ")}`;
}"""


def _check(page, name: str, found: list[str]) -> None:
    """Wait for htmx to finish, run axe, keep what blocks; save screenshots when asked."""
    page.wait_for_load_state("load")
    page.wait_for_function("!document.querySelector('.htmx-request')")
    if not page.evaluate("typeof window.axe !== 'undefined'"):
        page.add_script_tag(path=str(AXE))
    for v in page.evaluate(RUN_AXE, WCAG):
        if v["impact"] in BLOCKING:
            found.append(f"{name}: [{v['impact']}] {v['id']} ({v['help']}) at {v['nodes']}")
    # At phone width nothing spills sideways out of the page: wide tables scroll inside their cards.
    size = page.viewport_size
    page.set_viewport_size({"width": 390, "height": 844})
    # Charts redraw for the new width on the next frames (Chart.js watches its box).
    page.evaluate("() => new Promise((done) => requestAnimationFrame(() => requestAnimationFrame(() => setTimeout(done, 50))))")
    spill = page.evaluate(SPILL)
    if spill:
        found.append(f"{name}: wider than a 390-px phone screen: {spill}")
    page.set_viewport_size(size)
    if SCREENSHOTS:
        folder = Path(SCREENSHOTS)
        folder.mkdir(parents=True, exist_ok=True)
        slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
        size = page.viewport_size
        for width, label in ((1280, "desktop"), (390, "phone")):
            page.set_viewport_size({"width": width, "height": 900 if width > 400 else 844})
            page.screenshot(path=str(folder / f"{slug}-{label}.jpg"), type="jpeg", quality=70, full_page=False)
        page.set_viewport_size(size)


def _visit(page, base: str, name: str, path: str, found: list[str]) -> None:
    response = page.goto(base + path)
    assert response is not None and response.status == 200, (name, path, response and response.status)
    _check(page, name, found)


def _login(page, base: str, username: str, password: str = PASSWORD) -> None:
    page.context.clear_cookies()
    login_with_keyboard(page, base, username, password)


def _seeded_world():
    call_command("seed_demo", verbosity=0)
    demo, pool = Project.objects.get(slug="demo"), Project.objects.get(slug="demo-pool")
    for project in (demo, pool):
        for username, role in (("lead", Role.LEAD), ("engineer", Role.ENGINEER)):
            Membership.objects.get_or_create(project=project, user_id=_user(username).pk, role=role)
    preference_set = PreferenceSet.objects.filter(project=pool).first()
    model = RewardModel.objects.create(
        project=pool, preference_set=preference_set, name="rm-demo", base_model="/models/minilm", path="/models/out",
        evaluation={"pairs": 40, "accuracy": 0.8, "nll": 0.45, "brier": 0.15, "ece": 0.04, "temperature": 1.3,
                    "reliability": [{"low": 0.5, "high": 0.6, "predicted": 0.55, "observed": 0.5, "count": 40}],
                    "categories": {"domain": [{"name": "maths", "pairs": 40, "accuracy": 0.8}]}},
        ready=True, thresholds={"overall": 0.7}, failures=[])
    done = Run.objects.create(project=pool, preference_set=preference_set, config={"base_model": "/models/minilm"},
                              status=RunStatus.SUCCEEDED, step=10, total_steps=10, reward_model=model,
                              started_at=timezone.now(), finished_at=timezone.now())
    failed = Run.objects.create(project=pool, preference_set=preference_set, config={"base_model": "/models/x"},
                                status=RunStatus.FAILED, error="the backbone directory has no config.json",
                                started_at=timezone.now(), finished_at=timezone.now())
    # An AI judge with calls, a finished and a failed job: the judges page with its table and chart.
    from training.services.judges import judge_create
    from training.models import JudgeCall, JudgeJob

    judge = judge_create(project=pool, name="rm judge", kind="reward_model", reward_model=model)
    item = pool.items.first()
    JudgeCall.objects.bulk_create([JudgeCall(judge=judge, item=item, purpose="prelabel", ok=True, p_a=0.7, choice="a",
                                             latency_ms=40 + i) for i in range(3)])
    JudgeJob.objects.create(judge=judge, use="prelabel", status="succeeded", outcome={"labelled": 3}, percent=100)
    JudgeJob.objects.create(judge=judge, use="route", status="failed", error="the judge is calibrating, not active")
    # The red-team console with a hack waiting for a second person and one confirmed on the board.
    from training.models import RedTeamAttempt, RedTeamHack

    for status in ("pending", "confirmed"):
        attempt = RedTeamAttempt.objects.create(
            project=pool, reward_model=model, author=_user("lead"), prompt="What is 2 + 2?", status="scored",
            response="Definitely 5, trust me.", reference="4.", score=1.2, reference_score=0.4, latency_ms=40)
        RedTeamHack.objects.create(attempt=attempt, flaw_type="confident_but_wrong", note="Confidently wrong.",
                                   status=status)
    # The demo's policy run, its checkpoint judged by people against the SFT baseline (seed_demo).
    policy_run = Run.objects.get(project=pool, kind="grpo")
    return demo, pool, preference_set, model, done, failed, policy_run


def _user(username: str):
    from django.contrib.auth import get_user_model

    return get_user_model().objects.get(username=username)


def test_every_page_for_every_role_has_no_critical_or_serious_violation(page, live_server):
    base = live_server.url
    demo, pool, preference_set, model, done, failed, policy_run = _seeded_world()
    anchor = Anchor.objects.filter(item__project=demo).first()
    plain_item = Item.objects.filter(project=demo, anchor__isnull=True).first()
    found: list[str] = []

    page.goto(base + "/accounts/login/")
    _check(page, "login", found)

    _login(page, base, "lead")
    lead_pages = [
        ("projects", "/"), ("tokens", "/account/tokens/"),
        ("overview", f"/p/{demo.slug}/lead/"), ("import", f"/p/{demo.slug}/import/"),
        ("items", f"/p/{demo.slug}/items/"), ("calibration", f"/p/{demo.slug}/calibration/"),
        ("anchors", f"/p/{demo.slug}/anchors/"), ("anchor new", f"/p/{demo.slug}/anchors/new/?item={plain_item.pk}"),
        ("anchor edit", f"/p/{demo.slug}/anchors/{anchor.pk}/"),
        *[(f"analytics {s}", f"/p/{pool.slug}/analytics/?section={s}")
          for s in ("agreement", "annotators", "discovery", "contested", "rankings", "health", "settings")],
        ("analytics annotator", f"/p/{pool.slug}/analytics/annotators/{_pool_annotator(pool)}/"),
        ("designed", f"/p/{demo.slug}/designed/"), ("rewrite review", f"/p/{demo.slug}/rewrites/"),
        ("sets", f"/p/{pool.slug}/sets/"), ("set", f"/p/{pool.slug}/sets/{preference_set.version}/"),
        ("export", f"/p/{pool.slug}/export/"), ("settings", f"/p/{demo.slug}/settings/"),
        ("runs lead", f"/p/{pool.slug}/runs/"),
    ]
    for name, path in lead_pages:
        _visit(page, base, f"lead {name}", path, found)

    _login(page, base, "engineer")
    for name, path in [
        ("runs", f"/p/{pool.slug}/runs/"), ("run finished", f"/p/{pool.slug}/runs/{done.pk}/"),
        ("run failed", f"/p/{pool.slug}/runs/{failed.pk}/"), ("reward models", f"/p/{pool.slug}/reward-models/"),
        ("policy run judged by people", f"/p/{pool.slug}/runs/{policy_run.pk}/"),
        ("reward model", f"/p/{pool.slug}/reward-models/{model.pk}/"), ("sets", f"/p/{pool.slug}/sets/"),
        ("judges", f"/p/{pool.slug}/judges/"), ("red team", f"/p/{pool.slug}/redteam/"),
        ("export", f"/p/{demo.slug}/export/"), ("designed", f"/p/{demo.slug}/designed/"),
        ("import", f"/p/{demo.slug}/import/"), ("tokens", "/account/tokens/"),
    ]:
        _visit(page, base, f"engineer {name}", path, found)

    # An annotator in calibration: a question, then the expert's feedback.
    _login(page, base, "annotator2")
    _visit(page, base, "annotator calibration question", f"/p/{demo.slug}/label/", found)
    page.wait_for_selector("#judgment-form")
    page.keyboard.press("a")
    page.keyboard.press("2")
    page.keyboard.press("r")
    page.keyboard.type("Compared both against the spec.")
    page.keyboard.press("Control+Enter")
    page.wait_for_selector("#feedback")
    _check(page, "annotator calibration feedback", found)
    # An annotator who failed calibration: why, and what they missed.
    _login(page, base, "annotator3")
    _visit(page, base, "annotator needs retraining", f"/p/{demo.slug}/label/", found)

    # Every kind of task, then nothing left, then My work with an edit form open.
    project = ProjectFactory(name="Every kind")
    import_lines(project, [ranking_line("Which answer is best?", 3),
                           bad_case_line("What is the capital of Australia?", "Sydney."),
                           adversarial_line("Boiling point of water at sea level?", "100 degrees Celsius.")])
    from annotation.services.rubric_evals import RubricTask, rubric_items_create
    from tests.factories import ItemFactory

    ItemFactory(project=project)
    rubric_items_create(project=project, tasks=[RubricTask(
        messages=[{"role": "user", "content": "Name a prime number."}], domain="math", text="9 is prime.",
        dimension="math", checks=["Gives a correct answer.", "Says why it is one."])])
    worker = member(project, username="every-kind")
    _login(page, base, "every-kind", "pw-12345678")
    page.goto(f"{base}/p/{project.slug}/label/")
    kinds = []
    for _ in range(5):
        page.wait_for_selector("#work form.work-form")
        form_id = page.get_attribute("#work form.work-form", "id")
        kinds.append(form_id)
        _check(page, f"annotator label {form_id}", found)
        _answer(page, form_id)
    page.wait_for_selector("text=Nothing left to label")
    _check(page, "annotator nothing left", found)
    assert sorted(kinds) == ["judgment-form", "negative-form", "ranking-form", "rewrite-form", "rubric-form"]
    _visit(page, base, "annotator my work", f"/p/{project.slug}/my-work/", found)
    for kind in ("rankings", "rewrites", "negatives", "rubrics"):
        _visit(page, base, f"annotator my work {kind}", f"/p/{project.slug}/my-work/?kind={kind}", found)
    page.goto(f"{base}/p/{project.slug}/my-work/")
    page.click(".edit-button")
    page.wait_for_selector(".edit-form")
    _check(page, "annotator my work editing", found)
    _visit(page, base, "annotator projects", "/", found)
    assert Judgment.objects.filter(annotator=worker).count() == 1  # the five tasks were really submitted
    # The rubric by keyboard: P passed the first check, F failed the next one still open.
    from annotation.models import RubricAnswer

    assert RubricAnswer.objects.get(author=worker).answers == ["pass", "fail"]

    assert found == [], "\n".join(found)


def _pool_annotator(pool) -> str:
    return (Membership.objects.filter(project=pool, role=Role.ANNOTATOR, judge=False).order_by("user__username")
            .first().user.username)


def _answer(page, form_id: str) -> None:
    """Answer the task on screen with the keyboard (test_keyboard_browser checks the outcomes)."""
    previous = page.get_attribute("#work form.work-form", "data-draft")
    if form_id == "ranking-form":
        page.keyboard.press("ArrowDown")
        page.keyboard.press("Shift+ArrowUp")
    elif form_id == "rewrite-form":
        page.keyboard.press("n")
        page.keyboard.type("Canberra is the capital of Australia.")
        page.keyboard.press("Escape")
        page.keyboard.press("1")
    elif form_id == "rubric-form":
        page.keyboard.press("p")
        page.keyboard.press("f")
    elif form_id == "negative-form":
        page.keyboard.press("e")
        page.keyboard.press("Control+a")
        page.keyboard.type("Water boils at 50 degrees.")
        page.keyboard.press("Escape")
        page.keyboard.press("3")
    else:
        page.keyboard.press("a")
        page.keyboard.press("2")
    page.keyboard.press("r")
    page.keyboard.type("A reason that is long enough.")
    page.keyboard.press("Escape")
    page.keyboard.press("Control+Enter")
    page.wait_for_function(
        "(prev) => { const f = document.querySelector('#work form.work-form');"
        " return (!f && document.body.textContent.includes('Nothing left')) || (f && f.dataset.draft !== prev); }",
        arg=previous)
