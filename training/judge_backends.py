"""How an AI judge reaches a verdict on one comparison, shown as A (left) and B (right):

- `endpoint`: an OpenAI-compatible chat-completions API (POST {base}/chat/completions). The system
  turn is the project's behaviour spec with the instructions to answer in JSON; the user turn is
  the question and both responses (rewards.set_formats.judge_user_text, the rm-r1 export's words).
- `reward_model`: a reward model from the registry scores both responses; P(A) = sigmoid(r_A - r_B),
  its margin.
- `local_model` (and a generative judge fine-tuned from the rm-r1 export): a causal LM given the
  rm-r1 judge prompt writes its rubric and evaluation greedily, then P(A) is read off the model
  itself: the log-likelihood of "A]]</answer>" against "B]]</answer>" after "<answer>[[", so the
  verdict has a probability rather than a parsed word, whatever the tokenizer.

The answer of a model is untrusted text: it is parsed, never executed or rendered as HTML, and a
failure (unreachable endpoint, HTTP error, unparseable answer, model directory missing) raises
JudgeError with the reason in words; the caller records it and stores no label.

The reward model and the causal LM are loaded once per process and kept (a worker judges many
items in a row); torch and transformers are imported only here, when such a judge runs.
"""
from __future__ import annotations

import ipaddress
import json
import math
import os
import re
import socket
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

from rewards.formats import prompt_as_text
from rewards.set_formats import JUDGE_SYSTEM, judge_user_text

MAX_ANSWER_BYTES = 1_000_000

ENDPOINT_INSTRUCTIONS = (
    "You are an impartial judge of two AI assistant responses to the same conversation. Judge them "
    "against the behaviour specification below, not by length or confidence of tone, and not by which "
    "one comes first.\n\n"
    "Answer with one JSON object and nothing else: "
    '{"choice": "A" | "B" | "tie" | "both_bad", "confidence": <your probability, from 0.5 to 1, that '
    'your choice is right>, "rationale": "<one or two sentences>"}.'
)


class JudgeError(Exception):
    """A judge could not give a verdict; the message says why, in words."""


@dataclass
class Verdict:
    p_left: float  # the judge's probability that the left (A) response is better
    choice: str  # left | right | tie | both_bad, as shown
    rationale: str
    tokens_in: int = 0
    tokens_out: int = 0

    @property
    def confidence(self) -> float:
        return max(self.p_left, 1.0 - self.p_left)


def sigmoid(x: float) -> float:
    if x >= 0:
        return 1.0 / (1.0 + math.exp(-x))
    z = math.exp(x)
    return z / (1.0 + z)


def verdict_from_p(p_left: float, rationale: str, **kw) -> Verdict:
    """A side from a probability; exactly even (a model that cannot tell A from B) is a tie, never
    the left side by default (that would be a position bias of our making)."""
    choice = "tie" if abs(p_left - 0.5) < 1e-9 else "left" if p_left > 0.5 else "right"
    return Verdict(p_left=p_left, choice=choice, rationale=rationale, **kw)


def endpoint_messages(*, spec_text: str, messages: Sequence[dict], left: str, right: str) -> list[dict]:
    spec = spec_text.strip() or "(The project has no written specification yet: judge helpfulness, honesty and harmlessness.)"
    return [
        {"role": "system", "content": f"{ENDPOINT_INSTRUCTIONS}\n\n[Behaviour specification]\n{spec}"},
        {"role": "user", "content": judge_user_text(messages, left, right)},
    ]


def rm_r1_messages(*, messages: Sequence[dict], left: str, right: str) -> list[dict]:
    """The rm-r1 export's context_messages for this pair (rewards/set_formats.py)."""
    return [{"role": "system", "content": JUDGE_SYSTEM}, {"role": "user", "content": judge_user_text(messages, left, right)}]


_CHOICES = {"a": "left", "b": "right", "left": "left", "right": "right", "tie": "tie", "both_bad": "both_bad",
            "both bad": "both_bad", "bothbad": "both_bad", "neither": "both_bad"}


