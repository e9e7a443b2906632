"""The red-team console (issue 23): people try to write responses a reward model scores high that a
reasonable person finds bad, and what they find becomes labelled data.

- Who: leads and engineers of the project, and annotators a lead lets in (RedTeamAccess).
- An attempt (prompt, response, optional reference response, optional policy run whose prompt it
  is) is scored live by the scoring worker (`celery -A config worker -Q scoring`), which keeps
  each reward model loaded between requests (training/judge_backends._reward_scorer), never in
  the web process. It stores the response's score, the reference's, and the response's percentile
  among that prompt's samples under the same model: the policy run's samples of that prompt when a
  run is named, else earlier attempts on the same prompt and model.
- "Submit as a hack": the attempt (with its reference) and a flaw type and note wait for a second
  person (someone else allowed in the console) to confirm or reject it. A confirmed hack becomes an
  adversarial pair in the project, reference > hack (annotation.DerivedPair, source redteam), which
  sets and exports carry like any adversarial pair; the found-hacks board counts them per model.
"""
from __future__ import annotations

import math
from collections import Counter

from django.conf import settings
from django.db import transaction
from django.http import Http404
from django.utils import timezone

from annotation.errors import Conflict, NotAllowed, ValidationFailed
from annotation.importing import MAX_TEXT
from annotation.models import (
    DerivedPair, FlawType, Membership, PairTag, Project, Prompt, Response, Role, Strength, last_user_turn,
)
from annotation.untrusted import text_checked
from rewards.models import RewardModel

from ..models import (
    RL_KINDS, AttemptStatus, HackStatus, RedTeamAccess, RedTeamAttempt, RedTeamHack, Run, RunSample,
)

SOURCE = "redteam"


def can_redteam(*, user, project: Project) -> bool:
    if not user.is_authenticated:
        return False
    roles = set(Membership.objects.filter(project=project, user=user, judge=False).values_list("role", flat=True))
    if roles & {Role.LEAD, Role.ENGINEER}:
        return True
    return Role.ANNOTATOR in roles and RedTeamAccess.objects.filter(project=project, user=user).exists()


def redteam_access_set(*, project: Project, lead, username: str, allowed: bool) -> None:
    """A lead lets an annotator of the project into the console, or out of it."""
    if not Membership.objects.filter(project=project, user=lead, role=Role.LEAD).exists():
        raise NotAllowed("Only leads decide who red-teams.")
    member = Membership.objects.filter(project=project, user__username=username, role=Role.ANNOTATOR,
                                       judge=False).select_related("user").first()
    if member is None:
        raise ValidationFailed("No such annotator here.", field_errors={"username": "Not an annotator of this project."})
    if allowed:
        RedTeamAccess.objects.get_or_create(project=project, user=member.user, defaults={"granted_by": lead})
    else:
        RedTeamAccess.objects.filter(project=project, user=member.user).delete()


def _text(value, name: str, errors: dict, *, required: bool) -> str:
    text, problem = text_checked(value, required=required, limit=MAX_TEXT)
    if problem:
        errors[name] = problem
    return text


def attempt_create(*, project: Project, author, reward_model: RewardModel | None, prompt, response, reference="",
                   policy_run: Run | None = None) -> RedTeamAttempt:
    """Queue an attempt for live scoring (the scoring worker), checked whole first."""
    if not can_redteam(user=author, project=project):
        raise NotAllowed("Only leads, engineers and annotators a lead let in use the red-team console.")
    errors: dict[str, str] = {}
    if reward_model is None or reward_model.project_id != project.pk:
        errors["reward_model"] = "Choose one of this project's reward models."
    if policy_run is not None and (policy_run.project_id != project.pk or policy_run.kind not in RL_KINDS):
        errors["policy_run"] = "A policy run of this project, or none."
    values = {name: _text(value, name, errors, required=name != "reference")
              for name, value in (("prompt", prompt), ("response", response), ("reference", reference))}
    if values["reference"] and values["reference"] == values["response"]:
        errors["reference"] = "The same text as the response."
    if errors:
        raise ValidationFailed("Please fix the highlighted fields.", field_errors=errors)
    attempt = RedTeamAttempt.objects.create(project=project, reward_model=reward_model, author=author,
                                            policy_run=policy_run, **values)
    transaction.on_commit(lambda: _send(attempt.pk))
    return attempt


def _send(attempt_id: int) -> None:
    from ..tasks import score_redteam_attempt  # tasks import services

    # A message nobody takes within the time a person waits is dropped; the attempt then fails
    # with the reason when it is next read (attempt_fresh).
    score_redteam_attempt.apply_async(args=[attempt_id], queue=settings.SCORING_QUEUE, expires=STALE_AFTER_SECONDS)


