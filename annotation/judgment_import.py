"""Reading judgments made elsewhere (pure: no Django). Three shapes, told apart by the file:

1. **Ours, JSONL**, one judgment per line, on items already in the project:
   {"annotator": "alice", "item": "ext-17", "choice": "a" | "b" | "tie" | "both_bad",
    "strength": "slight|clear|strong", "shown_left": "a" | "b", "seconds": 12.5,
    "rationale": "...", "time": "2026-03-01T10:00:00Z"}
   `item` is the item's external id (the `external_id` its import line carried); `choice` names the
   item's responses as imported: "a" the first, "b" the second. Instead of a/b, "left"/"right"
   may be given with `shown_left`. Only `annotator`, `item` and `choice` are required.

2. **Preference files, JSONL** (the common public shapes): {"prompt": ..., "chosen": ...,
   "rejected": ...} with optional annotator ids ("annotator", "annotator_id", "worker_id",
   "rater_id", "labeler") and the optional fields of (1). `prompt` and the answers may be text or
   message lists (TRL's conversational shape, UltraFeedback's); without a prompt, the answers'
   shared conversation is the prompt (Anthropic HH's "\\n\\nHuman: ... \\n\\nAssistant: ..."). The pair
   becomes an item (found again by its content on a re-run); the side shown is unknown.

3. **Label Studio's JSON export** (a JSON array of tasks) of a pairwise project: each task's
   `data` holds the prompt and the two answers, each of its `annotations` one person's judgment:
   a Pairwise result (`{"selected": "left" | "right"}`; Label Studio shows the first compared
   text on the left) or a Choices result naming an answer, "tie" or "both bad". Cancelled
   annotations are skipped. `completed_by` (an id or an object with an email) names the
   annotator, `lead_time` is the time spent, `created_at` the time.

Every record comes back as an ImportedJudgment or a RecordError with its line (JSONL) or task
number (Label Studio), so the import can refuse the whole file with every problem listed.
"""
from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone

from .importing import MAX_TEXT, LineError, numbered_lines, parse_json_object, parse_messages
from .untrusted import JSONRejected, load_json

CHOICES = ("a", "b", "tie", "both_bad")
STRENGTHS = ("slight", "clear", "strong")
ANNOTATOR_KEYS = ("annotator", "annotator_id", "worker_id", "rater_id", "labeler", "user", "user_id")
OWN_KEYS = {"annotator", "item", "choice", "strength", "shown_left", "seconds", "rationale", "time"}
PREFERENCE_KEYS = {"prompt", "chosen", "rejected", "strength", "seconds", "rationale", "time", "domain",
                   "margin", "score_chosen", "score_rejected", "id", "source", "messages", *ANNOTATOR_KEYS}
UNKNOWN_ANNOTATOR = "imported"  # preference lines without an annotator id
MAX_NAME = 150
MAX_SECONDS = 7 * 24 * 3600


class RecordError(ValueError):
    pass


@dataclass
class NewPair:
    """A pair that is not in the project yet: the prompt and the two answers, in a fixed order."""

    messages: list[dict]
    first: str
    second: str
    domain: str = ""

    @property
    def key(self) -> str:
        """Found again on a re-run by its content (order of the answers included)."""
        digest = hashlib.sha256(json.dumps([self.messages, self.first, self.second], ensure_ascii=False).encode())
        return "pair:" + digest.hexdigest()[:40]


@dataclass
class ImportedJudgment:
    where: str  # "line 4", "task 2 (id 17)"
    annotator: str
    choice: str  # canonical: "a" = the item's first response (NewPair.first), "b" the second
    item_external_id: str | None = None
    pair: NewPair | None = None
    strength: str = ""
    shown_left: str = ""  # "a", "b", or "" when the side shown is not known
    time_spent_ms: int = 0
    rationale: str = ""
    at: datetime | None = None
    extra: dict = field(default_factory=dict)


# ---------------------------------------------------------------- fields


def _name(value, what: str = "annotator") -> str:
    if isinstance(value, dict):  # Label Studio's completed_by as an object
        value = value.get("email") or value.get("username") or value.get("id")
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise RecordError(f"'{what}' must be a name or an id")
    text = str(value).strip()
    if not text:
        raise RecordError(f"'{what}' is empty")
    if len(text) > MAX_NAME:
        raise RecordError(f"'{what}' is longer than {MAX_NAME} characters")
    return text