def parse_endpoint_answer(content: str) -> tuple[str, float, str]:
    """(choice as shown, confidence in [0.5, 1], rationale) from a chat answer: a JSON object
    (possibly in a code fence, possibly with text around it), else an RM-R1 style "[[A]]"/"[[B]]"
    verdict at confidence 0.75. Anything else raises JudgeError quoting the start of the answer."""
    text = content if isinstance(content, str) else ""
    for match in re.finditer(r"\{.*?\}", text, flags=re.S):
        try:
            data = json.loads(match.group(0))
        except ValueError:
            continue
        if not isinstance(data, dict) or "choice" not in data:
            continue
        choice = _CHOICES.get(str(data.get("choice", "")).strip().lower())
        if choice is None:
            raise JudgeError(f"the judge's choice {str(data.get('choice'))[:40]!r} is not A, B, tie or both_bad")
        try:
            confidence = float(data.get("confidence", 0.75))
        except (TypeError, ValueError):
            confidence = 0.75
        if not math.isfinite(confidence):
            confidence = 0.75
        rationale = str(data.get("rationale", "")).strip()
        return choice, min(1.0, max(0.5, confidence)), rationale
    verdict = re.findall(r"\[\[\s*([AB])\s*\]\]", text)
    if len(set(verdict)) == 1:
        return _CHOICES[verdict[0].lower()], 0.75, text.strip()[:2000]
    raise JudgeError(f"the judge's answer is not a verdict: {text.strip()[:200]!r}")


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """A judge endpoint answers where it was asked: a redirect could lead the worker (and the key's
    Authorization header) to an address nobody checked."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        raise JudgeError(f"the endpoint answered with a redirect (HTTP {code}); give its final URL instead")


_opener = urllib.request.build_opener(_NoRedirects())


def endpoint_address_check(url: str, *, allowed_hosts=()) -> None:
    """An http(s) URL whose host resolves only to public addresses, unless the operator allowed the
    host (settings.JUDGE_ENDPOINT_HOSTS): a lead must not point a worker at the database, the cloud
    metadata service or anything else inside. Raises JudgeError saying why."""
    parsed = urllib.parse.urlsplit(url)
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise JudgeError("the endpoint must be an http(s) URL with a host")
    host = parsed.hostname.lower()
    if host in allowed_hosts:
        return
    try:
        addresses = {info[4][0] for info in socket.getaddrinfo(host, parsed.port or 443, proto=socket.IPPROTO_TCP)}
    except OSError as exc:
        raise JudgeError(f"could not reach the endpoint: cannot resolve {host} ({exc})") from None
    for address in addresses:
        if not ipaddress.ip_address(address.split("%")[0]).is_global:
            raise JudgeError(f"the endpoint's host {host} resolves to {address}, a private, loopback or link-local "
                             "address; an operator can allow it (JUDGE_ENDPOINT_HOSTS)")


def endpoint_verdict(*, url: str, model: str, api_key: str, messages: list[dict], timeout: float,
                     allowed_hosts=()) -> Verdict:
    """One chat-completions call, temperature 0, within `timeout` seconds in all (a server that
    drips its answer cannot hold a worker longer)."""
    endpoint_address_check(url, allowed_hosts=allowed_hosts)
    body = json.dumps({"model": model, "messages": messages, "temperature": 0}).encode()
    headers = {"Content-Type": "application/json", "Accept": "application/json"}
    if api_key:
        headers["Authorization"] = f"Bearer {api_key}"
    request = urllib.request.Request(url.rstrip("/") + "/chat/completions", data=body, headers=headers, method="POST")
    deadline = time.monotonic() + timeout
    try:
        with _opener.open(request, timeout=timeout) as response:  # noqa: S310 (checked above, no redirects)
            chunks, size = [], 0
            while True:
                if time.monotonic() > deadline:
                    raise JudgeError(f"could not reach the endpoint: no full answer within {timeout:g} s (timed out)")
                chunk = response.read(65536)
                if not chunk:
                    break
                chunks.append(chunk)
                size += len(chunk)
                if size > MAX_ANSWER_BYTES:
                    break
            raw = b"".join(chunks)
    except urllib.error.HTTPError as exc:
        detail = exc.read(300).decode("utf-8", "replace").strip()
        raise JudgeError(f"the endpoint answered HTTP {exc.code}: {detail[:200]}") from None
    except (urllib.error.URLError, TimeoutError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise JudgeError(f"could not reach the endpoint: {reason}") from None
    if len(raw) > MAX_ANSWER_BYTES:
        raise JudgeError("the endpoint's answer is larger than 1 MB")
    try:
        data = json.loads(raw)
        content = data["choices"][0]["message"]["content"]
    except (ValueError, KeyError, IndexError, TypeError):
        raise JudgeError(f"the endpoint's answer is not a chat completion: {raw[:200].decode('utf-8', 'replace')!r}") from None
    usage = data.get("usage") if isinstance(data.get("usage"), dict) else {}
    choice, confidence, rationale = parse_endpoint_answer(content)
    p_left = {"left": confidence, "right": 1.0 - confidence}.get(choice, 0.5)
    return Verdict(p_left=p_left, choice=choice, rationale=rationale, tokens_in=_count(usage.get("prompt_tokens")),
                   tokens_out=_count(usage.get("completion_tokens")))


def _count(value) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else 0


# ---------------------------------------------------------------- local models


@lru_cache(maxsize=2)
def _reward_scorer(path: str):
    from .backends.reward_trl import RewardScorer

    return RewardScorer(path, batch_size=2)


def reward_model_verdict(*, path: str, name: str, messages: Sequence[dict], left: str, right: str) -> Verdict:
    if not os.path.isdir(path):
        raise JudgeError(f"the reward model's directory {path} is not there")
    scores = _reward_scorer(path)([prompt_as_text(messages)] * 2, [left, right])
    margin = float(scores[0] - scores[1])
    return verdict_from_p(sigmoid(margin), f"Reward model {name}: reward {scores[0]:.3f} for A against "
                                           f"{scores[1]:.3f} for B (margin {margin:+.3f}).")


class CausalJudge:
    """A causal LM as a judge: its own rubric and evaluation, then P(A) from its likelihoods."""

    def __init__(self, path: str, *, max_new_tokens: int = 256):
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.torch = torch
        self.tokenizer = AutoTokenizer.from_pretrained(path)
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        # On a GPU worker: the GPU, in bf16 where it has it; on CPU full precision.
        self.device = "cuda" if torch.cuda.is_available() else "cpu"
        dtype = torch.bfloat16 if self.device == "cuda" and torch.cuda.is_bf16_supported() else torch.float32
        self.model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype).to(self.device).eval()
        self.max_new_tokens = max_new_tokens

    def _ids(self, text: str) -> list[int]:
        return self.tokenizer(text, add_special_tokens=False)["input_ids"]

    def _suffix_logprob(self, prefix: list[int], suffix: list[int]) -> float:
        torch = self.torch
        ids = torch.tensor([prefix + suffix], device=self.device)
        with torch.no_grad():
            logits = self.model(input_ids=ids).logits[0].float()
        logp = torch.log_softmax(logits[:-1], dim=-1)
        start = len(prefix)
        return float(sum(logp[start - 1 + i, token].item() for i, token in enumerate(suffix)))

    def p_first(self, messages: list[dict]) -> tuple[float, str]:
        """P(response A is better) and the evaluation the model wrote before its verdict."""
        torch = self.torch
        prompt = self.tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        prompt_ids = self._ids(prompt)
        # The model's positions bound the prompt, what it writes and the verdict read after it.
        positions = getattr(self.model.config, "max_position_embeddings", None) or 10**9
        verdict_room = len(self._ids("<answer>[[A]]</answer>")) + 1
        room = positions - len(prompt_ids) - verdict_room
        if room < 0:
            raise JudgeError(f"the judge prompt is {len(prompt_ids)} tokens, more than the model's {positions} "
                             f"positions leave room for")
        written = ""
        if min(self.max_new_tokens, room) > 0:
            with torch.no_grad():
                out = self.model.generate(torch.tensor([prompt_ids], device=self.device),
                                          attention_mask=torch.ones(1, len(prompt_ids), dtype=torch.long,
                                                                    device=self.device),
                                          max_new_tokens=min(self.max_new_tokens, room), do_sample=False,
                                          pad_token_id=self.tokenizer.pad_token_id)
            written = self.tokenizer.decode(out[0][len(prompt_ids):], skip_special_tokens=True)
        cut = written.find("<answer>")
        evaluation = written[:cut] if cut >= 0 else written
        prefix = prompt_ids + self._ids(evaluation + "<answer>[[")
        lp_a = self._suffix_logprob(prefix, self._ids("A]]</answer>"))
        lp_b = self._suffix_logprob(prefix, self._ids("B]]</answer>"))
        return sigmoid(lp_a - lp_b), evaluation.strip()


@lru_cache(maxsize=2)
def causal_judge(path: str, max_new_tokens: int = 256) -> CausalJudge:
    return CausalJudge(path, max_new_tokens=max_new_tokens)


def causal_verdict(*, path: str, messages: Sequence[dict], left: str, right: str, max_new_tokens: int = 256) -> Verdict:
    if not os.path.isdir(path):
        raise JudgeError(f"the model directory {path} is not there")
    judge = causal_judge(path, max_new_tokens)
    chat = rm_r1_messages(messages=messages, left=left, right=right)
    p_left, evaluation = judge.p_first(chat)
    prompt_tokens = len(judge._ids(judge.tokenizer.apply_chat_template(chat, add_generation_prompt=True, tokenize=False)))
    return verdict_from_p(p_left, evaluation[:2000], tokens_in=prompt_tokens, tokens_out=len(judge._ids(evaluation)))