STALE_AFTER_SECONDS = 60


def attempt_fresh(*, attempt: RedTeamAttempt) -> RedTeamAttempt:
    """The attempt as it stands; one queued for longer than a person waits is failed with the reason
    (no scoring worker running, or its message lost), so the page stops polling."""
    if attempt.status == AttemptStatus.QUEUED and (timezone.now() - attempt.created_at).total_seconds() > STALE_AFTER_SECONDS:
        RedTeamAttempt.objects.filter(pk=attempt.pk, status=AttemptStatus.QUEUED).update(
            status=AttemptStatus.FAILED, error=f"No scoring worker answered within {STALE_AFTER_SECONDS} s: is "
                                               "`celery -A config worker -Q scoring` running? Try again.")
        attempt.refresh_from_db()
    return attempt


def attempt_score(*, attempt_id: int) -> RedTeamAttempt:
    """On the scoring worker: the response, the reference and the prompt's samples, in one batch."""
    from ..judge_backends import _reward_scorer

    attempt = RedTeamAttempt.objects.select_related("reward_model").filter(pk=attempt_id).first()
    if attempt is None or attempt.status != AttemptStatus.QUEUED:
        return attempt  # deleted meanwhile, or already scored (a redelivered message)
    try:
        scorer = _reward_scorer(attempt.reward_model.path)  # loaded once per worker process, then kept
        samples = _sample_texts(attempt)
        texts = [attempt.response] + ([attempt.reference] if attempt.reference else []) + samples
        scores = [float(s) for s in scorer([attempt.prompt] * len(texts), texts)]
        score = scores[0]
        reference_score = scores[1] if attempt.reference else None
        pool = scores[2 if attempt.reference else 1:] or _earlier_scores(attempt)
        if not all(math.isfinite(s) for s in scores):
            raise ValueError("the reward model gave a non-finite score")
    except Exception as exc:  # noqa: BLE001 - the attempt says why; nothing else depends on it
        RedTeamAttempt.objects.filter(pk=attempt.pk).update(status=AttemptStatus.FAILED,
                                                            error=f"{type(exc).__name__}: {exc}"[:2000])
        return RedTeamAttempt.objects.get(pk=attempt.pk)
    now = timezone.now()
    RedTeamAttempt.objects.filter(pk=attempt.pk).update(
        status=AttemptStatus.SCORED, score=score, reference_score=reference_score,
        percentile=(sum(1 for s in pool if s < score) / len(pool)) if pool else None, samples=len(pool),
        scored_at=now, latency_ms=int((now - attempt.created_at).total_seconds() * 1000))
    return RedTeamAttempt.objects.get(pk=attempt.pk)


def _sample_texts(attempt: RedTeamAttempt) -> list[str]:
    """A named policy run's samples of this very prompt (by its text), scored now by this model
    (at most 200; the prompts are read once per run and worker process)."""
    if attempt.policy_run_id is None:
        return []
    by_prompt = _run_prompts.get(attempt.policy_run_id)
    if by_prompt is None:
        texts = {pk: last_user_turn(messages) for pk, messages in Prompt.objects.filter(
            pk__in=RunSample.objects.filter(run_id=attempt.policy_run_id).values("prompt_id")).values_list(
            "pk", "messages")}
        by_prompt = _run_prompts[attempt.policy_run_id] = {}
        for text, pk in ((t, pk) for pk, t in texts.items()):
            by_prompt.setdefault(text, []).append(pk)
    ids = by_prompt.get(attempt.prompt.strip(), [])
    return list(RunSample.objects.filter(run_id=attempt.policy_run_id, prompt_id__in=ids)
                .order_by("pk").values_list("completion", flat=True)[:200])


_run_prompts: dict[int, dict[str, list[int]]] = {}  # per worker process: a finished run's prompts do not change


def _earlier_scores(attempt: RedTeamAttempt) -> list[float]:
    """Without a policy run: the scores earlier attempts on the same prompt got from the same model."""
    rows = RedTeamAttempt.objects.filter(project_id=attempt.project_id, reward_model_id=attempt.reward_model_id,
                                         prompt=attempt.prompt, status=AttemptStatus.SCORED).exclude(pk=attempt.pk)
    out = []
    for score, reference in rows.values_list("score", "reference_score"):
        out += [s for s in (score, reference) if s is not None]
    return out


# ---------------------------------------------------------------- hacks


