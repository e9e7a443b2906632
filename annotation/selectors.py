"""Functions that read. Every read an annotator can reach is scoped to what they may see."""
from __future__ import annotations

from django.core.paginator import Paginator
from django.db import connection
from django.db.models import Count, Q, QuerySet
from django.http import Http404

from .models import (
    AdversarialNegative,
    AnnotatorSkill,
    Assignment,
    AssignmentStatus,
    BadCase,
    DerivedPair,
    FlawType,
    ImportJob,
    ImportStatus,
    Item,
    ItemKind,
    ItemResponse,
    ItemRubric,
    ItemStatus,
    Prompt,
    Judgment,
    Membership,
    PairTag,
    Project,
    RankingJudgment,
    Response,
    Rewrite,
    RewriteStatus,
    Role,
    SpecVersion,
    domain_in,
)
from .permissions import can_lead, can_see_all_judgments, has_role, remember_roles
from .ranking import letters
from .rows import columns, from_row
from .services.quarantine import text_displayable


def one_or_404(queryset: QuerySet, message: str):
    """The first row of `queryset`, or a 404 that says what was not found. Not Django's
    get_object_or_404: that one uses .get() (a filter that can match several rows would answer
    500) and a generic message naming the model."""
    row = queryset.first()
    if row is None:
        raise Http404(message)
    return row


def project_get_for_member(*, slug: str, user) -> Project:
    """The project, if the user belongs to it (or is admin). Non-members get 404, not 403, so
    project names do not leak."""
    # One hand-written statement (annotation/rows.py): every project request asks, and the ORM's
    # select_related lookup cost more CPU than the database spent on it.
    with connection.cursor() as cursor:
        cursor.execute(
            f'SELECT m."role", {columns(Project, "p")}, {columns(SpecVersion, "s")} '
            f'FROM "{Membership._meta.db_table}" m JOIN "{Project._meta.db_table}" p ON p."id" = m."project_id" '
            f'LEFT JOIN "{SpecVersion._meta.db_table}" s ON s."id" = p."current_spec_id" '
            f'WHERE p."slug" = %s AND m."user_id" = %s',
            [slug, user.pk],
        )
        rows = cursor.fetchall()
    if rows:
        project, rest = from_row(Project, list(rows[0][1:]))
        project.current_spec = from_row(SpecVersion, rest)[0] if project.current_spec_id is not None else None
        # Fill the per-request role cache permissions.roles_of reads: no second query.
        remember_roles(user=user, project=project, roles={row[0] for row in rows})
        return project
    project = Project.objects.select_related("current_spec").filter(slug=slug).first()
    if project is None or not user.is_superuser:
        raise Http404("No such project.")
    return project


def projects_for_user(*, user) -> QuerySet[Project]:
    qs = Project.objects.order_by("name")
    if not user.is_superuser:
        qs = qs.filter(memberships__user=user).distinct()
    return qs


def assignment_payload(*, assignment: Assignment) -> dict:
    """What an annotator's browser receives for an item: the prompt and the two responses by
    screen side. No model names, no other annotators' labels, no canonical a/b.

    Rankings: the responses in the assignment's shown order, lettered A, B, ... (no ids).
    Rewrite tasks: the bad response and the project's flaw list. Adversarial tasks: the good
    response and the flaw types. Rubric evaluations: the response and its dimension's checks."""
    item = assignment.item if Assignment.item.is_cached(assignment) else None
    if item is None or not Item.prompt.is_cached(item):
        item = Item.objects.select_related("prompt", "response_a", "response_b").get(pk=assignment.item_id)
    base = {
        "kind": item.kind,
        "assignment": assignment.handle,
        "lease_expires_at": assignment.lease_expires_at,
        "prompt": item.prompt.messages,
    }
    if item.kind == ItemKind.RANKING:
        texts = dict(Response.objects.filter(pk__in=assignment.shown_order).values_list("pk", "text"))
        return {
            **base,
            "responses": [
                {"label": label, "text": texts[rid]}
                for label, rid in zip(letters(len(assignment.shown_order)), assignment.shown_order)
            ],
        }
    if item.kind == ItemKind.REWRITE:
        return {**base, "response": {"text": item.response_a.text}, "flaws": item.project.rewrite_flaws}
    if item.kind == ItemKind.RUBRIC:
        # The response and its rubric only: nothing says which model or checkpoint wrote it.
        rubric = ItemRubric.objects.filter(item_id=item.pk).values("dimension", "checks").first() or {}
        return {**base, "response": {"text": item.response_a.text}, "dimension": rubric.get("dimension", ""),
                "checks": list(rubric.get("checks") or [])}
    if item.kind == ItemKind.ADVERSARIAL:
        return {
            **base,
            "response": {"text": item.response_a.text},
            "flaw_types": [{"key": k, "label": v} for k, v in FlawType.choices],
        }
    left, right = (
        (item.response_a, item.response_b) if assignment.shown_left == "a" else (item.response_b, item.response_a)
    )
    return {**base, "left": {"text": left.text}, "right": {"text": right.text}}