def _strength(value, choice: str) -> str:
    if value in (None, ""):
        return ""
    if value not in STRENGTHS:
        raise RecordError(f"'strength' must be one of {', '.join(STRENGTHS)}")
    if choice not in ("a", "b"):
        raise RecordError(f"'strength' goes with a choice of a or b, not {choice}")
    return value


def _seconds(value) -> int:
    if value in (None, ""):
        return 0
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= MAX_SECONDS:
        raise RecordError(f"'seconds' must be a number from 0 to {MAX_SECONDS}")
    return int(round(value * 1000))


def _time(value) -> datetime | None:
    if value in (None, ""):
        return None
    if not isinstance(value, str):
        raise RecordError("'time' must be an ISO 8601 date and time")
    try:
        at = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        raise RecordError(f"'time' {value[:40]!r} is not an ISO 8601 date and time") from None
    return at if at.tzinfo else at.replace(tzinfo=timezone.utc)


def _rationale(value) -> str:
    if value in (None, ""):
        return ""
    if not isinstance(value, str):
        raise RecordError("'rationale' must be text")
    if len(value) > MAX_TEXT:
        raise RecordError(f"'rationale' is longer than {MAX_TEXT} characters")
    return value


def _answer(value, what: str) -> tuple[str, list[dict] | None]:
    """An answer's text, and the conversation before it when the answer is a message list."""
    if isinstance(value, str):
        if not value.strip():
            raise RecordError(f"'{what}' is empty")
        if len(value) > MAX_TEXT:
            raise RecordError(f"'{what}' is longer than {MAX_TEXT} characters")
        return value, None
    if isinstance(value, list) and value and all(isinstance(m, dict) for m in value):
        last = value[-1]
        if last.get("role") != "assistant":
            raise RecordError(f"'{what}' as messages must end with the assistant's answer")
        text, _ = _answer(last.get("content"), what)
        return text, [{"role": m.get("role"), "content": m.get("content")} for m in value[:-1]]
    raise RecordError(f"'{what}' must be text or a list of messages ending with the assistant's answer")


HH_TURN = re.compile(r"\n\nAssistant:")


def _split_transcript(chosen: str, rejected: str) -> tuple[list[dict], str, str] | None:
    """Anthropic HH lines carry no prompt: both answers are whole transcripts sharing everything up
    to the last "\\n\\nAssistant:". Returns (prompt messages, chosen answer, rejected answer)."""
    marks = [m.end() for m in HH_TURN.finditer(chosen)]
    if not marks:
        return None
    cut = marks[-1]
    if not rejected.startswith(chosen[:cut]):
        return None
    prefix = chosen[:cut - len("\n\nAssistant:")]
    messages = []
    # re.split with a group alternates: text before the first turn, role, text, role, text, ...
    pieces = re.split(r"\n\n(Human|Assistant):", "\n\n" + prefix.lstrip("\n"))
    for role, text in zip(pieces[1::2], pieces[2::2]):
        if text.strip():
            messages.append({"role": "user" if role == "Human" else "assistant", "content": text.strip()})
    if not messages or messages[-1]["role"] != "user":
        return None
    return messages, chosen[cut:].strip(), rejected[cut:].strip()


def _messages(prompt, where_from: str) -> list[dict]:
    try:
        return parse_messages(prompt)
    except LineError as exc:
        raise RecordError(f"{where_from}: {exc}") from None


# ---------------------------------------------------------------- shapes


def _own(obj: dict, where: str) -> ImportedJudgment:
    unknown = set(obj) - OWN_KEYS
    if unknown:
        raise RecordError(f"unknown field(s): {', '.join(sorted(unknown))}")
    for key in ("annotator", "item", "choice"):
        if key not in obj:
            raise RecordError(f"missing '{key}'")
    shown_left = obj.get("shown_left") or ""
    if shown_left not in ("", "a", "b"):
        raise RecordError("'shown_left' must be a or b (which of the item's responses was on the left)")
    choice = obj["choice"]
    if choice in ("left", "right"):
        if not shown_left:
            raise RecordError("a choice of left or right needs 'shown_left'")
        choice = shown_left if choice == "left" else ("b" if shown_left == "a" else "a")
    if choice not in CHOICES:
        raise RecordError(f"'choice' must be one of {', '.join(CHOICES)} (or left/right with shown_left)")
    item = obj["item"]
    if isinstance(item, bool) or not isinstance(item, (str, int)) or not str(item).strip():
        raise RecordError("'item' must be the item's external id")
    return ImportedJudgment(
        where=where, annotator=_name(obj["annotator"]), choice=choice, item_external_id=str(item).strip(),
        strength=_strength(obj.get("strength"), choice), shown_left=shown_left,
        time_spent_ms=_seconds(obj.get("seconds")), rationale=_rationale(obj.get("rationale")), at=_time(obj.get("time")),
    )


