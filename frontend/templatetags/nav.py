"""The project's tab bar, on every project page: the pages the user's role may open, in one order,
the current one marked (aria-current). A tab is shown only where its view would let the user in:
each entry names the same permission check its view passes to `project_for`."""
from __future__ import annotations

from django import template
from django.urls import reverse

from annotation import selectors
from annotation.permissions import can_annotate, can_export, can_import, can_lead, can_see_all_judgments
from training.services.redteam import can_redteam

register = template.Library()


def _can_review(*, user, project) -> bool:
    return selectors.can_review_any_rewrite(user=user, project=project)


# (label, url name, permission check, url names that count as this tab)
TABS = [
    ("Overview", "lead", can_lead, ()),
    ("Label", "label", can_annotate, ()),
    ("My work", "my-work", can_annotate, ()),
    ("Import", "import", can_import, ()),
    ("Items", "items", can_lead, ()),
    ("Calibration", "calibration", can_lead, ()),
    ("Anchors", "anchors", can_lead, ("anchor-new", "anchor-edit")),
    ("Analytics", "analytics", can_see_all_judgments, ("analytics-annotator",)),
    ("Designed data", "designed", can_see_all_judgments, ()),
    ("Rewrite review", "rewrites", _can_review, ()),
    ("Sets", "sets", can_export, ("set", "set-freezing")),
    ("Export", "export", can_export, ()),
    ("Runs", "runs", can_export, ("run",)),
    ("Reward models", "reward-models", can_export, ("reward-model",)),
    ("AI judges", "judges", can_export, ("judge-job",)),
    ("Red team", "redteam", can_redteam, ()),
    ("Settings", "settings", can_lead, ()),
]


def tabs_for(*, user, project, current: str = "") -> list[dict]:
    return [
        {"label": label, "url": reverse(name, args=[project.slug]), "name": name,
         "current": current == name or current in also}
        for label, name, check, also in TABS
        if check(user=user, project=project)
    ]


@register.inclusion_tag("frontend/_tabs.html", takes_context=True)
def project_tabs(context, project):
    request = context["request"]
    match = getattr(request, "resolver_match", None)
    current = match.url_name if match else ""
    return {"project": project, "tabs": tabs_for(user=request.user, project=project, current=current)}
