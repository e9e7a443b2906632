"""Shared by the training tests: a tiny local backbone, and a frozen set whose rule is known."""
from __future__ import annotations

import random
import uuid

import pytest

from annotation.services.judgments import JudgmentInput, judgment_submit
from annotation.services.routing import assignment_next
from rewards.curation import CurationPolicy
from rewards.services.sets import preference_set_freeze
from tests.factories import import_lines, member

pytest.importorskip("torch")
pytest.importorskip("trl")


@pytest.fixture(scope="session")
def tiny_backbone(tmp_path_factory):
    from training.tiny import build_tiny_backbone

    return str(build_tiny_backbone(tmp_path_factory.mktemp("tiny") / "bert"))


def learnable_set(project, *, items: int = 40, test_fraction: float = 0.25, seed: int = 0):
    """A frozen set (one annotator, a pair per judgment) where the chosen answer always ends in
    "yes" and the rejected one in "no", with random filler so length says nothing; the annotator
    marks helpfulness for the chosen one and safety for the rejected one on every item."""
    rng = random.Random(seed)
    filler = ["well", "so", "indeed", "clearly", "then"]
    lines = []
    for i in range(items):
        good = " ".join(rng.choices(filler, k=rng.randint(0, 4)) + [f"answer {i} yes"])
        bad = " ".join(rng.choices(filler, k=rng.randint(0, 4)) + [f"answer {i} no"])
        pair = [good, bad] if i % 2 else [bad, good]
        lines.append({"prompt": f"Question number {i}?", "responses": pair, "domain": "maths" if i % 3 else "trivia"})
    import_lines(project, lines)
    annotator = member(project)
    while (assignment := assignment_next(project=project, annotator=annotator)) is not None:
        texts = {"a": assignment.item.response_a.text, "b": assignment.item.response_b.text}
        good_side = "a" if texts["a"].endswith("yes") else "b"
        shown = "left" if assignment.shown_left == good_side else "right"
        other = "right" if shown == "left" else "left"
        judgment_submit(assignment_id=assignment.pk, annotator=annotator, client_token=uuid.uuid4(),
                        data=JudgmentInput(choice=shown, strength="clear", rationale="It answers yes, as it should.",
                                           dimensions={"helpfulness": shown, "safety": other}))
    return preference_set_freeze(project=project, policy=CurationPolicy(
        standings=("calibrating", "active"), aggregation="none", test_fraction=test_fraction, seed=seed))