def _preference(obj: dict, where: str) -> ImportedJudgment:
    unknown = set(obj) - PREFERENCE_KEYS
    if unknown:
        raise RecordError(f"unknown field(s): {', '.join(sorted(unknown))}")
    chosen, chosen_context = _answer(obj.get("chosen"), "chosen")
    rejected, rejected_context = _answer(obj.get("rejected"), "rejected")
    prompt = obj.get("prompt")
    if prompt is None:
        prompt = chosen_context or rejected_context
    if prompt is None:
        split = _split_transcript(chosen, rejected)
        if split is None:
            raise RecordError("missing 'prompt', and the answers are not transcripts sharing one")
        messages, chosen, rejected = split
    else:
        if isinstance(prompt, list):  # a message list may end before the assistant's turn, or carry it
            prompt = [{"role": m.get("role"), "content": m.get("content")} for m in prompt if isinstance(m, dict)]
        messages = _messages(prompt, "'prompt'")
    if chosen == rejected:
        raise RecordError("'chosen' and 'rejected' are the same text")
    annotator = next((obj[k] for k in ANNOTATOR_KEYS if obj.get(k) not in (None, "")), UNKNOWN_ANNOTATOR)
    # A fixed order that does not depend on which was chosen, so "a" is not always the winner.
    first, second = sorted([chosen, rejected])
    choice = "a" if chosen == first else "b"
    domain = obj.get("domain") or ""
    if not isinstance(domain, str) or len(domain) > 64:
        raise RecordError("'domain' must be text of at most 64 characters")
    return ImportedJudgment(
        where=where, annotator=_name(annotator), choice=choice, pair=NewPair(messages, first, second, domain),
        strength=_strength(obj.get("strength"), choice), time_spent_ms=_seconds(obj.get("seconds")),
        rationale=_rationale(obj.get("rationale")), at=_time(obj.get("time")),
    )


def parse_record(obj: dict, where: str) -> ImportedJudgment:
    if "chosen" in obj or "rejected" in obj:
        return _preference(obj, where)
    return _own(obj, where)


# Label Studio: which data fields hold the prompt and the two answers.
LS_PROMPT_KEYS = ("prompt", "question", "instruction", "input", "query", "context")
LS_ANSWER_PAIRS = (("answer1", "answer2"), ("response_a", "response_b"), ("responseA", "responseB"),
                   ("text1", "text2"), ("left", "right"), ("a", "b"), ("response1", "response2"),
                   ("completion_a", "completion_b"), ("chosen", "rejected"))
LS_TIE = {"tie", "equal", "same", "both good", "both_good"}
LS_BOTH_BAD = {"both bad", "both_bad", "neither", "none"}


def _ls_fields(data: dict, to_names: list[str]) -> tuple[str, str, str, str]:
    """(prompt text, first answer key, second answer key) of a Label Studio task's data."""
    prompt_key = next((k for k in LS_PROMPT_KEYS if isinstance(data.get(k), str) and data[k].strip()), None)
    if prompt_key is None:
        raise RecordError(f"no prompt in the task's data (one of {', '.join(LS_PROMPT_KEYS)})")
    if len(to_names) == 2 and all(isinstance(data.get(n), str) for n in to_names):
        return data[prompt_key], to_names[0], to_names[1], prompt_key
    for first, second in LS_ANSWER_PAIRS:
        if isinstance(data.get(first), str) and isinstance(data.get(second), str):
            return data[prompt_key], first, second, prompt_key
    raise RecordError("the task's data has no two answers (e.g. answer1/answer2, text1/text2)")


def _ls_choice(result: list, first_key: str, second_key: str) -> tuple[str, list[str]]:
    """The canonical choice from an annotation's results, and the compared names in screen order."""
    for r in result:
        if not isinstance(r, dict):
            continue
        value = r.get("value") or {}
        to_names = r.get("to_name") if isinstance(r.get("to_name"), list) else []
        if r.get("type") == "pairwise" or "selected" in value:
            selected = value.get("selected")
            if selected not in ("left", "right"):
                raise RecordError("a pairwise result must select left or right")
            order = to_names if len(to_names) == 2 else [first_key, second_key]
            picked = order[0] if selected == "left" else order[1]
            return ("a" if picked == first_key else "b"), order
        if r.get("type") == "choices" or "choices" in value:
            picked = [str(c).strip() for c in value.get("choices") or []]
            if len(picked) != 1:
                continue
            p = picked[0].lower()
            if p in LS_TIE:
                return "tie", []
            if p in LS_BOTH_BAD:
                return "both_bad", []
            if picked[0] in (first_key, "A", "a", "1", "left", "Left") or p in ("answer 1", "response a", "first"):
                return "a", []
            if picked[0] in (second_key, "B", "b", "2", "right", "Right") or p in ("answer 2", "response b", "second"):
                return "b", []
            raise RecordError(f"the choice {picked[0][:40]!r} names neither answer, a tie nor both bad")
    raise RecordError("no pairwise or single-choice result in the annotation")


