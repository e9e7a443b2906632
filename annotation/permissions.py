"""Who may do what in a project. Roles are per project; a Django superuser is admin everywhere."""
from __future__ import annotations

from collections.abc import Callable, Iterable

from .errors import NotAllowed
from .models import Membership, Project, Role


def _role_cache(user) -> dict[int, set[str]]:
    # Lives on the user object, which lives for one request: never stale across requests.
    cache = getattr(user, "_prefstudio_roles", None)
    if cache is None:
        cache = user._prefstudio_roles = {}
    return cache


def remember_roles(*, user, project: Project, roles: set[str]) -> None:
    _role_cache(user)[project.pk] = set(roles)


def roles_of(*, user, project: Project) -> set[str]:
    if not user.is_authenticated:
        return set()
    cache = _role_cache(user)
    if project.pk not in cache:
        cache[project.pk] = set(
            Membership.objects.filter(project=project, user=user).values_list("role", flat=True)
        )
    return cache[project.pk]


def has_role(*, user, project: Project, roles: Iterable[str]) -> bool:
    if user.is_authenticated and user.is_superuser:
        return True
    return bool(roles_of(user=user, project=project) & set(roles))


def can_annotate(*, user, project: Project) -> bool:
    # Admins and staff roles label only if they are also members as annotators: labels are
    # someone's measured work, not a side effect of having access.
    return Role.ANNOTATOR in roles_of(user=user, project=project)


def can_lead(*, user, project: Project) -> bool:
    return has_role(user=user, project=project, roles=[Role.LEAD])


def can_export(*, user, project: Project) -> bool:
    return has_role(user=user, project=project, roles=[Role.LEAD, Role.ENGINEER])


def can_import(*, user, project: Project) -> bool:
    return has_role(user=user, project=project, roles=[Role.LEAD, Role.ENGINEER])


def can_see_all_judgments(*, user, project: Project) -> bool:
    return has_role(user=user, project=project, roles=[Role.LEAD, Role.ENGINEER])


def can_train(*, user, project: Project) -> bool:
    """Start and cancel training runs, choose reward models for RL: engineers (and admins)."""
    return has_role(user=user, project=project, roles=[Role.ENGINEER])


# Checks that higher apps add on who may write labelling work (calibration: only `active`
# annotators). annotation cannot import them, so they register here (calibration's AppConfig).
# A check returns None to allow, or raises NotAllowed (or a subclass) with the reason.
WorkGate = Callable[..., None]
_work_gates: list[WorkGate] = []
# What the gates (and the queue's after-submit hook) need to know about a claimed assignment, read
# by the claim's own locking query instead of a query each (annotation/services/work.py): name ->
# factory(user) of an expression over the assignment row (OuterRef("project_id"), OuterRef("item_id")).
_claim_reads: dict[str, Callable] = {}


def work_gate_register(gate: WorkGate, *, reads: dict[str, Callable] | None = None) -> None:
    if gate not in _work_gates:
        _work_gates.append(gate)
    _claim_reads.update(reads or {})


def claim_read_names() -> tuple[str, ...]:
    return tuple(_claim_reads)


def claim_reads(user) -> dict:
    """The registered reads as expressions for this user, to annotate a claim query with."""
    return {name: factory(user) for name, factory in _claim_reads.items()}


def work_allowed_check(*, user, project: Project, member: bool | None = None, known: dict | None = None) -> None:
    """Raise NotAllowed unless `user` may write labelling work in `project` now: an annotator
    member (removed members may not), in a standing that allows live work. Checked by every
    write (submit, edit, skip, ranking, rewrite, revision, negative) inside its transaction, so
    a lease or a judgment held from before a change of standing or membership cannot be used.

    `member` and `known` are these same facts when the caller read them in its own locking query
    (work.assignment_claim); without them each check queries for itself."""
    # Not the per-request role cache: a membership removed a moment ago must count.
    if member is None:
        member = Membership.objects.filter(project=project, user=user, role=Role.ANNOTATOR).exists()
    if not member:
        raise NotAllowed("You are not an annotator of this project (any more).")
    for gate in _work_gates:
        gate(user=user, project=project, known=known or {})
