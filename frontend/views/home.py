"""The home page: the user's projects with what their roles allow."""
from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from annotation import selectors
from annotation.permissions import can_annotate, can_export, can_lead, roles_of


@login_required
def home(request: HttpRequest) -> HttpResponse:
    projects = [
        {
            "project": p,
            "roles": sorted(roles_of(user=request.user, project=p)),
            "can_annotate": can_annotate(user=request.user, project=p),
            "can_lead": can_lead(user=request.user, project=p),
            "can_export": can_export(user=request.user, project=p),
            "can_review": selectors.can_review_any_rewrite(user=request.user, project=p),
        }
        for p in selectors.projects_for_user(user=request.user)
    ]
    # Leads and engineers (of any project) may hold API tokens (annotation.services.tokens.can_hold_tokens).
    token_holder = request.user.is_superuser or any({"lead", "engineer"} & set(row["roles"]) for row in projects)
    return render(request, "frontend/home.html", {"projects": projects, "token_holder": token_holder})