def parse_label_studio(tasks) -> Iterator[ImportedJudgment | RecordError]:
    if not isinstance(tasks, list):
        yield RecordError("task list: a Label Studio JSON export is a list of tasks")
        return
    for number, task in enumerate(tasks, start=1):
        where = f"task {number}" + (f" (id {task.get('id')})" if isinstance(task, dict) and task.get("id") is not None else "")
        try:
            if not isinstance(task, dict) or not isinstance(task.get("data"), dict):
                raise RecordError("a task must be an object with 'data'")
            annotations = task.get("annotations") or task.get("completions") or []
            if not isinstance(annotations, list):
                raise RecordError("'annotations' must be a list")
            data = task["data"]
        except RecordError as exc:
            yield RecordError(f"{where}: {exc}")
            continue
        for k, annotation in enumerate(annotations, start=1):
            at = f"{where}, annotation {k}"
            try:
                if not isinstance(annotation, dict):
                    raise RecordError("an annotation must be an object")
                if annotation.get("was_cancelled"):
                    continue
                results = annotation.get("result") or []
                to_names = next((r.get("to_name") for r in results if isinstance(r, dict)
                                 and isinstance(r.get("to_name"), list) and len(r["to_name"]) == 2), [])
                prompt, first_key, second_key, _ = _ls_fields(data, to_names)
                choice, order = _ls_choice(results, first_key, second_key)
                first, second = data[first_key], data[second_key]
                if not first.strip() or not second.strip() or first == second:
                    raise RecordError("the two answers must be different, non-empty texts")
                shown_left = ("a" if order[0] == first_key else "b") if order else "a"  # Label Studio: first on the left
                lead = annotation.get("lead_time")
                yield ImportedJudgment(
                    where=at, annotator=_name(annotation.get("completed_by", UNKNOWN_ANNOTATOR), "completed_by"),
                    choice=choice, pair=NewPair(_messages(prompt, "prompt"), first, second),
                    shown_left=shown_left, time_spent_ms=_seconds(lead) if isinstance(lead, (int, float)) else 0,
                    at=_time(annotation.get("created_at")),
                )
            except RecordError as exc:
                yield RecordError(f"{at}: {exc}")


def read_records(fh) -> Iterator[ImportedJudgment | RecordError]:
    """Every record of an uploaded or opened file (binary), told apart by its first character: a
    JSON array is a Label Studio export, anything else JSONL."""
    head = fh.read(1)
    while head in (b" ", b"\n", b"\r", b"\t", b"\xef", b"\xbb", b"\xbf"):
        head = fh.read(1)
    if head == b"[":
        from .untrusted import MAX_JSON_BYTES

        body = head + fh.read(64 * MAX_JSON_BYTES + 1)
        if len(body) > 64 * MAX_JSON_BYTES:
            yield RecordError(f"the export is larger than {64 * MAX_JSON_BYTES} bytes: export it in parts")
            return
        try:
            tasks = load_json(body, max_bytes=64 * MAX_JSON_BYTES)
        except JSONRejected as exc:
            yield RecordError(f"the export is not valid JSON: {exc}")
            return
        yield from parse_label_studio(tasks)
        return
    rest = _Prefixed(head, fh)
    for number, raw in numbered_lines(rest):
        where = f"line {number}"
        try:
            yield parse_record(parse_json_object(raw), where)
        except (LineError, RecordError) as exc:
            yield RecordError(f"{where}: {exc}")


class _Prefixed:
    """A binary file object with one byte already read put back in front (for readline)."""

    def __init__(self, head: bytes, fh):
        self._head, self._fh = head, fh

    def readline(self, limit: int = -1) -> bytes:
        if self._head:
            head, self._head = self._head, b""
            if head == b"\n":
                return head
            return head + self._fh.readline(limit - 1 if limit > 0 else -1)
        return self._fh.readline(limit)
