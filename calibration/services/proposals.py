"""Flags that act: each bias flag on an annotator becomes a proposal to send them to retraining,
which a lead accepts (their standing changes through standing_override, so the change, the flag
and the lead are in the audit trail) or rejects with one click (the proposal keeps who decided,
when and the note). A flag already proposed and waiting is not proposed twice, nor one a lead
decided in the last REPROPOSE_AFTER days."""
from __future__ import annotations

from datetime import timedelta

from django.contrib.auth import get_user_model
from django.db import IntegrityError, transaction
from django.utils import timezone

from annotation.errors import Conflict
from annotation.models import Project

from ..models import FlagProposal, ProposalStatus, Standing, StandingState
from .standing import standing_override

REPROPOSE_AFTER = timedelta(days=14)


def proposals_sync(*, project: Project, payload: dict, now=None) -> int:
    """Open a proposal for every flag in a computed dashboard that has none (see the module).
    Annotators already out of active work (retraining, excluded) get none. Returns how many."""
    now = now or timezone.now()
    by_name = dict(get_user_model().objects.filter(
        username__in=[r["username"] for r in payload.get("annotators", []) if r.get("flags")]).values_list("username", "pk"))
    states = dict(Standing.objects.filter(project=project).values_list("annotator_id", "state"))
    recent = set(FlagProposal.objects.filter(project=project).filter(
        status=ProposalStatus.OPEN).values_list("annotator_id", "flag_kind")) | set(
        FlagProposal.objects.filter(project=project, decided_at__gte=now - REPROPOSE_AFTER).values_list("annotator_id", "flag_kind"))
    made = 0
    for row in payload.get("annotators", []):
        annotator_id = by_name.get(row["username"])
        if annotator_id is None or states.get(annotator_id, StandingState.ACTIVE) != StandingState.ACTIVE:
            continue
        for flag in row["flags"]:
            if (annotator_id, flag["kind"]) in recent:
                continue
            try:
                with transaction.atomic():
                    FlagProposal.objects.create(
                        project=project, annotator_id=annotator_id, flag_kind=flag["kind"], title=flag["title"][:200],
                        explanation=flag["explanation"], evidence=flag.get("evidence", {}),
                        examples=flag.get("examples", [])[:10])
            except IntegrityError:  # another computation opened it a moment ago
                continue
            recent.add((annotator_id, flag["kind"]))
            made += 1
    return made


@transaction.atomic
def proposal_decide(*, proposal_id: int, project: Project, accept: bool, actor, note: str = "") -> FlagProposal:
    proposal = FlagProposal.objects.select_for_update().select_related("annotator").filter(
        pk=proposal_id, project=project).first()
    if proposal is None:
        from django.http import Http404

        raise Http404("No such proposal.")
    if proposal.status != ProposalStatus.OPEN:
        raise Conflict(f"This proposal was already {proposal.get_status_display().lower()}.")
    if accept:
        reason = f"Bias flag accepted: {proposal.title}. {proposal.explanation}"
        if note.strip():
            reason += f" Lead's note: {note.strip()}"
        standing_override(project=project, annotator=proposal.annotator, to_state=proposal.proposed_state,
                          reason=reason, actor=actor)
    proposal.status = ProposalStatus.ACCEPTED if accept else ProposalStatus.REJECTED
    proposal.decided_by, proposal.decided_at, proposal.decision_note = actor, timezone.now(), note.strip()
    proposal.save(update_fields=["status", "decided_by", "decided_at", "decision_note"])
    return proposal
