"""The suite's builders in one place: factory_boy factories, members, anchors, import lines, the
"label everything" loop, API clients, judgment inputs and a real Celery worker. Fixtures live in the
conftest files; the permission matrix in tests/permissions.py."""
from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import factory
from django.contrib.auth import get_user_model
from rest_framework.test import APIClient

from annotation.models import Item, Membership, Project, Prompt, Response, Role
from annotation.ranking import letters
from annotation.services.judgments import JudgmentInput
from annotation.services.projects import spec_publish


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}")
    password = factory.PostGenerationMethodCall("set_password", "pw-12345678")

    @factory.post_generation
    def _save(obj, create, extracted, **kwargs):
        if create:
            obj.save()


class ProjectFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Project
        skip_postgeneration_save = True

    slug = factory.Sequence(lambda n: f"project-{n}")
    name = factory.Sequence(lambda n: f"Project {n}")
    overlap = 3
    min_rationale_chars = 10

    @factory.post_generation
    def spec(obj, create, extracted, **kwargs):
        if create:
            spec_publish(project=obj, text=extracted or "# Spec\n\nBe helpful and *honest*.")

    @factory.post_generation
    def reask_rate(obj, create, extracted, **kwargs):
        """Swapped re-asks are off in test projects unless a test asks for them (`reask_rate=0.3`):
        one drawn at random would make what a test is served vary between runs. The tests of
        invariants that must hold with them on (k per item, two web processes, the gold adversary)
        turn them on."""
        if create:
            from calibration.models import CalibrationPolicy

            CalibrationPolicy.objects.update_or_create(project=obj, defaults={"reask_rate": extracted or 0.0})


class PromptFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Prompt

    project = factory.SubFactory(ProjectFactory)
    messages = factory.Sequence(lambda n: [{"role": "user", "content": f"Question {n}?"}])
    domain = "general"


class ItemFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Item

    project = factory.SubFactory(ProjectFactory)
    prompt = factory.SubFactory(PromptFactory, project=factory.SelfAttribute("..project"))
    response_a = factory.LazyAttribute(lambda o: Response.objects.create(prompt=o.prompt, text=f"Answer A to {o.prompt.pk}", model_name="m1"))
    response_b = factory.LazyAttribute(lambda o: Response.objects.create(prompt=o.prompt, text=f"Answer B to {o.prompt.pk}", model_name="m2"))
    target_judgments = factory.LazyAttribute(lambda o: o.project.overlap)


def member(project: Project, role: str = Role.ANNOTATOR, **kwargs):
    user = UserFactory(**kwargs)
    Membership.objects.create(project=project, user=user, role=role)
    return user


def make_anchor(
    project: Project,
    *,
    in_set: bool = False,
    clear_cut: bool = True,
    choice: str = "a",
    domain: str = "general",
    explanation: str = "A is right: B gets the fact wrong.",
):
    """An item turned into an anchor through the service leads use."""
    from calibration.services.anchors import ExpertAnswer, anchor_create

    item = ItemFactory(project=project, prompt__domain=domain)
    answer = ExpertAnswer(
        choice=choice, strength="clear" if choice in ("a", "b") else "", explanation=explanation, clear_cut=clear_cut
    )
    return anchor_create(item=item, answer=answer, in_calibration_set=in_set)


def import_lines(project: Project, lines: list[dict]):
    """Items through the real import path (validation, kinds, bad cases), all or nothing."""
    import json
    import tempfile
    from pathlib import Path

    from annotation.services.imports import import_file

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "items.jsonl"
        path.write_text("".join(json.dumps(line) + "\n" for line in lines))
        result = import_file(project=project, path=path)
    assert result.ok, result.errors
    return result


def ranking_line(prompt: str, k: int, *, domain: str = "general", ground_truth: str | None = None) -> dict:
    line = {"prompt": prompt, "responses": [f"{prompt} answer {i} " + "x" * i for i in range(k)], "domain": domain}
    if ground_truth is not None:
        line["ground_truth"] = ground_truth
    return line


def bad_case_line(prompt: str, bad: str, *, domain: str = "general") -> dict:
    return {"prompt": prompt, "responses": [bad], "source": "production_bad_case", "domain": domain}


def adversarial_line(prompt: str, good: str, *, domain: str = "general") -> dict:
    return {"prompt": prompt, "responses": [good], "kind": "adversarial", "domain": domain}


