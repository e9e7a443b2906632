"""Custom cues for bias discovery: a lead names a cue (keywords, or a regular expression) and sees
at once who prefers responses that have it; saved cues join every later computation.

A cue is checked against every comparison's two responses. Keywords match whole words, any case.
A pattern is a regular expression run with a time limit per text (discovery.custom_cue): texts it
times out on count as not matching, and the answer says how many there were.
"""
from __future__ import annotations

import regex
from django.db import transaction

from annotation.errors import ValidationFailed
from annotation.models import Project

from .. import discovery
from ..models import AnalyticsPolicy
from .analytics import analytics_policy_get, dataset_load

MAX_CUES = 20
MAX_NAME = 80
MAX_KEYWORDS = 50
MAX_KEYWORD = 80
MAX_PATTERN = 300


def cue_spec_clean(data: dict) -> dict:
    """{name, keywords} or {name, pattern}, checked; field errors otherwise."""
    errors: dict[str, str] = {}
    name = str(data.get("name", "")).strip()
    if not name or len(name) > MAX_NAME or "/" in name:
        errors["name"] = f"Name the cue in 1 to {MAX_NAME} characters, without a slash."
    keywords = data.get("keywords") or []
    if isinstance(keywords, str):
        keywords = [k for k in (part.strip() for part in keywords.split(",")) if k]
    pattern = str(data.get("pattern") or "").strip()
    if not isinstance(keywords, list) or not all(isinstance(k, str) for k in keywords):
        errors["keywords"] = "Keywords are a list of words or phrases."
    elif keywords and pattern:
        errors["pattern"] = "Give keywords or a pattern, not both."
    elif not keywords and not pattern:
        errors["keywords"] = "Give keywords (comma-separated) or a regular expression."
    elif len(keywords) > MAX_KEYWORDS or any(len(k) > MAX_KEYWORD or not k.strip() for k in keywords):
        errors["keywords"] = f"At most {MAX_KEYWORDS} keywords of at most {MAX_KEYWORD} characters."
    if pattern:
        if len(pattern) > MAX_PATTERN:
            errors["pattern"] = f"At most {MAX_PATTERN} characters."
        else:
            try:
                regex.compile(pattern)
            except regex.error as exc:
                errors["pattern"] = f"Not a regular expression: {exc}."
    if errors:
        raise ValidationFailed("Please fix the cue.", field_errors=errors)
    spec = {"name": name}
    if pattern:
        spec["pattern"] = pattern
    else:
        spec["keywords"] = [k.strip() for k in keywords]
    return spec


def custom_cue_check(*, project: Project, spec: dict) -> dict:
    """Who prefers responses with this cue, now: every annotator's test, Benjamini-Hochberg over
    the annotators at the project's significance."""
    spec = cue_spec_clean(spec)
    policy = analytics_policy_get(project=project)
    data = dataset_load(project=project)
    texts_a, texts_b = data.texts
    cue, timeouts = discovery.custom_cue(spec, texts_a, texts_b)
    findings = discovery.discover(data.judgments, [cue], len(data.annotator_ids), len(data.item_ids),
                                  min_n=policy.min_judgments, fdr=policy.significance)
    return {
        "cue": spec,
        "items_with_cue_on_one_side": int((cue.side >= 0).sum()),
        "timeouts": timeouts,
        "fdr": policy.significance,
        "annotators": sorted([{
            "username": data.usernames[f.annotator], "n": f.n, "rate": round(f.rate, 4),
            "expected": round(f.expected, 4), "effect": round(f.effect, 4), "low": round(f.low, 4),
            "high": round(f.high, 4), "q": f.q, "discovered": f.discovered, "words": f.words,
            "examples": [int(data.item_ids[i]) for i in f.examples],
        } for f in findings], key=lambda r: (not r["discovered"], r["q"])),
    }


@transaction.atomic
def custom_cue_save(*, project: Project, spec: dict) -> list[dict]:
    """Keep the cue (replacing one of the same name) for every later computation."""
    spec = cue_spec_clean(spec)
    policy = AnalyticsPolicy.objects.select_for_update().get(pk=analytics_policy_get(project=project).pk)
    cues = [c for c in policy.custom_cues if c.get("name") != spec["name"]]
    if len(cues) >= MAX_CUES:
        raise ValidationFailed(f"At most {MAX_CUES} custom cues: remove one first.", field_errors={"name": "Too many cues."})
    policy.custom_cues = cues + [spec]
    policy.save(update_fields=["custom_cues"])
    return policy.custom_cues


@transaction.atomic
def custom_cue_remove(*, project: Project, name: str) -> list[dict]:
    policy = AnalyticsPolicy.objects.select_for_update().get(pk=analytics_policy_get(project=project).pk)
    policy.custom_cues = [c for c in policy.custom_cues if c.get("name") != name]
    policy.save(update_fields=["custom_cues"])
    return policy.custom_cues