def hack_submit(*, attempt: RedTeamAttempt, author, flaw_type: str, note: str) -> RedTeamHack:
    if attempt.author_id != author.pk:
        raise NotAllowed("Only the attempt's author submits it as a hack.")
    errors = {}
    if attempt.status != AttemptStatus.SCORED:
        errors["attempt"] = "The attempt is not scored yet."
    if not attempt.reference:
        errors["reference"] = "A hack needs the reference response it should lose to: write one and score again."
    elif attempt.status == AttemptStatus.SCORED and not attempt.score > attempt.reference_score:
        errors["score"] = "The model already ranks the reference above this response: it is not a hack of this model."
    if flaw_type not in FlawType.values:
        errors["flaw_type"] = f"One of {', '.join(FlawType.values)}."
    note = note.strip() if isinstance(note, str) else ""
    if len(note) < 10:
        errors["note"] = "Say in a sentence why the response is bad (at least 10 characters)."
    if errors:
        raise ValidationFailed("Please fix the highlighted fields.", field_errors=errors)
    hack, created = RedTeamHack.objects.get_or_create(attempt=attempt, defaults={"flaw_type": flaw_type, "note": note})
    if not created:
        raise Conflict("This attempt was already submitted as a hack.")
    return hack


@transaction.atomic
def hack_review(*, hack_id: int, project: Project, reviewer, confirm: bool, note: str = "") -> RedTeamHack:
    """A second person confirms (it becomes an adversarial pair, reference > hack) or rejects it."""
    hack = (RedTeamHack.objects.select_for_update(of=("self",)).select_related("attempt")
            .filter(pk=hack_id, attempt__project=project).first())
    if hack is None:
        raise Http404("No such hack.")
    if not can_redteam(user=reviewer, project=project):
        raise NotAllowed("Only people in the red-team console review hacks.")
    if hack.attempt.author_id == reviewer.pk:
        raise NotAllowed("A second person confirms a hack, not its author.")
    if hack.status != HackStatus.PENDING:
        raise Conflict(f"This hack was already {hack.get_status_display().lower()}.")
    hack.status = HackStatus.CONFIRMED if confirm else HackStatus.REJECTED
    hack.reviewed_by, hack.reviewed_at, hack.review_note = reviewer, timezone.now(), (note or "").strip()
    if confirm:
        hack.pair = _pair(hack)
    hack.save()
    return hack


def _pair(hack: RedTeamHack) -> DerivedPair:
    attempt = hack.attempt
    prompt = Prompt.objects.create(project_id=attempt.project_id, messages=[{"role": "user", "content": attempt.prompt}],
                                   source=SOURCE)
    reference = Response.objects.create(prompt=prompt, text=attempt.reference, metadata={"redteam": "reference"})
    bad = Response.objects.create(prompt=prompt, text=attempt.response,
                                  metadata={"redteam": "hack", "reward_model": attempt.reward_model_id,
                                            "score": attempt.score, "reference_score": attempt.reference_score})
    return DerivedPair.objects.create(project_id=attempt.project_id, prompt=prompt, chosen=reference, rejected=bad,
                                      strength=Strength.STRONG, tag=PairTag.ADVERSARIAL, flaw_type=hack.flaw_type,
                                      author_id=attempt.author_id, source=SOURCE, note=hack.note)


def hacks_board(*, project: Project) -> list[dict]:
    """Per reward model: hacks confirmed, waiting and rejected, their flaw types, and how far the
    hacks scored above their references (the score gap)."""
    rows: dict[int, dict] = {}
    hacks = RedTeamHack.objects.filter(attempt__project=project).select_related("attempt__reward_model")
    for hack in hacks:
        model = hack.attempt.reward_model
        row = rows.setdefault(model.pk, {"reward_model": model, "confirmed": 0, "pending": 0, "rejected": 0,
                                         "flaws": Counter(), "gaps": []})
        row[hack.status] += 1
        if hack.status == HackStatus.CONFIRMED:
            row["flaws"][hack.flaw_type] += 1
            if hack.attempt.reference_score is not None:
                row["gaps"].append(hack.attempt.score - hack.attempt.reference_score)
    out = []
    for row in rows.values():
        gaps = row.pop("gaps")
        out.append({**row, "flaws": dict(row["flaws"]), "mean_gap": sum(gaps) / len(gaps) if gaps else None,
                    "max_gap": max(gaps) if gaps else None})
    return sorted(out, key=lambda r: -r["confirmed"])


def confirmed_hacks(*, reward_model: RewardModel) -> int:
    return RedTeamHack.objects.filter(attempt__reward_model=reward_model, status=HackStatus.CONFIRMED).count()


def confirmed_hack_pairs(*, project: Project) -> list[tuple[str, str, str]]:
    """(prompt, reference, hack) of every confirmed hack of the project, whichever model it beat:
    the next reward model is checked on all of them (rewards.evaluation: hacks_fixed)."""
    return list(RedTeamHack.objects.filter(attempt__project=project, status=HackStatus.CONFIRMED)
                .order_by("pk").values_list("attempt__prompt", "attempt__reference", "attempt__response"))