def label_all(project: Project, annotators, *, prefer="a", strength: str = "clear",
              rationale: str = "a is the better one", dimensions=None) -> int:
    """The suite's one "label everything" loop: each annotator takes every item the queue serves
    them (annotation.services.queue, as the page and the API do) and answers it. Comparisons:
    `prefer` is a canonical answer ("a", "b", "tie", "both_bad") or a function of the assignment
    returning one; it is turned into the side the annotator saw, and `dimensions(shown, other)`
    gives per-dimension choices in shown terms. Rankings are ranked as shown, bad cases rewritten
    and adversarial items given a confidently wrong negative. Returns the number of answers made."""
    from annotation.models import ItemKind
    from annotation.services.judgments import judgment_submit
    from annotation.services.negatives import NegativeInput, negative_submit
    from annotation.services.queue import queue_next
    from annotation.services.rankings import RankingInput, ranking_submit
    from annotation.services.rewrites import RewriteInput, rewrite_submit
    from annotation.sides import to_shown

    made = 0
    for annotator in annotators:
        while (assignment := queue_next(project=project, annotator=annotator)) is not None:
            mine = {"assignment_id": assignment.pk, "client_token": uuid.uuid4()}
            kind = assignment.item.kind
            if kind == ItemKind.RANKING:
                order = ">".join(letters(assignment.item.ranked.count()))
                ranking_submit(annotator=annotator, data=RankingInput(order=order, rationale=rationale), **mine)
            elif kind == ItemKind.REWRITE:
                rewrite_submit(author=annotator, **mine, data=RewriteInput(
                    text=f"A corrected answer, written for item {assignment.item_id}.", rationale=rationale,
                    flaws=["hallucination"]))
            elif kind == ItemKind.ADVERSARIAL:
                negative_submit(author=annotator, **mine, data=NegativeInput(
                    text=f"Confidently wrong, for item {assignment.item_id}.", flaw_type="confident_but_wrong",
                    rationale=rationale))
            else:
                answer = prefer(assignment) if callable(prefer) else prefer
                shown = to_shown(answer, shown_left=assignment.shown_left)
                other = {"left": "right", "right": "left"}.get(shown, shown)
                judgment_submit(annotator=annotator, **mine, data=JudgmentInput(
                    choice=shown, strength=strength if answer in ("a", "b") else "", rationale=rationale,
                    dimensions=dimensions(shown, other) if dimensions else {}))
            made += 1
    return made


def api_as(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


def good_input(choice: str = "left", strength: str = "clear", **kw) -> JudgmentInput:
    return JudgmentInput(
        choice=choice,
        strength=strength if choice in ("left", "right") else "",
        rationale=kw.pop("rationale", "Left is accurate and concise."),
        **kw,
    )


def submit_payload(choice: str = "left", strength: str = "clear", **kw) -> dict:
    return {
        "choice": choice,
        "strength": strength if choice in ("left", "right") else "",
        "rationale": "A reason that is long enough.",
        "time_spent_ms": 4200,
        "client_token": str(uuid.uuid4()),
        **kw,
    }


@contextmanager
def celery_worker(settings) -> Iterator[None]:
    """A real Celery worker in this process on the real Redis broker, consuming this xdist
    process's own queue (config/settings/test.py), emptied of anything an earlier run left."""
    from celery.contrib.testing.worker import start_worker

    from config.celery import app

    assert settings.CELERY_BROKER_URL.startswith("redis://"), "tests use the real Redis broker"
    app.conf.broker_url = settings.CELERY_BROKER_URL
    app.control.purge()
    # The queue named, not left to the app's selection: a worker started earlier in this process
    # on another queue (tests/training/test_redteam.py: the scoring queue) narrows that selection.
    with start_worker(app, perform_ping_check=False, pool="solo", concurrency=1, loglevel="WARNING",
                      queues=[settings.CELERY_TASK_DEFAULT_QUEUE]):
        yield


def job_wait(model, job_id: int, seconds: float = 30):
    """Wait for a real worker to finish a job of the shared lifecycle (import, judge job, ...); the
    job, succeeded or failed."""
    import time

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        job = model.objects.get(pk=job_id)
        if job.status in ("succeeded", "failed"):
            return job
        time.sleep(0.1)
    raise AssertionError(f"{model.__name__} {job_id} still {job.status}")


def import_job_wait(job_id: int, seconds: float = 30):
    from annotation.models import ImportJob

    return job_wait(ImportJob, job_id, seconds)
