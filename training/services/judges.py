"""AI judges as raters (issue 22): a project registers judges (a reward model from the registry, a
local causal LM directory, a generative judge fine-tuned from the rm-r1 export, or an
OpenAI-compatible chat endpoint), and a judge labels comparisons *as a non-human annotator*:

- It has its own account with a judge membership (no login: no usable password, inactive), so its
  answers go through the same claim, validation, record and after-submit hooks as a person's
  (annotation.services.queue.judge_submit). Its calibration round goes through calibration_answer
  like anyone's, so its standing comes from the anchors; analytics treat it as a rater, so the
  dashboard shows its agreement and its own bias flags.
- Its labels are marked Judgment.by_judge, hold no slot of an item's k (people's k is untouched),
  are never shown to annotators (no page or API shows an annotator anyone's labels), and a set
  leaves them out unless its curation policy's judge_labels says tiebreak or include (the set's
  manifest carries the policy and its counts say how many were left out or counted).

Uses, each a background job (JudgeJob, the shared job lifecycle, progress on the page):
- calibration: the judge answers its calibration round (once a project has anchors);
- prelabel: every open live comparison gets the judge's label; people label blind, and the
  overturn rate (people's decisive judgments that chose the other side) is shown per judge;
- tiebreak: comparisons whose people's votes are in and split evenly get the judge's label;
- route (HyPER, Ding et al. 2025): the judge labels first; an item goes on to people only when the
  judge is unsure (P(winner) below its sure_at) or disagrees with the people who judged it
  before; otherwise the item is closed for people (its target drops to what is already leased).
  Switching dynamic k re-targets every live comparison, which re-opens such items.

Every call is kept (JudgeCall: verdict, latency, tokens, cost, or the failure's reason), for the
cost/latency line and the audit. A judge's failure on one item stores nothing for it and the job
goes on; the job's outcome counts the failures.
"""
from __future__ import annotations

import os
import re
import secrets
import time
import uuid
from collections import Counter
from collections.abc import Callable

import numpy as np
from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import transaction
from django.db.models import Count, F, Q, Sum
from django.db.models.functions import Greatest
from django.utils import timezone

from annotation.errors import DomainError, NotAllowed, ValidationFailed
from annotation.models import (
    Assignment, Choice, Item, ItemKind, ItemStatus, Judgment, Membership, Project, Role,
)
from annotation.services.jobs import JobKind, job_enqueue, job_fresh, job_guarded, job_kind_register
from annotation.services.judgments import JudgmentInput
from annotation.untrusted import MAX_TIME_SPENT_MS
from annotation.services.queue import judge_submit
from calibration.models import AnalyticsSnapshot, AnchorResult, Standing, StandingState
from calibration.services.queue import calibration_answer, question_next
from calibration.services.standing import standing_with_policy
from calibration.stats import wilson_interval

from .. import judge_backends
from ..judge_backends import JudgeError, Verdict
from ..models import Judge, JudgeCall, JudgeJob, JudgeKind, JudgeUse

LATENCY_WINDOW = 1000  # latency percentiles over a judge's latest successful calls
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 ._-]{0,99}$")
CAUSAL_MAX_NEW_TOKENS = int(os.environ.get("JUDGE_MAX_NEW_TOKENS", "256"))


# ---------------------------------------------------------------- registering


