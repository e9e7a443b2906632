"""Expert explanations that name the responses the way each reader saw them. Pure: no Django.

An explanation is written about the item's two stored responses ("Response A" is the item's first
response, "Response B" its second, as in the import line and on the anchor form), but every
annotator sees the pair in their own random left/right order, with the left one labelled A. Stored
as written, about half of all feedback screens would contradict the screen ("Expert: A (left) is
better" above a text praising "Response B").

So references are stored as stable names, `{response_a}` and `{response_b}`, and rendered per
reader: for the annotator as the letter and side they saw ("Response B (right)"), for leads in the
authoring terms ("Response A"). Authoring (the anchor form, the API, the anchors import) rewrites
every unambiguous reference to a stable name and rejects what cannot be resolved safely: a screen
position ("the left response", "(right)": the screen shuffles) or a lone "B" that may or may not
name a response. Text inside backticks is code and left alone.
"""
from __future__ import annotations

import re

STABLE = {"a": "{response_a}", "b": "{response_b}"}
_STABLE_RE = re.compile(r"\{response_([ab])\}")

# Words that introduce a response's name: "Response A", "answer 2", "Assistant B", "output #1".
_HEAD = r"(?:responses?|answers?|options?|completions?|outputs?|repl(?:y|ies)|assistants?|models?|candidates?|samples?)"
_NAME = r"(?:[AaBb]|[12])"
_EXPLICIT = re.compile(rf"\b{_HEAD}\s*#?\s*\(?({_NAME})\)?(?![\w])", re.IGNORECASE)
# "responses A and B", "answers B or A"
_EXPLICIT_PAIR = re.compile(rf"\b{_HEAD}\s+({_NAME})\s+(and|or|&)\s+({_NAME})(?![\w])", re.IGNORECASE)
_BRACKETED = re.compile(r"(?:\(\s*([AB])\s*\)|\[\[?\s*([AB])\s*\]\]?)")

# A lone capital letter is a name when its neighbours say so: "A is right", "better than B",
# "B.", "A's", "A/B". Otherwise a lone "A" is the article; a lone "B" is left undecided (rejected).
_VERBS = (
    "is|was|are|were|has|had|have|does|did|do|gives|gave|says|said|states|stated|claims|claimed|answers|answered|"
    "uses|used|makes|made|provides|provided|includes|included|contains|gets|got|fails|failed|misses|missed|"
    "ignores|ignored|follows|followed|handles|handled|explains|explained|mentions|mentioned|adds|added|"
    "omits|omitted|refuses|refused|wins|won|loses|lost|should|would|could|can|cannot|can't|will|won't|"
    "doesn't|isn't|wasn't|didn't|hasn't|correctly|incorrectly|wrongly|rightly|also|only|just|still|even|"
    "and|or|but|vs\\.?|versus|than|is|reads|looks|seems|sounds|goes|invents|hallucinates|agrees|disagrees|"
    "recommends|suggests|returns|prints|computes|calculates|writes|wrote|lists|offers|asks|addresses"
)
_BEFORE = r"(?:than|over|vs\.?|versus|and|or|between|prefer|prefers|preferred|choose|chose|chosen|pick|picked|from|to|with|like|unlike|both|either|neither|nor|while|whereas|but)"
_LONE_AFTER = re.compile(
    rf"(?<![\w{{/])([AB])(?=(?:'s|’s)\b|\s*$|\s*[.,;:!?)/\]]|\s+(?:{_VERBS})\b)"
)
_LONE_BEFORE = re.compile(rf"\b((?i:{_BEFORE}))(\s+)([AB])(?![\w}}])")
# A lone capital followed by a lowercase word is a name ("B cites the source", "Because A invents"),
# except an "A" that is the article ("A good answer"): only a "B" is read so.
_LONE_B_WORD = re.compile(r"(?<![\w{/])(B)(?=\s+[a-z])")
_LONE_SLASH = re.compile(r"/([AB])(?![\w}])")
_LONE_B = re.compile(r"(?<![\w{])B(?![\w}])")

_SCREEN = re.compile(
    rf"\b(?:the\s+)?(?:left|first|second|top|bottom|upper|lower|former|latter)(?:[- ]hand)?\s+(?:{_HEAD}|ones?|sides?|columns?|panels?)\b"
    r"|\bright(?:[- ]hand)?\s+(?:ones?|sides?|columns?|panels?)\b"
    r"|\bon\s+the\s+(?:left|right)\b"
    r"|\bthe\s+(?:former|latter)\b"
    r"|\(\s*(?:left|right)\s*\)",
    re.IGNORECASE,
)
_CODE = re.compile(r"`[^`]*`")


class ExplanationError(ValueError):
    pass


def _side(name: str) -> str:
    return {"a": "a", "1": "a", "b": "b", "2": "b"}[name.lower()]


def _outside_code(text: str, rewrite) -> str:
    """Apply `rewrite` to the text between code spans only."""
    out, last = [], 0
    for match in _CODE.finditer(text):
        out.append(rewrite(text[last:match.start()]))
        out.append(match.group(0))
        last = match.end()
    out.append(rewrite(text[last:]))
    return "".join(out)


def _rewrite(text: str) -> str:
    text = _EXPLICIT_PAIR.sub(lambda m: f"{STABLE[_side(m[1])]} {m[2]} {STABLE[_side(m[3])]}", text)
    text = _EXPLICIT.sub(lambda m: STABLE[_side(m[1])], text)
    text = _BRACKETED.sub(lambda m: STABLE[_side(m[1] or m[2])], text)
    previous = None
    while previous != text:  # "A and B": the second name is found once the first is rewritten
        previous = text
        text = _LONE_AFTER.sub(lambda m: STABLE[_side(m[1])], text)
        text = _LONE_BEFORE.sub(lambda m: f"{m[1]}{m[2]}{STABLE[_side(m[3])]}", text)
        text = _LONE_SLASH.sub(lambda m: "/" + STABLE[_side(m[1])], text)
        text = _LONE_B_WORD.sub(lambda m: STABLE["b"], text)
    return text


def explanation_normalise(text: str, *, strict: bool = True) -> str:
    """Authoring terms -> stored form with stable names. `strict` (every authoring path) raises
    ExplanationError naming each reference it cannot resolve; lenient (migrating old rows)
    rewrites what it can and leaves the rest."""
    problems: list[str] = []

    def rewrite(part: str) -> str:
        part = _rewrite(part)
        if strict:
            for match in _SCREEN.finditer(part):
                problems.append(
                    f"'{match.group(0).strip()}' names a place on the screen, but every annotator sees the "
                    "two responses in their own random order: name the response instead"
                )
            if _LONE_B.search(part):
                problems.append("a lone 'B' may or may not mean a response: write 'Response B' "
                                "(or put a letter that is not a response in `backticks`)")
        return part

    stored = _outside_code(text, rewrite)
    if problems:
        unique = list(dict.fromkeys(problems))
        raise ExplanationError(
            "; ".join(unique) + ". Response A is the item's first response and Response B its second."
        )
    return stored


def explanation_for_annotator(stored: str, *, shown_left: str) -> str:
    """The stored explanation in the terms one annotator saw: the letter and side of each response
    on their screen (the left one is A)."""

    def name(match: re.Match) -> str:
        on_left = match[1] == shown_left
        return f"Response {'A' if on_left else 'B'} ({'left' if on_left else 'right'})"

    return _STABLE_RE.sub(name, stored)


def explanation_for_author(stored: str) -> str:
    """The stored explanation in authoring terms (Response A = the item's first response)."""
    return _STABLE_RE.sub(lambda m: f"Response {m[1].upper()}", stored)
