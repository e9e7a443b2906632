"""Who may do what in a project. Roles are per project; a Django superuser is admin everywhere."""
from __future__ import annotations

from collections.abc import Iterable

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