def judge_create(*, project: Project, name: str, kind: str, created_by=None, reward_model=None, model_dir: str = "",
                 endpoint_url: str = "", endpoint_model: str = "", api_key_env: str = "", sure_at: float = 0.8,
                 cost_per_call: float = 0.0, cost_per_1k_tokens: float = 0.0, timeout_seconds: int = 30,
                 evaluation: dict | None = None, source_run_id: int | None = None) -> Judge:
    """Register a judge and its account (all or nothing; each problem on its field)."""
    name = (name or "").strip()
    errors: dict[str, str] = {}
    if not NAME_RE.match(name):
        errors["name"] = "1 to 100 letters, digits, spaces, dots, dashes or underscores."
    elif Judge.objects.filter(project=project, name=name).exists():
        errors["name"] = "This project already has a judge of that name."
    if kind not in JudgeKind.values:
        errors["kind"] = f"One of {', '.join(JudgeKind.values)}."
    if kind == JudgeKind.REWARD_MODEL:
        if reward_model is None or reward_model.project_id != project.pk:
            errors["reward_model"] = "Choose one of this project's reward models."
    elif kind == JudgeKind.LOCAL_MODEL:
        if not model_dir.strip():
            errors["model_dir"] = "The directory of a transformers causal LM on the workers."
    elif kind == JudgeKind.ENDPOINT:
        if not re.match(r"^https?://[^\s/]+", endpoint_url or ""):
            errors["endpoint_url"] = "An http(s) URL, the API's base (…/v1)."
        if not (endpoint_model or "").strip():
            errors["endpoint_model"] = "The model name the endpoint expects."
        if api_key_env and api_key_env not in settings.JUDGE_KEY_ENVS:
            errors["api_key_env"] = (f"One of the variables the operator set aside for judge keys "
                                     f"({', '.join(settings.JUDGE_KEY_ENVS) or 'none'}: JUDGE_KEY_ENVS), or empty.")
    for field, value, low, high in (("sure_at", sure_at, 0.5, 1.0), ("cost_per_call", cost_per_call, 0.0, 1e6),
                                    ("cost_per_1k_tokens", cost_per_1k_tokens, 0.0, 1e6),
                                    ("timeout_seconds", timeout_seconds, 1, 600)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
            errors[field] = f"From {low} to {high}."
    if errors:
        raise ValidationFailed("Please fix the highlighted fields.", field_errors=errors)
    with transaction.atomic():
        user = get_user_model().objects.create(username=_username(project, name), is_active=False)
        user.set_unusable_password()
        user.save(update_fields=["password"])
        Membership.objects.create(project=project, user=user, role=Role.ANNOTATOR, judge=True)
        return Judge.objects.create(
            project=project, name=name, kind=kind, user=user, created_by=created_by,
            reward_model=reward_model if kind == JudgeKind.REWARD_MODEL else None,
            model_dir=model_dir.strip() if kind == JudgeKind.LOCAL_MODEL else "",
            endpoint_url=endpoint_url.strip() if kind == JudgeKind.ENDPOINT else "",
            endpoint_model=endpoint_model.strip() if kind == JudgeKind.ENDPOINT else "",
            api_key_env=api_key_env.strip() if kind == JudgeKind.ENDPOINT else "",
            sure_at=float(sure_at), cost_per_call=float(cost_per_call), cost_per_1k_tokens=float(cost_per_1k_tokens),
            timeout_seconds=int(timeout_seconds), evaluation=evaluation or {}, source_run_id=source_run_id)


def _username(project: Project, name: str) -> str:
    """A readable, unused, visibly non-human username: judge.<project>.<name>, in the characters
    Django's username validator allows (the admin can still edit the account)."""
    base = f"judge.{project.slug}.{re.sub(r'[^A-Za-z0-9_-]+', '-', name)}"[:140]
    users = get_user_model().objects
    candidate = base
    while users.filter(username=candidate).exists():
        candidate = f"{base}-{secrets.token_hex(2)}"
    return candidate


# ---------------------------------------------------------------- one verdict


def _verdict(judge: Judge, *, messages: list[dict], left: str, right: str) -> Verdict:
    if judge.kind == JudgeKind.ENDPOINT:
        spec = judge.project.current_spec.text if judge.project.current_spec_id else ""
        if judge.api_key_env and judge.api_key_env not in settings.JUDGE_KEY_ENVS:
            raise JudgeError(f"{judge.api_key_env} is not among the variables set aside for judge keys (JUDGE_KEY_ENVS)")
        key = os.environ.get(judge.api_key_env, "") if judge.api_key_env else ""
        if judge.api_key_env and not key:
            raise JudgeError(f"the environment variable {judge.api_key_env} is not set on the worker")
        return judge_backends.endpoint_verdict(
            url=judge.endpoint_url, model=judge.endpoint_model, api_key=key, timeout=judge.timeout_seconds,
            allowed_hosts=settings.JUDGE_ENDPOINT_HOSTS,
            messages=judge_backends.endpoint_messages(spec_text=spec, messages=messages, left=left, right=right))
    if judge.kind == JudgeKind.REWARD_MODEL:
        if judge.reward_model is None:
            raise JudgeError("the judge's reward model was removed from the registry")
        return judge_backends.reward_model_verdict(path=judge.reward_model.path, name=judge.reward_model.name,
                                                   messages=messages, left=left, right=right)
    return judge_backends.causal_verdict(path=judge.model_dir, messages=messages, left=left, right=right,
                                         max_new_tokens=CAUSAL_MAX_NEW_TOKENS)


def _call(judge: Judge, *, item: Item, purpose: str, shown_left: str) -> tuple[Verdict | None, JudgeCall]:
    """Ask the judge about `item` shown with `shown_left` on the left; the call is recorded either way."""
    left, right = (item.response_a, item.response_b) if shown_left == "a" else (item.response_b, item.response_a)
    started = time.perf_counter()
    verdict, error = None, ""
    try:
        verdict = _verdict(judge, messages=item.prompt.messages, left=left.text, right=right.text)
    except JudgeError as exc:
        error = str(exc)
    except Exception as exc:  # a broken model directory, out of memory, ...: the reason is kept
        error = f"{type(exc).__name__}: {exc}"[:2000]
    latency = int((time.perf_counter() - started) * 1000)
    tokens_in, tokens_out = (verdict.tokens_in, verdict.tokens_out) if verdict else (0, 0)
    cost = judge.cost_per_call + judge.cost_per_1k_tokens * (tokens_in + tokens_out) / 1000.0
    call = JudgeCall.objects.create(
        judge=judge, item=item, purpose=purpose, ok=verdict is not None, shown_left=shown_left, latency_ms=latency,
        tokens_in=tokens_in, tokens_out=tokens_out, cost=round(cost, 8), error=error,
        p_a=None if verdict is None else (verdict.p_left if shown_left == "a" else 1.0 - verdict.p_left),
        choice="" if verdict is None else _canonical(verdict.choice, shown_left))
    return verdict, call


def _canonical(shown_choice: str, shown_left: str) -> str:
    if shown_choice == "left":
        return shown_left
    if shown_choice == "right":
        return "b" if shown_left == "a" else "a"
    return shown_choice


def _input(judge: Judge, verdict: Verdict, latency_ms: int) -> JudgmentInput:
    """The judge's answer as an annotator's submit: its choice, a strength from its confidence, and
    its reason with a line saying who gave it and how sure it was."""
    decisive = verdict.choice in ("left", "right")
    confidence = verdict.confidence
    strength = ("strong" if confidence >= 0.9 else "clear" if confidence >= 0.7 else "slight") if decisive else ""
    reason = verdict.rationale.strip() or "No reason given."
    rationale = (f"{reason[:3500]}\n— AI judge {judge.name} ({judge.get_kind_display()}); "
                 f"P(A is better) = {verdict.p_left:.3f} as shown.")
    return JudgmentInput(choice=verdict.choice, strength=strength, rationale=rationale,
                         time_spent_ms=min(max(latency_ms, 0), MAX_TIME_SPENT_MS))


def judge_label(*, judge: Judge, item: Item, purpose: str) -> JudgeCall:
    """The judge labels one live comparison through the submit path; the call says how it went."""
    shown_left = secrets.choice("ab")
    verdict, call = _call(judge, item=item, purpose=purpose, shown_left=shown_left)
    if verdict is None:
        return call
    try:
        outcome = judge_submit(item=item, annotator=judge.user, shown_left=shown_left,
                               data=_input(judge, verdict, call.latency_ms), client_token=uuid.uuid4())
    except (DomainError, ValidationFailed) as exc:
        detail = getattr(exc, "field_errors", None) or {}
        call.ok, call.error = False, f"{exc}{' ' + str(detail) if detail else ''}"[:2000]
        call.save(update_fields=["ok", "error"])
        return call
    call.judgment = outcome.judgment
    call.save(update_fields=["judgment"])
    return call


# ---------------------------------------------------------------- uses


Progress = Callable[[int, int], None]


def judge_calibrate(*, judge: Judge, progress: Progress | None = None) -> dict:
    """The judge answers its calibration round like a new annotator; its standing follows."""
    standing, _policy = standing_with_policy(project=judge.project, annotator=judge.user)
    out = Counter()
    while True:
        question = question_next(project=judge.project, annotator=judge.user)
        if question is None:
            break
        item = question.anchor.item
        verdict, call = _call(judge, item=item, purpose=JudgeUse.CALIBRATION, shown_left=question.shown_left)
        if verdict is None:
            out["failed"] += 1
            raise JudgeError(f"the judge failed on a calibration question ({call.error}); its round stays open")
        answer = calibration_answer(question_id=question.pk, annotator=judge.user,
                                    data=_input(judge, verdict, call.latency_ms))
        out["answered"] += 1
        out["correct"] += int(bool(answer.result.correct))
        if progress:
            progress(out["answered"], out["answered"] + (0 if answer.finished else 1))
        if answer.finished:
            break
    state = Standing.objects.filter(project=judge.project, annotator=judge.user).values_list("state", flat=True).first()
    return {**out, "standing": state or standing.state}


def _open_items(judge: Judge):
    """Live comparisons this judge has not labelled."""
    return (Item.objects.filter(project=judge.project, kind=ItemKind.COMPARISON, in_live_queue=True,
                                reask_of__isnull=True, status=ItemStatus.ACTIVE)
            .exclude(_labelled_by(judge))
            .select_related("prompt", "response_a", "response_b").order_by("id"))


def _labelled_by(judge: Judge) -> Q:
    return Q(pk__in=Assignment.objects.filter(annotator=judge.user).values("item_id"))


def _people_votes(item_ids) -> dict[int, Counter]:
    votes: dict[int, Counter] = {}
    for item_id, choice in Judgment.objects.filter(item_id__in=list(item_ids), by_judge=False,
                                                   reask_of__isnull=True).values_list("item_id", "choice"):
        votes.setdefault(item_id, Counter())[choice] += 1
    return votes


def _must_be_active(judge: Judge) -> None:
    standing, _ = standing_with_policy(project=judge.project, annotator=judge.user)
    if standing.state != StandingState.ACTIVE:
        raise NotAllowed(f"The judge is {standing.get_state_display().lower()}, not active: "
                         f"its calibration round comes first (use: calibration).")


def _each(judge: Judge, items: list[Item], purpose: str, progress: Progress | None, after=None) -> Counter:
    out = Counter()
    for n, item in enumerate(items, 1):
        call = judge_label(judge=judge, item=item, purpose=purpose)
        out["labelled" if call.ok else "failed"] += 1
        if call.ok and after is not None:
            after(item, call, out)
        if progress:
            progress(n, len(items))
    return out


def judge_prelabel(*, judge: Judge, limit: int | None = None, progress: Progress | None = None) -> dict:
    """A label from the judge on every open live comparison it has not labelled (people label blind)."""
    _must_be_active(judge)
    items = [i for i in _open_items(judge).filter(judgment_count__lt=F("target_judgments"))[: limit or None]]
    return dict(_each(judge, items, JudgeUse.PRELABEL, progress))


def judge_tiebreak(*, judge: Judge, limit: int | None = None, progress: Progress | None = None) -> dict:
    """The judge's label on comparisons whose people's judgments are all in and split evenly A/B."""
    _must_be_active(judge)
    done = list(_open_items(judge).filter(judgment_count__gte=F("target_judgments"), judgment_count__gt=0))
    votes = _people_votes(i.pk for i in done)
    tied = [i for i in done if votes.get(i.pk) and votes[i.pk][Choice.A] == votes[i.pk][Choice.B] >= 1]
    return dict(_each(judge, tied[: limit or None], JudgeUse.TIEBREAK, progress))


def judge_route(*, judge: Judge, limit: int | None = None, progress: Progress | None = None) -> dict:
    """HyPER routing: the judge labels open comparisons first; one it is sure of, and agrees on with
    the people who judged it already (or nobody has), is closed for people."""
    _must_be_active(judge)
    items = list(_open_items(judge).filter(assigned_count__lt=F("target_judgments"))[: limit or None])

    def decide(item: Item, call: JudgeCall, out: Counter) -> None:
        p_a = call.p_a if call.p_a is not None else 0.5
        sure = max(p_a, 1.0 - p_a) >= judge.sure_at and call.choice in (Choice.A, Choice.B)
        people = _people_votes([item.pk]).get(item.pk, Counter())
        majority = (Choice.A if people[Choice.A] > people[Choice.B] else Choice.B if people[Choice.B] > people[Choice.A]
                    else "")
        decisive = people[Choice.A] + people[Choice.B]
        agrees = decisive == 0 or call.choice == majority
        if sure and agrees:
            Item.objects.filter(pk=item.pk).update(target_judgments=Greatest(F("assigned_count"), F("judgment_count")),
                                                   needs_skill=False, closed_by_judge=True)
            out["closed_for_people"] += 1
        else:
            out["sent_to_people_unsure" if not sure else "sent_to_people_disagrees"] += 1

    return dict(_each(judge, items, JudgeUse.ROUTE, progress, after=decide))


USES = {JudgeUse.CALIBRATION: judge_calibrate, JudgeUse.PRELABEL: judge_prelabel, JudgeUse.TIEBREAK: judge_tiebreak,
        JudgeUse.ROUTE: judge_route}


# ---------------------------------------------------------------- jobs


def _send_judge_job(job_id: int) -> None:
    from ..tasks import run_judge_job  # tasks import services

    job = JudgeJob.objects.select_related("judge").get(pk=job_id)
    # An endpoint judge only waits on the network; a model judge needs the model workers.
    queue = settings.CELERY_TASK_DEFAULT_QUEUE if job.judge.kind == JudgeKind.ENDPOINT else settings.TRAINING_QUEUE
    run_judge_job.apply_async(args=[job_id], queue=queue)


JUDGE_JOBS = job_kind_register(JobKind(name="judge job", model=JudgeJob, task="training.tasks.run_judge_job",
                                       send=_send_judge_job, nothing_done="Labels stored before it stopped are kept."))


def judge_job_request(*, judge: Judge, use: str, limit: int | None = None, created_by=None) -> JudgeJob:
    errors = {}
    if use not in JudgeUse.values:
        errors["use"] = f"One of {', '.join(JudgeUse.values)}."
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= 100_000):
        errors["limit"] = "A whole number from 1 to 100000, or none for all."
    if not judge.active:
        errors["judge"] = "This judge is switched off."
    elif JudgeJob.objects.filter(judge=judge, status__in=("queued", "running")).exists():
        errors["judge"] = "This judge has work queued or running; wait for it (each call costs)."
    if errors:
        raise ValidationFailed("Please fix the highlighted fields.", field_errors=errors)
    job = JudgeJob.objects.create(judge=judge, use=use, limit=limit, created_by=created_by)
    job_enqueue(JUDGE_JOBS, job.pk)
    return job


