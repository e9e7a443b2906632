"""Live production feedback (issue 23): the product's own backend posts what its users flag
(`POST /api/projects/<slug>/production-feedback/`, a token scoped to that one endpoint and project),
and a sample of it becomes labelling work.

The order of things, for every request:
1. **Validated** whole, each problem named by its field: a conversation of 1 to MAX_TURNS turns
   ending with the user's, the model's answer, the user's signal (thumbs_down, report or comment)
   with a reason and their own words, optional reference answer, model name, domain and metadata.
2. **Idempotent** by `external_id`: the same id with the same body answers the first result (200);
   with another body, 409. Nothing is counted twice.
3. **Scrubbed** before anything is stored (SCRUB_RULES, in this order, on every text and on every
   string inside metadata): e-mail addresses (Unicode local parts too) become [email]; digits
   written the way card numbers are (one run of 13 to 19, groups of four with a shorter last one,
   or 4-6-5 / 4-6-4; spaces, dots or dashes between groups) that pass the Luhn check become
   [card], also when an expiry or a CVV follows; phone numbers, 10 to 15 digits with the usual
   separators or 8 to 15 after a leading +, become [phone], and two numbers side by side are
   replaced one by one. What was replaced is counted on the row. Dates, times, prices, IPv4
   addresses and numbers under 10 digits are left alone; any other run of 10 to 15 digits (an
   account number, a timestamp) is taken for a phone number: erring towards removing. The
   identifiers (external_id, model_name, domain) are not scrubbed; they may only hold letters,
   digits and . _ : - (and / in a model's name), so they cannot carry an address.
4. **Sampled** by the project's FeedbackPolicy, in this order, the first rule that applies naming
   the drop: `sample` (kept with probability keep_share, decided by a hash of the id, so a replay
   decides the same), `duplicate` (the same last user turn and answer, up to case, spacing and
   punctuation, already kept), `daily_cap` (kept today, UTC), `domain_cap` (kept today in its domain).
5. **Kept** feedback becomes a task in the live queue with source `production`: a comparison of the
   flagged answer against the reference answer when one was sent, else a bad case for expert
   rewrite (annotation/services/badcases.py).

Dropped feedback is kept as a row too (scrubbed), so the lead's overview can say what came in,
what was kept, what was dropped by which rule and what it turned into (`feedback_intake`).
"""
from __future__ import annotations

import hashlib
import json
import re
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, time, timezone as dt_timezone

from django.db import IntegrityError, transaction
from django.db.models import Count
from django.utils import timezone

from ..errors import Conflict, ValidationFailed
from ..importing import MAX_TEXT, ParsedItem, ParsedResponse
from ..models import FeedbackPolicy, FeedbackStatus, ItemKind, ProductionFeedback, Project, last_user_turn
from ..untrusted import text_checked
from .imports import items_create

MAX_BODY_BYTES = 64_000
MAX_TURNS = 50
MAX_CONTENT = 20_000
SIGNALS = ("thumbs_down", "report", "comment")
ROLES = ("system", "user", "assistant")
SOURCE = "production"
TOP_LEVEL = ("external_id", "conversation", "answer", "signal", "reference_answer", "model_name", "domain", "metadata")
ID_RE = re.compile(r"[A-Za-z0-9._:-]{1,200}")


# ---------------------------------------------------------------- scrubbing


def _luhn(digits: str) -> bool:
    total, double = 0, False
    for ch in reversed(digits):
        d = int(ch)
        if double:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
        double = not double
    return total % 10 == 0


def _card_shape(groups: list[str]) -> bool:
    """How card numbers are written: one run of 13 to 19 digits, groups of four (the last one
    shorter), or Amex/Diners 4-6-5 and 4-6-4."""
    sizes = [len(g) for g in groups]
    if len(sizes) == 1:
        return 13 <= sizes[0] <= 19
    if all(n == 4 for n in sizes[:-1]) and 1 <= sizes[-1] <= 4:
        return 13 <= sum(sizes) <= 19
    return sizes in ([4, 6, 5], [4, 6, 4])


def _card(match: re.Match) -> str | None:
    """Within a run of digit groups (spaces, dots or dashes between them), consecutive groups
    written the way card numbers are (_card_shape) whose digits pass the Luhn check become [card];
    the rest of the run is kept, so a card number followed by an expiry or a CVV is still found,
    and phone numbers side by side are not taken for one."""
    text = match.group(0)
    groups = [(m.start(), m.end()) for m in re.finditer(r"\d+", text)]
    out, last, i = [], 0, 0
    while i < len(groups):
        for j in range(min(len(groups), i + 5), i, -1):
            chunk = [text[a:b] for a, b in groups[i:j]]
            if _card_shape(chunk) and _luhn("".join(chunk)):
                out.append(text[last:groups[i][0]] + "[card]")
                last, i = groups[j - 1][1], j
                break
        else:
            i += 1
    return "".join(out) + text[last:] if out else None