def judgments_visible_to(*, user, project: Project) -> QuerySet[Judgment]:
    """Leads and engineers see every judgment of the data (swapped re-asks, which measure
    self-consistency, are on the analytics page instead); an annotator sees only their own, re-asks
    included, as they look like any other work to them."""
    qs = Judgment.objects.filter(project=project).select_related("annotator").order_by("id")
    if not can_see_all_judgments(user=user, project=project):
        return qs.filter(annotator=user)
    return qs.filter(reask_of__isnull=True)


def import_job_get(*, job_id: int, user) -> ImportJob:
    job = ImportJob.objects.select_related("project").filter(pk=job_id).first()
    if job is None or not has_role(user=user, project=job.project, roles=["lead", "engineer"]):
        raise Http404("No such import.")
    return job


def project_overview(*, project: Project) -> dict:
    """The lead's overview. Per annotator, "tasks done" is the same count as the annotator's own
    "N done" (annotation.services.routing.annotator_progress: submitted assignments of every
    kind, hidden anchors among the comparisons), split by kind so the two numbers can be read
    against the project's comparison-judgment count. Calibration-round answers are in neither."""
    items = Item.objects.filter(project=project, reask_of__isnull=True).aggregate(
        items=Count("id"),
        complete=Count("id", filter=Q(judgment_count__gte=project.overlap)),
    )
    rows: dict[str, dict] = {}
    for username, kind, n in (
        Assignment.objects.filter(project=project, status=AssignmentStatus.SUBMITTED)
        .values_list("annotator__username", "item__kind").annotate(n=Count("id")).order_by()
    ):
        row = rows.setdefault(username, {"username": username, "done": 0, **{k: 0 for k in ItemKind.values}})
        row[kind] += n
        row["done"] += n
    per_annotator = sorted(rows.values(), key=lambda r: (-r["done"], r["username"]))
    choices = dict(
        Judgment.objects.filter(project=project, reask_of__isnull=True, by_judge=False)
        .values_list("choice").annotate(n=Count("id")).order_by()
    )
    return {
        "items": items["items"],
        "complete_items": items["complete"],
        "judgments": sum(choices.values()),
        "tasks_done": sum(r["done"] for r in per_annotator),
        "choices": choices,
        "per_annotator": per_annotator,
    }


def imports_recent(*, project: Project, limit: int = 10) -> list[ImportJob]:
    """The project's latest imports, newest first (the lead page's list, which polls this alone)."""
    return list(ImportJob.objects.filter(project=project).order_by("-created_at")[:limit])


def imports_busy(imports) -> bool:
    """Whether one of these imports is still queued or running (its list keeps polling)."""
    return any(job.status in (ImportStatus.QUEUED, ImportStatus.RUNNING) for job in imports)


def assignment_for_annotator(*, handle: str, annotator) -> Assignment:
    """An annotator's own assignment, by its opaque handle; anyone else's is 404."""
    return one_or_404(Assignment.objects.filter(handle=handle, annotator=annotator), "No such assignment.")


def judgment_for_annotator(*, judgment_id: int, annotator) -> Judgment:
    """An annotator's own judgment; anyone else's (even a lead's view of it) is 404 for editing."""
    return one_or_404(Judgment.objects.filter(pk=judgment_id, annotator=annotator), "No such judgment.")


# ---------------------------------------------------------------- rewrites, negatives, rankings


def rewrite_returned_next(*, project: Project, author) -> Rewrite | None:
    """The author's oldest rewrite that a reviewer sent back: it comes before new work."""
    return (
        Rewrite.objects.filter(project=project, author=author, status=RewriteStatus.RETURNED)
        .select_related("item__prompt", "item__response_a", "item__project")
        .order_by("reviewed_at", "id")
        .first()
    )


def rewrite_for_author(*, rewrite_id: int, author) -> Rewrite:
    return one_or_404(
        Rewrite.objects.filter(pk=rewrite_id, author=author)
        .select_related("item__prompt", "item__response_a", "item__project"),
        "No such rewrite.",
    )