def judge_job_run(*, job_id: int) -> JudgeJob:
    def progress(done: int, total: int) -> None:
        JudgeJob.objects.filter(pk=job_id).update(done=done, total=total, percent=int(100 * done / max(total, 1)),
                                                  phase="labelling", heartbeat_at=timezone.now())

    def body() -> None:
        job = JudgeJob.objects.select_related("judge__project__current_spec", "judge__user",
                                              "judge__reward_model").get(pk=job_id)
        kwargs = {} if job.use == JudgeUse.CALIBRATION else {"limit": job.limit}
        try:
            outcome = USES[job.use](judge=job.judge, progress=progress, **kwargs)
        except (JudgeError, NotAllowed) as exc:
            raise JudgeJobFailed(str(exc)) from None
        JudgeJob.objects.filter(pk=job_id).update(status="succeeded", phase="done", percent=100, outcome=outcome,
                                                  finished_at=timezone.now())

    job_guarded(JUDGE_JOBS, job_id, body, phase="starting", percent=1)
    return JudgeJob.objects.get(pk=job_id)


class JudgeJobFailed(Exception):
    """A judge job that cannot go on; the message is the reason shown."""


def judge_job_progress(*, job: JudgeJob) -> JudgeJob:
    return job_fresh(JUDGE_JOBS, job)