def _phone_span(text: str) -> bool:
    digits = sum(ch.isdigit() for ch in text)
    if re.fullmatch(r"\d{1,3}(?:\.\d{1,3}){3}", text):  # an IPv4 address
        return False
    return 8 <= digits <= 15 if text.startswith("+") else 10 <= digits <= 15


def _phone(match: re.Match) -> str | None:
    """A run of 10 to 15 digits with the usual separators, or 8 to 15 after a leading +. A longer
    run (two numbers side by side) is split at its spaces and each part tried, longest first."""
    text = match.group(0)
    if _phone_span(text):
        return "[phone]"
    parts = re.split(r"(\s+)", text)
    words, gaps = parts[0::2], parts[1::2]
    out, i, changed = [], 0, False
    while i < len(words):
        for j in range(len(words) - 1, i - 1, -1):
            span = "".join(w + (gaps[k] if k < j else "") for k, w in enumerate(words[i:j + 1], start=i))
            if _phone_span(span):
                out.append("[phone]")
                changed, i = True, j + 1
                break
        else:
            out.append(words[i])
            i += 1
        if i < len(words):
            out.append(gaps[i - 1])
    return "".join(out) if changed else None


# (name, pattern, replacement: a string, or a function that returns one or None to leave the match)
# Every quantifier is bounded, so no input makes a rule backtrack for long (a 64 KB body of one
# character is scrubbed in milliseconds: tests/annotation/test_production_feedback.py).
SCRUB_RULES = (
    ("email", re.compile(r"(?<![\w.%+-])[\w.%+-]{1,64}@[\w-]{1,63}(?:\.[\w-]{1,63}){0,8}\.[^\W\d_]{2,24}"),
     "[email]"),
    ("card", re.compile(r"(?<![\d.-])\d(?:[ .-]?\d){12,40}(?![\d-])"), _card),
    ("phone", re.compile(r"(?<![\w+])\+?\(?\d[\d ().-]{6,40}\d(?![\w:])"), _phone),
)


def scrub(text: str) -> tuple[str, Counter]:
    """`text` with personal data replaced (SCRUB_RULES, in order), and how many of each."""
    found: Counter = Counter()
    for name, pattern, replacement in SCRUB_RULES:
        if name == "email" and "@" not in text:
            continue

        def swap(match: re.Match, name=name, replacement=replacement) -> str:
            new = replacement(match) if callable(replacement) else replacement
            if new is None:
                return match.group(0)
            found[name] += new.count(f"[{name}]")
            return new
        text = pattern.sub(swap, text)
    return text, found


def scrub_value(value, found: Counter):
    """Every string inside a JSON value scrubbed (keys too), counting into `found`."""
    if isinstance(value, str):
        text, more = scrub(value)
        found.update(more)
        return text
    if isinstance(value, list):
        return [scrub_value(v, found) for v in value]
    if isinstance(value, dict):
        return {scrub_value(k, found): scrub_value(v, found) for k, v in value.items()}
    return value


# ---------------------------------------------------------------- validation


@dataclass
class FeedbackInput:
    external_id: str
    conversation: list[dict]
    answer: str
    signal: str
    reason: str = ""
    comment: str = ""
    reference_answer: str = ""
    model_name: str = ""
    domain: str = ""
    metadata: dict = field(default_factory=dict)


def _text(data: dict, name: str, errors: dict, *, required: bool = False, limit: int = MAX_CONTENT) -> str:
    text, problem = text_checked(data.get(name, ""), required=required, limit=limit)
    if problem:
        errors[name] = problem
    return text