def skills_of(*, project: Project, user) -> list[str]:
    return sorted(AnnotatorSkill.objects.filter(project=project, user=user).values_list("skill", flat=True))


def skills_by_user(*, project: Project) -> dict[str, list[str]]:
    """{username: skills} for the project's annotators (leads manage these)."""
    out: dict[str, list[str]] = {
        m.user.username: []
        for m in Membership.objects.filter(project=project, role=Role.ANNOTATOR).select_related("user").order_by("user__username")
    }
    for username, skill in (
        AnnotatorSkill.objects.filter(project=project).order_by("skill").values_list("user__username", "skill")
    ):
        out.setdefault(username, []).append(skill)
    return out


def rewrites_reviewable_by(*, user, project: Project, status: str = RewriteStatus.SUBMITTED) -> QuerySet[Rewrite]:
    """Rewrites this user may review: every one for leads; for a second expert (an annotator
    with skills), those of their skill domains written by someone else; none for anyone else."""
    qs = Rewrite.objects.filter(project=project)
    if status:
        qs = qs.filter(status=status)
    qs = (
        qs.select_related("project", "item__prompt", "item__response_a", "author", "reviewed_by")
        .order_by("created_at", "id")
    )
    qs = qs.exclude(author=user)  # nobody reviews their own work, leads included
    if can_lead(user=user, project=project):
        return qs
    if not has_role(user=user, project=project, roles=[Role.ANNOTATOR]):
        return qs.none()
    return qs.filter(domain_in("item__prompt__domain", skills_of(project=project, user=user)))


def can_review_any_rewrite(*, user, project: Project) -> bool:
    return can_lead(user=user, project=project) or (
        has_role(user=user, project=project, roles=[Role.ANNOTATOR])
        and AnnotatorSkill.objects.filter(project=project, user=user).exists()
    )


def rewrite_get_for_reviewer(*, rewrite_id: int, user, project: Project) -> Rewrite:
    """A rewrite this user may review (any status); 404 for everyone else, authors included."""
    reviewable = rewrites_reviewable_by(user=user, project=project, status="")
    return one_or_404(reviewable.filter(pk=rewrite_id), "No such rewrite.")


def designed_data_overview(*, project: Project) -> dict:
    """Counts for the leads' and engineers' view of bad cases, rewrites, adversarial negatives
    and rankings; per flaw type, how many negatives are longer than their good response."""
    bad_by_source: dict[str, int] = {}
    for sources in BadCase.objects.filter(project=project).values_list("sources", flat=True):
        for source in sources:
            bad_by_source[source] = bad_by_source.get(source, 0) + 1
    rewrites = dict(
        Rewrite.objects.filter(project=project).values_list("status").annotate(n=Count("id")).order_by()
    )
    negatives = (
        AdversarialNegative.objects.filter(project=project)
        .values_list("flaw_type", "text", "item__response_a__text")
        .order_by("flaw_type")
    )
    per_flaw: dict[str, dict] = {}
    for flaw, text, good in negatives.iterator(chunk_size=2000):
        row = per_flaw.setdefault(flaw, {"flaw_type": flaw, "label": FlawType(flaw).label, "count": 0, "longer": 0})
        row["count"] += 1
        row["longer"] += len(text) > len(good)
    pairs = dict(DerivedPair.objects.filter(project=project).values_list("tag").annotate(n=Count("id")).order_by())
    ranking_items = Item.objects.filter(project=project, kind=ItemKind.RANKING)
    total_negatives = sum(r["count"] for r in per_flaw.values())
    return {
        "bad_cases": BadCase.objects.filter(project=project).count(),
        "bad_cases_by_source": bad_by_source,
        "rewrites": {status: rewrites.get(status, 0) for status in RewriteStatus.values},
        "rewrite_tasks_open": Item.objects.filter(project=project, kind=ItemKind.REWRITE, judgment_count=0).count(),
        "negatives": total_negatives,
        "negatives_longer": sum(r["longer"] for r in per_flaw.values()),
        "negatives_by_flaw": sorted(per_flaw.values(), key=lambda r: r["flaw_type"]),
        "derived_pairs": {tag: pairs.get(tag, 0) for tag in (PairTag.REWRITE, PairTag.ADVERSARIAL)},
        "ranking_items": ranking_items.count(),
        "rankings": RankingJudgment.objects.filter(project=project).count(),
    }


