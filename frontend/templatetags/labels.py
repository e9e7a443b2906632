"""Words for people in place of internal names that would otherwise reach the screen (issue 20):
`{{ value|label }}` turns a known key into its label and any other snake_case key into words."""
from __future__ import annotations

from django import template

register = template.Library()

LABELS = {
    # standing changes (calibration.models.StandingChange.cause)
    "joined": "joined the project",
    "round_passed": "passed a calibration round",
    "round_failed": "failed a calibration round",
    "window": "hidden-anchor accuracy over the window",
    "cusum": "drift detected (CUSUM)",
    "override": "set by a lead",
    "recalibration": "recalibration assigned",
    # aggregations (rewards.curation.AGGREGATIONS)
    "none": "none (one pair per judgment)",
    "majority": "majority vote",
    "dawid_skene": "Dawid–Skene",
    "bradley_terry": "Bradley–Terry",
    # what a frozen set left out (rewards.services.sets counts)
    "items_below_min_judgments": "items with fewer judgments than the minimum",
    "items_below_min_confidence": "items whose agreement is below the minimum confidence",
    "items_without_a_winner": "items whose judgments name no winner (ties, both bad)",
    "pairs_below_min_judgments": "pairs with fewer judgments than the minimum",
    "pairs_below_min_confidence": "pairs below the minimum confidence",
    "pairs_without_a_winner": "pairs without a winner",
    "judgments_counted": "judgments counted",
    "judgments_left_out_by_standing": "judgments left out by the annotator's standing",
}


@register.filter
def label(value) -> str:
    if value is None or value == "" or value == [] or value == ():
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (list, tuple)):
        if all(isinstance(v, (list, tuple)) and len(v) == 2 for v in value):  # (key, number) pairs
            return "; ".join(f"{label(k)} {v}" for k, v in value)
        return ", ".join(label(v) for v in value)
    key = str(value)
    return LABELS.get(key, key.replace("_", " "))
