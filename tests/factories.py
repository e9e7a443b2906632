"""factory_boy factories shared by the suite."""
from __future__ import annotations

import factory
from django.contrib.auth import get_user_model

from annotation.models import Item, Membership, Project, Prompt, Response, Role
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
