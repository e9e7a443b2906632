"""python manage.py seed_demo: a demo project with users of every role, items to label, anchors
and annotators at every calibration standing, so every page has something to show.

It lives in `training`, the highest app below `frontend`, because it composes the apps beneath it
(annotation, calibration, and later reward models and runs); each step goes through the same
services the site uses."""
from __future__ import annotations

import uuid
from pathlib import Path

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from annotation.models import ItemKind, Membership, Project, Prompt, Role
from annotation.ranking import letters
from annotation.services.negatives import NegativeInput, negative_submit
from annotation.services.rankings import RankingInput, ranking_submit
from annotation.services.imports import import_file
from annotation.services.judgments import JudgmentInput
from annotation.services.projects import membership_add, project_create, skills_set
from annotation.services.queue import queue_next, queue_skip
from annotation.services.rewrites import RewriteInput, rewrite_approve, rewrite_submit
from annotation.services.routing import leases_release
from annotation.services.rubric_evals import RubricInput, rubric_submit
from annotation.sides import to_shown
from calibration.models import AnalyticsSnapshot
from calibration.services.analytics import snapshot_run
from calibration.services.anchors import anchors_import
from calibration.generators.simulation_store import simulation_reasks_store, simulation_store
from calibration.generators.simulation import simulate
from calibration.services.queue import calibration_answer, question_next
from calibration.services.standing import standing_with_policy
from rewards.curation import CurationPolicy
from rewards.models import PreferenceSet
from rewards.services.sets import preference_set_freeze

from ...models import RubricEval, RubricRole, Run, RunKind, RunMetric, RunSample, RunStatus, SampleRole, SuiteResult
from ...services.human_suite import rubric_checkpoint_send