# ---------------------------------------------------------------- how a judge is doing


def judges_report(*, project: Project) -> list[dict]:
    """Per judge: standing and calibration, agreement with people, pre-label overturn rate, bias
    flags, and the cost/latency line."""
    judges = list(Judge.objects.filter(project=project).select_related("user", "reward_model").order_by("name"))
    if not judges:
        return []
    flags = _latest_flags(project)
    states = dict(Standing.objects.filter(project=project, annotator__in=[j.user for j in judges])
                  .values_list("annotator_id", "state"))
    out = []
    for judge in judges:
        # Counted by the database, not read row by row: the page and the API read this per request.
        calls = JudgeCall.objects.filter(judge=judge).aggregate(
            n=Count("id"), failed=Count("id", filter=Q(ok=False)), tokens=Sum(F("tokens_in") + F("tokens_out")),
            cost=Sum("cost"))
        latencies = np.array(list(JudgeCall.objects.filter(judge=judge, ok=True).order_by("-id")
                                  .values_list("latency_ms", flat=True)[:LATENCY_WINDOW]), dtype=float)
        results = list(AnchorResult.objects.filter(project=project, annotator=judge.user).values_list("correct", "clear_cut"))
        labels = dict(Judgment.objects.filter(project=project, annotator=judge.user, reask_of__isnull=True)
                      .values_list("item_id", "choice"))
        people = _people_votes(labels)
        out.append({
            "judge": judge,
            "standing": states.get(judge.user_id, ""),
            "anchors_answered": len(results),
            "anchor_accuracy": (sum(1 for c, _ in results if c) / len(results)) if results else None,
            "labels": len(labels),
            "agreement": _agreement(labels, people),
            "overturn": _overturn(judge, people),
            "flags": flags.get(judge.user.username, []),
            "calls": calls["n"],
            "failed": calls["failed"],
            "latency_p50_ms": float(np.percentile(latencies, 50)) if latencies.size else None,
            "latency_p95_ms": float(np.percentile(latencies, 95)) if latencies.size else None,
            "tokens": calls["tokens"] or 0,
            "cost": round(calls["cost"] or 0.0, 6),
            "cost_per_label": round((calls["cost"] or 0.0) / len(labels), 6) if labels else None,
        })
    return out