def rewrites_of_author(*, project: Project, author, status: str = "") -> QuerySet[Rewrite]:
    qs = Rewrite.objects.filter(project=project, author=author).select_related("item__prompt", "item__response_a")
    return (qs.filter(status=status) if status else qs).order_by("created_at", "id")


def rewrite_get(*, rewrite_id: int, user) -> Rewrite:
    """A rewrite its project's member may act on: reviewers get it for review, its author for
    revising; anyone else 404 (not even its existence shows)."""
    rewrite = Rewrite.objects.select_related("project").filter(pk=rewrite_id).first()
    if rewrite is None:
        raise Http404("No such rewrite.")
    if rewrite.author_id == user.pk:
        return rewrite
    return rewrite_get_for_reviewer(rewrite_id=rewrite_id, user=user, project=rewrite.project)


def bad_cases_of(*, project: Project) -> QuerySet[BadCase]:
    return BadCase.objects.filter(project=project).order_by("-created_at", "-id")


def response_in_project(*, response_id: int, project: Project) -> Response:
    return one_or_404(Response.objects.filter(pk=response_id, prompt__project=project),
                      "No such response in this project.")


def member_by_username(*, project: Project, username: str):
    members = Membership.objects.filter(project=project, user__username=username).select_related("user")
    return one_or_404(members, "No such member.").user


ITEMS_PAGE_SIZE = 25


def project_domains(*, project: Project) -> list[str]:
    """The domains the project's prompts carry, for the items page's filter."""
    return sorted(
        {d for d in Prompt.objects.filter(project=project).exclude(domain="").values_list("domain", flat=True).distinct()},
        key=str.lower,
    )


def items_for_lead(*, project: Project, kind: str = "", query: str = "", domain: str = "", status: str = "",
                   anchor: str = "", page: int | str = 1):
    """One page of the project's items, newest first, filtered by kind, prompt text (any turn),
    domain, status and whether the item is an anchor ("yes"/"no"), with their responses, the whole
    conversation and whether each response is already a bad case: what a lead browses to mark bad
    cases and make anchors. Returns (page, rows)."""
    # Not the swapped re-asks' shadow items (copies of items listed here), unless one was
    # quarantined: that needs a lead's look like any other.
    qs = (Item.objects.filter(Q(reask_of__isnull=True) | Q(status=ItemStatus.QUARANTINED), project=project)
          .select_related("prompt", "response_a", "response_b", "anchor").order_by("-id"))
    if kind:
        qs = qs.filter(kind=kind)
    if query:
        qs = qs.filter(prompt__messages__icontains=query)
    if domain:
        qs = qs.filter(domain_in("prompt__domain", [domain]))
    if status:
        qs = qs.filter(status=status)
    if anchor in ("yes", "no"):
        qs = qs.filter(anchor__isnull=anchor == "no")
    page_obj = Paginator(qs, ITEMS_PAGE_SIZE).get_page(page)
    items = list(page_obj.object_list)
    ranked: dict[int, list[Response]] = {}
    for row in ItemResponse.objects.filter(item__in=items).select_related("response").order_by("item_id", "position"):
        ranked.setdefault(row.item_id, []).append(row.response)
    rows = []
    for item in items:
        responses = ranked.get(item.pk) or [r for r in (item.response_a, item.response_b) if r is not None]
        rows.append({"item": item, "responses": responses})
    bad = set(
        BadCase.objects.filter(response_id__in=[r.pk for row in rows for r in row["responses"]])
        .values_list("response_id", flat=True)
    )
    for row in rows:
        # Displayable whatever the rows hold: this page is where a lead inspects quarantined items.
        messages = row["item"].prompt.messages or [{}]
        row["turns"] = [
            {"role": str(m.get("role", "")) if isinstance(m, dict) else "",
             "content": text_displayable(str(m.get("content", "")) if isinstance(m, dict) else str(m))}
            for m in messages
        ]
        row["prompt_text"] = row["turns"][-1]["content"]
        row["anchor"] = getattr(row["item"], "anchor", None)
        row["responses"] = [
            {"response": r, "text": text_displayable(r.text), "bad_case": r.pk in bad} for r in row["responses"]
        ]
    return page_obj, rows


def project_of_scoped_token(*, token, slug: str) -> Project | None:
    """The project a scoped token was issued for, if it is the one named; else None (a 404: a token
    for one project learns nothing of another)."""
    if token.project_id is None:
        return None
    return Project.objects.filter(pk=token.project_id, slug=slug).first()
