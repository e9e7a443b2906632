"""Shared by the training tests: a tiny local backbone, and a frozen set whose rule is known."""
from __future__ import annotations

import random

import pytest

from rewards.curation import CurationPolicy
from rewards.services.sets import preference_set_freeze
from tests.factories import import_lines, label_all, member

pytest.importorskip("torch")
pytest.importorskip("trl")


@pytest.fixture(scope="session")
def tiny_backbone(tmp_path_factory):
    from training.generators.tiny import build_tiny_backbone

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
    return judged_set(project, lines, good=lambda text: text.endswith("yes"), test_fraction=test_fraction, seed=seed)


def judged_set(project, lines: list[dict], *, good, test_fraction: float, seed: int = 0):
    """Import `lines`, have one annotator prefer the response for which good(text) is true on
    every item (marking helpfulness for it and safety for the other), and freeze the set."""
    import_lines(project, lines)
    label_all(project, [member(project)], prefer=lambda a: "a" if good(a.item.response_a.text) else "b",
              rationale="It answers yes, as it should.",
              dimensions=lambda shown, other: {"helpfulness": shown, "safety": other})
    return preference_set_freeze(project=project, policy=CurationPolicy(
        standings=("calibrating", "active"), aggregation="none", test_fraction=test_fraction, seed=seed))


def rl_prompt_set(project, *, items: int = 12, test_fraction: float = 0.34, seed: int = 0):
    """A frozen set whose prompts suit the tiny policy's vocabulary: sums of two digits with their
    answer as ground truth (domain math), and chat prompts with none (domain chat)."""
    rng = random.Random(seed)
    lines = []
    for i in range(items):
        if i % 3 == 2:
            lines.append({"prompt": f"what is the answer {i % 10} ?", "responses": ["yes", "maybe no"], "domain": "chat"})
        else:
            a, b = rng.randint(0, 4), rng.randint(0, 5)
            lines.append({"prompt": f"what is {a} + {b} ? {i}", "responses": [f"answer is {a + b}", "maybe 9"],
                          "domain": "math", "ground_truth": str(a + b)})
    return judged_set(project, lines, good=lambda text: "maybe" not in text, test_fraction=test_fraction, seed=seed)


@pytest.fixture(scope="session")
def tiny_policy(tmp_path_factory):
    from training.generators.tiny import build_tiny_policy

    return str(build_tiny_policy(tmp_path_factory.mktemp("tiny") / "policy"))