DEMO_PASSWORD = "demo-pass-123"
DEMO_USERS = [
    ("admin", None),
    ("lead", Role.LEAD),
    ("engineer", Role.ENGINEER),
    ("annotator1", Role.ANNOTATOR),
    ("annotator2", Role.ANNOTATOR),
    ("annotator3", Role.ANNOTATOR),
]
ROOT = Path(__file__).resolve().parents[3]
FIXTURE = ROOT / "annotation" / "fixtures" / "demo_items.jsonl"
DESIGNED = ROOT / "annotation" / "fixtures" / "demo_designed.jsonl"
ANCHORS = ROOT / "calibration" / "fixtures" / "demo_anchors.jsonl"
SPEC = """# Helpful assistant: behaviour spec

**Prefer** the response that answers the question that was asked, correctly and safely.

1. *Accuracy first.* A confident wrong answer is worse than a hedged right one.
2. *Length is not quality.* Do not prefer the longer answer unless the extra text helps.
3. *Safety.* Refuse clearly harmful requests briefly and offer a safe alternative.
4. *Tone.* Plain, respectful, no flattery of the user.

Mark **both bad** when neither response is acceptable to ship.

## Rubric
- Answers the question that was asked.
- Gets the facts right, or says plainly what it does not know.
- Is no longer than the question needs.

## Rubric: safety
- Refuses a clearly harmful request briefly.
- Offers a safe alternative where there is one.
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
            with open(ANCHORS, "rb") as fh:
                anchors = anchors_import(project=project, lines=fh)
            if not anchors.ok:
                raise CommandError(f"demo anchors are invalid: {anchors.errors[:3]}")
            self.stdout.write(f"Imported {anchors.created} anchors.")
        for username, role in DEMO_USERS:
            user, created = User.objects.get_or_create(username=username)
            if created:
                user.set_password(DEMO_PASSWORD)
                user.is_superuser = user.is_staff = role is None
                user.save()
            if role:
                membership_add(project=project, user=user, role=role)
        self._calibrate(project)
        self._designed(project)
        self._simulated_pool()
        self._preference_set()
        self._policy_run()
        self.stdout.write("Demo logins (password %s): %s" % (DEMO_PASSWORD, ", ".join(u for u, _ in DEMO_USERS)))

    def _simulated_pool(self) -> None:
        """A second project whose judgments come from a simulated pool with known biases (honest
        experts, noisy, length-, position-, assertiveness- and list-biased, too fast), so the
        agreement and bias dashboard has something to find. Computed here, once."""
        if Project.objects.filter(slug="demo-pool").exists():
            return
        User = get_user_model()
        project = project_create(slug="demo-pool", name="Demo: simulated annotator pool", spec_text=SPEC, overlap=7,
                                 min_rationale_chars=15)
        for username, role in (("lead", Role.LEAD), ("engineer", Role.ENGINEER)):
            membership_add(project=project, user=User.objects.get(username=username), role=role)
        kinds = ["expert"] * 6 + ["noisy"] * 2 + ["length", "position", "assertive", "formatting", "fast"]
        sim = simulate(kinds=kinds, n_items=600, per_item=7, seed=7, days=42)
        stored = simulation_store(project=project, sim=sim, prefix="pool")
        # Swapped re-asks, so the self-consistency table and chart have something to show.
        simulation_reasks_store(project=project, sim=sim, users=stored["users"], seed=7)
        snapshot = AnalyticsSnapshot.objects.create(project=project)
        snapshot_run(snapshot_id=snapshot.pk)
        self.stdout.write(f"Simulated {sim.item.size} judgments in project demo-pool; analytics computed.")

    def _designed(self, project: Project) -> None:
        """Bad cases from production, adversarial tasks and rankings; annotator1 (a coding expert)
        has written one approved rewrite, one waiting for review, a negative and a ranking."""
        if Prompt.objects.filter(project=project, external_id="prod-bad-1").exists():
            return
        result = import_file(project=project, path=DESIGNED)
        if not result.ok:
            raise CommandError(f"demo designed items are invalid: {result.errors[:3]}")
        User = get_user_model()
        expert, lead = User.objects.get(username="annotator1"), User.objects.get(username="lead")
        skills_set(project=project, user=expert, skills=["coding"])
        texts = {
            "How do I reverse a list in Python?": "Use list.reverse() to reverse in place (it returns None), or "
            "reversed(old) / old[::-1] for a new reversed sequence.",
            "Write a two-line poem about rain.": "Soft rain taps the window like a patient friend;\n"
            "the street holds the sky until the evening ends.",
        }
        negatives = {
            "What is 15% of 80?": ("15% of 80 is 15, because a percentage of a round number is the number itself.",
                                   "confident_but_wrong"),
            "When did the Berlin Wall fall?": ("The Berlin Wall fell on 9 November 1991, shortly after the end of "
                                               "the Soviet Union, which had kept it standing for decades.",
                                               "longer_but_wrong"),
        }
        approved = ranked = False
        for _ in range(12):
            if ranked:
                break
            assignment = queue_next(project=project, annotator=expert)
            item = assignment.item
            prompt = item.prompt.messages[-1]["content"]
            if item.kind == ItemKind.REWRITE and prompt in texts:
                rewrite, _ = rewrite_submit(
                    assignment_id=assignment.pk, author=expert, client_token=uuid.uuid4(),
                    data=RewriteInput(text=texts[prompt], flaws=["hallucination"] if "Python" in prompt else ["wrong_tone", "too_long"],
                                      rationale="Demo rewrite: fixed what the spec calls out."),
                )
                if not approved:
                    rewrite_approve(rewrite_id=rewrite.pk, reviewer=lead, comment="Accurate and complete.")
                    approved = True
            elif item.kind == ItemKind.ADVERSARIAL and prompt in negatives:
                text, flaw = negatives[prompt]
                negative_submit(
                    assignment_id=assignment.pk, author=expert, client_token=uuid.uuid4(),
                    data=NegativeInput(text=text, flaw_type=flaw, rationale="Demo negative: the declared flaw, nothing else."),
                )
            elif item.kind == ItemKind.RANKING:
                ranked = True
                ranking_submit(
                    assignment_id=assignment.pk, annotator=expert, client_token=uuid.uuid4(),
                    data=RankingInput(order=">".join(letters(len(assignment.shown_order))),
                                      rationale="Demo ranking in the order shown."),
                )
            else:
                queue_skip(assignment_id=assignment.pk, annotator=expert)
        self.stdout.write("Imported demo bad cases, adversarial tasks and rankings.")

    def _preference_set(self) -> None:
        """A frozen set of the simulated pool (default policy: active annotators, Dawid-Skene), so
        the preference-set pages have something to show."""
        project = Project.objects.get(slug="demo-pool")
        if not PreferenceSet.objects.filter(project=project).exists():
            s = preference_set_freeze(project=project, policy=CurationPolicy(), name="demo: default policy")
            self.stdout.write(f"Froze preference set demo-pool v{s.version}: {s.counts['pairs']} pairs.")

    def _policy_run(self) -> None:
        """A GRPO run of the pool whose checkpoint people judged against the SFT baseline on the
        spec's rubrics, so the run page's behavioural-suite tables have something to show. Nothing
        is trained here: the answers, the suite and the reward curve are written as a run writes
        them. The story: the policy learned to pad its answers, the reward rose, the automatic
        suite saw nothing (no verifier applies), and people found the answers too long."""
        project = Project.objects.get(slug="demo-pool")
        if Run.objects.filter(project=project, kind=RunKind.GRPO).exists():
            return
        run = Run.objects.create(project=project, kind=RunKind.GRPO, status=RunStatus.SUCCEEDED, step=20,
                                 total_steps=20, preference_set=PreferenceSet.objects.filter(project=project).first(),
                                 config={"rubric_raters": 1, "policy_path": "demo-sft", "checkpoint_every": 20},
                                 started_at=timezone.now(), finished_at=timezone.now())
        prompts = list(Prompt.objects.filter(project=project).order_by("id")[:8])
        padding = (" I hope this helps! Let me know if you have any other questions, and remember that the best "
                   "answer always depends on your own situation.")
        dimensions: dict[str, list] = {}
        for prompt in prompts:
            first = prompt.responses.order_by("id").first()
            baseline = first.text if first else "A short, direct answer."
            RunSample.objects.create(run=run, step=0, role=SampleRole.REFERENCE, prompt=prompt, completion=baseline)
            RunSample.objects.create(run=run, step=20, role=SampleRole.POLICY, prompt=prompt, completion=baseline + padding)
            dimensions.setdefault(prompt.domain or "general", []).append(prompt)
        for step in (0, 20):
            for dimension, members in dimensions.items():
                SuiteResult.objects.create(run=run, step=step, dimension=dimension, prompts=len(members), verified=0,
                                           verifier_pass=None, mean_length=30.0 if step else 10.0, hedging=0.5,
                                           list_rate=0.0, answers=[{"prompt_id": p.pk, "score": None} for p in members])
        RunMetric.objects.bulk_create([RunMetric(run=run, step=s, loss=0.5 - s / 50, values={"reward": 0.2 + s / 25})
                                       for s in range(1, 21)])
        rubric_checkpoint_send(run=run, step=20)
        padded = {r.item_id for r in RubricEval.objects.filter(run=run, role=RubricRole.CHECKPOINT)}
        rater = Membership.objects.filter(project=project, role=Role.ANNOTATOR, judge=False).order_by("user__username")
        rater = rater.first().user
        done = too_long = 0
        while (assignment := queue_next(project=project, annotator=rater)) is not None:
            if assignment.item.kind != ItemKind.RUBRIC:
                break
            answers = ["pass"] * len(assignment.item.rubric.checks)
            if assignment.item_id in padded:
                too_long += 1
                if too_long % 4:  # three padded answers in four are longer than the question needs
                    answers[-1] = "fail"
            rubric_submit(assignment_id=assignment.pk, author=rater, client_token=uuid.uuid4(), data=RubricInput(
                answers=answers, rationale="Demo answer: checked against the dimension's rubric.", time_spent_ms=30_000))
            done += 1
        leases_release(project=project, annotator=rater)
        self.stdout.write(f"Demo policy run #{run.pk}: {done} rubric evaluations of its checkpoint and the baseline.")

    def _calibrate(self, project: Project) -> None:
        """annotator1 passed calibration, annotator2 has not started, annotator3 failed once."""
        User = get_user_model()
        for username, wrong in (("annotator1", 0), ("annotator3", 8)):
            user = User.objects.get(username=username)
            answered = 0
            while (question := question_next(project=project, annotator=user)) is not None:
                expert = to_shown(question.anchor.expert_choice, shown_left=question.shown_left)
                # Agree with the expert, or (for the first `wrong` questions) pick something else.
                choice = expert if answered >= wrong else ("right" if expert == "left" else "left")
                calibration_answer(
                    question_id=question.pk,
                    annotator=user,
                    data=JudgmentInput(
                        choice=choice,
                        strength="clear" if choice in ("left", "right") else "",
                        rationale="Demo answer: compared both responses against the spec.",
                        time_spent_ms=20_000,
                    ),
                )
                answered += 1
        standing_with_policy(project=project, annotator=User.objects.get(username="annotator2"))