def _latest_flags(project: Project) -> dict[str, list[str]]:
    snapshot = (AnalyticsSnapshot.objects.filter(project=project, status="succeeded")
                .order_by("-finished_at").only("payload").first())
    if snapshot is None:
        return {}
    rows = [*snapshot.payload.get("annotators", []), *snapshot.payload.get("judges", [])]
    return {r["username"]: sorted({f["kind"] for f in r.get("flags", [])}) for r in rows}


def _majority(votes: Counter) -> str:
    if votes[Choice.A] > votes[Choice.B]:
        return Choice.A
    if votes[Choice.B] > votes[Choice.A]:
        return Choice.B
    return ""


def _agreement(labels: dict[int, str], people: dict[int, Counter]) -> dict:
    """The judge against people's majority, on items where people have one and the judge chose A or B:
    the share that agree (Wilson interval) and Cohen's kappa (scikit-learn)."""
    from sklearn.metrics import cohen_kappa_score

    pairs = [(labels[i], _majority(v)) for i, v in people.items()
             if labels.get(i) in (Choice.A, Choice.B) and _majority(v)]
    if not pairs:
        return {"n": 0, "rate": None, "low": None, "high": None, "kappa": None}
    agree = sum(1 for j, p in pairs if j == p)
    low, high = wilson_interval(agree, len(pairs))
    judge_side, people_side = zip(*pairs)
    kappa = float(cohen_kappa_score(judge_side, people_side)) if len(set(judge_side) | set(people_side)) > 1 else None
    return {"n": len(pairs), "rate": agree / len(pairs), "low": low, "high": high,
            "kappa": None if kappa is None or np.isnan(kappa) else kappa}


def _overturn(judge: Judge, people: dict[int, Counter]) -> dict:
    """Of the items the judge pre-labelled A or B where people (who never saw the pre-label) have a
    majority, the share where that majority went the other way, with its Wilson interval: items,
    not judgments, are the independent units. The share of people's decisive judgments against the
    pre-label comes along as judgment_rate."""
    prelabels = dict(JudgeCall.objects.filter(judge=judge, purpose=JudgeUse.PRELABEL, ok=True,
                                              judgment__isnull=False, choice__in=(Choice.A, Choice.B))
                     .values_list("item_id", "choice"))
    n = overturned = judgments = against = 0
    for item_id, choice in prelabels.items():
        votes = people.get(item_id, Counter())
        judgments += votes[Choice.A] + votes[Choice.B]
        against += votes[Choice.B if choice == Choice.A else Choice.A]
        majority = _majority(votes)
        if majority:
            n += 1
            overturned += majority != choice
    out = {"n": n, "items": len(prelabels), "judgments": judgments,
           "judgment_rate": against / judgments if judgments else None}
    if not n:
        return {**out, "rate": None, "low": None, "high": None}
    low, high = wilson_interval(overturned, n)
    return {**out, "rate": overturned / n, "low": low, "high": high}