def feedback_validate(data) -> FeedbackInput:
    """The request as a FeedbackInput, or ValidationFailed naming every bad field at once."""
    if not isinstance(data, dict):
        raise ValidationFailed("The body must be a JSON object.", field_errors={"body": "A JSON object."})
    errors: dict[str, str] = {}
    for name in sorted(set(data) - set(TOP_LEVEL)):
        errors[name] = "Unknown field" + (" (it belongs inside signal)." if name in ("reason", "text", "kind") else ".")
    # Identifiers are never scrubbed, so they may not carry free text (an e-mail address as an id).
    external_id = _text(data, "external_id", errors, required=True, limit=200)
    if external_id and not ID_RE.fullmatch(external_id):
        errors["external_id"] = "Letters, digits and . _ : - only (up to 200): an id, not free text."
    conversation = data.get("conversation")
    turns: list[dict] = []
    if not isinstance(conversation, list) or not 1 <= len(conversation) <= MAX_TURNS:
        errors["conversation"] = f"A list of 1 to {MAX_TURNS} turns, each {{role, content}}."
    else:
        for i, turn in enumerate(conversation):
            if not isinstance(turn, dict) or turn.get("role") not in ROLES or set(turn) - {"role", "content"}:
                errors[f"conversation.{i}"] = f"{{role: {' | '.join(ROLES)}, content: text}}."
                continue
            content = _text(turn, "content", errors_turn := {}, required=True)
            if errors_turn:
                errors[f"conversation.{i}.content"] = errors_turn["content"]
            turns.append({"role": turn["role"], "content": content})
        if turns and turns[-1]["role"] != "user" and "conversation" not in errors:
            errors["conversation"] = "The last turn is the user's: the answer flagged is the model's reply to it."
    answer = _text(data, "answer", errors, required=True, limit=MAX_TEXT)
    signal = data.get("signal")
    kind = reason = comment = ""
    if not isinstance(signal, dict) or signal.get("kind") not in SIGNALS or set(signal) - {"kind", "reason", "text"}:
        errors["signal"] = f"{{kind: {' | '.join(SIGNALS)}, reason: short text, text: the user's words}}."
    else:
        kind = signal["kind"]
        reason = _text(signal, "reason", sub := {}, limit=200)
        comment = _text(signal, "text", sub, limit=MAX_CONTENT)
        errors.update({f"signal.{k}": v for k, v in sub.items()})
        if kind == "comment" and not comment:
            errors["signal.text"] = "A comment needs the user's words."
    reference = _text(data, "reference_answer", errors, limit=MAX_TEXT)
    model_name = _text(data, "model_name", errors, limit=200)
    if model_name and not ID_RE.fullmatch(model_name.replace("/", "")):
        errors["model_name"] = "Letters, digits and . _ : - / only: a model's name."
    domain = _text(data, "domain", errors, limit=64).lower()
    if domain and not ID_RE.fullmatch(domain):
        errors["domain"] = "Letters, digits and . _ : - only: a domain's name."
    metadata = data.get("metadata", {})
    if metadata is None:
        metadata = {}
    if not isinstance(metadata, dict):
        errors["metadata"] = "A JSON object."
    elif len(json.dumps(metadata)) > 8_000:
        errors["metadata"] = "At most 8,000 characters as JSON."
    if reference and reference == answer:
        errors["reference_answer"] = "The same text as the answer: nothing to compare."
    if errors:
        raise ValidationFailed("The feedback was not accepted; nothing was stored.", field_errors=errors)
    return FeedbackInput(external_id=external_id, conversation=turns, answer=answer, signal=kind, reason=reason,
                         comment=comment, reference_answer=reference, model_name=model_name, domain=domain,
                         metadata=metadata)


# ---------------------------------------------------------------- intake


def _normal(text: str) -> str:
    return re.sub(r"[\W_]+", " ", text.lower()).strip()


def dedupe_key(conversation: list[dict], answer: str) -> str:
    return hashlib.sha256(f"{_normal(last_user_turn(conversation))}\x00{_normal(answer)}".encode()).hexdigest()


def _kept_by_hash(project: Project, external_id: str, share: float) -> bool:
    if share >= 1.0:
        return True
    digest = hashlib.sha256(f"{project.pk}:{external_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < share


def policy_of(*, project: Project) -> FeedbackPolicy:
    return FeedbackPolicy.objects.get_or_create(project=project)[0]


def _day_start(now: datetime) -> datetime:
    return datetime.combine(now.astimezone(dt_timezone.utc).date(), time.min, tzinfo=dt_timezone.utc)


def feedback_receive(*, project: Project, data) -> tuple[ProductionFeedback, bool]:
    """Take one flag from the product: validated, scrubbed, sampled, and kept as a task or dropped
    with the rule that dropped it. Returns (row, created); a replay returns the first row."""
    fields = feedback_validate(data)
    body_hash = hashlib.sha256(json.dumps(data, sort_keys=True, ensure_ascii=False).encode()).hexdigest()
    existing = ProductionFeedback.objects.filter(project=project, external_id=fields.external_id).first()
    if existing is not None:
        return _replay(existing, body_hash), False
    found: Counter = Counter()
    conversation = scrub_value(fields.conversation, found)
    answer = scrub_value(fields.answer, found)
    reference = scrub_value(fields.reference_answer, found)
    comment = scrub_value(fields.comment, found)
    reason = scrub_value(fields.reason, found)
    metadata = scrub_value(fields.metadata, found)
    key = dedupe_key(conversation, answer)
    now = timezone.now()
    try:
        with transaction.atomic():
            # One decision at a time per project: the caps and the duplicate check read what the
            # decisions before this one kept.
            policy = FeedbackPolicy.objects.select_for_update().get_or_create(project=project)[0]
            dropped_by = _rule(project, policy, fields, key, now)
            item = None
            if not dropped_by:
                item = _task(project, conversation, answer, reference, fields)
            row = ProductionFeedback.objects.create(
                project=project, external_id=fields.external_id, body_hash=body_hash, conversation=conversation,
                answer=answer, reference_answer=reference, signal=fields.signal, reason=reason, comment=comment,
                model_name=fields.model_name, domain=fields.domain, metadata=metadata, scrubbed=dict(found),
                dedupe_key=key, status=FeedbackStatus.DROPPED if dropped_by else FeedbackStatus.KEPT,
                dropped_by=dropped_by, item=item)
    except IntegrityError:
        # The same id raced in from a retry: the first one's result is the answer.
        existing = ProductionFeedback.objects.get(project=project, external_id=fields.external_id)
        return _replay(existing, body_hash), False
    return row, True


def _replay(existing: ProductionFeedback, body_hash: str) -> ProductionFeedback:
    if existing.body_hash != body_hash:
        raise Conflict(f"external_id {existing.external_id!r} was already received with another body; "
                       "an id names one piece of feedback.")
    return existing


def _rule(project: Project, policy: FeedbackPolicy, fields: FeedbackInput, key: str, now: datetime) -> str:
    if not _kept_by_hash(project, fields.external_id, policy.keep_share):
        return "sample"
    kept = ProductionFeedback.objects.filter(project=project, status=FeedbackStatus.KEPT)
    if policy.dedupe and kept.filter(dedupe_key=key).exists():
        return "duplicate"
    today = kept.filter(received_at__gte=_day_start(now))
    if today.count() >= policy.daily_cap:
        return "daily_cap"
    if today.filter(domain=fields.domain).count() >= policy.domain_daily_cap:
        return "domain_cap"
    return ""


def _task(project: Project, conversation: list[dict], answer: str, reference: str, fields: FeedbackInput):
    meta = {"production_feedback": fields.external_id, "signal": fields.signal}
    flagged = ParsedResponse(text=answer, model_name=fields.model_name, metadata=meta)
    if reference:
        parsed = ParsedItem(messages=conversation, responses=[flagged, ParsedResponse(text=reference,
                                                                                       metadata={"reference": True})],
                            domain=fields.domain, source=SOURCE, kind=ItemKind.COMPARISON)
    else:
        parsed = ParsedItem(messages=conversation, responses=[flagged], domain=fields.domain, source=SOURCE,
                            kind=ItemKind.REWRITE)
    return items_create(project=project, batch=[parsed])[0]


# ---------------------------------------------------------------- the lead's view


POLICY_FIELDS = ("keep_share", "daily_cap", "domain_daily_cap", "dedupe")


def feedback_policy_update(*, project: Project, changes: dict) -> FeedbackPolicy:
    errors = {name: "Unknown setting." for name in sorted(set(changes) - set(POLICY_FIELDS))}
    policy = policy_of(project=project)
    values = {name: changes.get(name, getattr(policy, name)) for name in POLICY_FIELDS}
    share = values["keep_share"]
    if isinstance(share, bool) or not isinstance(share, (int, float)) or not 0.0 <= share <= 1.0:
        errors["keep_share"] = "From 0 (keep none) to 1 (keep all)."
    for name in ("daily_cap", "domain_daily_cap"):
        value = values[name]
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 1_000_000:
            errors[name] = "A whole number from 0 to 1,000,000."
    if not isinstance(values["dedupe"], bool):
        errors["dedupe"] = "true or false."
    if errors:
        raise ValidationFailed("Please fix the highlighted settings.", field_errors=errors)
    FeedbackPolicy.objects.filter(pk=policy.pk).update(**values)
    policy.refresh_from_db()
    return policy


def feedback_intake(*, project: Project) -> dict:
    """What came in and what became of it: received, kept, dropped by rule, tasks by kind, and
    personal data scrubbed by rule."""
    rows = ProductionFeedback.objects.filter(project=project)
    by_status = dict(rows.values_list("status").annotate(n=Count("id")).order_by())
    dropped = dict(rows.filter(status=FeedbackStatus.DROPPED).values_list("dropped_by").annotate(n=Count("id"))
                   .order_by())
    tasks = dict(rows.filter(item__isnull=False).values_list("item__kind").annotate(n=Count("id")).order_by())
    scrubbed: Counter = Counter()
    for counts in rows.exclude(scrubbed={}).values_list("scrubbed", flat=True):
        scrubbed.update(counts)
    return {
        "received": sum(by_status.values()), "kept": by_status.get(FeedbackStatus.KEPT, 0),
        "dropped": {rule: dropped.get(rule, 0) for rule in ("sample", "duplicate", "daily_cap", "domain_cap")},
        "tasks": {"rewrite": tasks.get(ItemKind.REWRITE, 0), "comparison": tasks.get(ItemKind.COMPARISON, 0)},
        "scrubbed": dict(scrubbed),
    }
