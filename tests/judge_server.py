"""A real OpenAI-compatible chat-completions server on the loopback interface, for the AI-judge
tests (not a mock object: the judge speaks HTTP to it exactly as to a hosted API).

It answers POST /v1/chat/completions with a chat completion whose content is the verdict
`decide(left_text, right_text)` returns as (choice, confidence), read from the judge prompt's user
turn (rewards.set_formats.judge_user_text); it records every request body and Authorization
header. `mode` switches it to the failures a real endpoint has: "http500", "garbage" (an answer
that is no verdict), "not_json" (a body that is no chat completion), "slow" (answers after 3 s), "redirect" (to an
internal address)."""
from __future__ import annotations

import json
import re
import threading
import time
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

RESPONSE_RE = re.compile(r"\[The Start of Chatbot ([AB])'s Response\]\n(.*?)\n\[The End of Chatbot \1's Response\]", re.S)


def responses_of(user_text: str) -> tuple[str, str]:
    found = dict(RESPONSE_RE.findall(user_text))
    return found["A"], found["B"]


class JudgeServer:
    def __init__(self, decide, *, key: str = ""):
        self.decide, self.key, self.mode = decide, key, "ok"
        self.requests: list[dict] = []
        self.headers: list[dict] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet
                pass

            def do_POST(self):  # noqa: N802 (http.server's name)
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                outer.requests.append(body)
                outer.headers.append(dict(self.headers))
                if self.path != "/v1/chat/completions":
                    return self._send(404, {"error": {"message": "no such route"}})
                if outer.key and self.headers.get("Authorization") != f"Bearer {outer.key}":
                    return self._send(401, {"error": {"message": "invalid api key"}})
                if outer.mode == "http500":
                    return self._send(500, {"error": {"message": "the model is overloaded"}})
                if outer.mode == "redirect":  # e.g. towards a cloud metadata service
                    self.send_response(302)
                    self.send_header("Location", "http://169.254.169.254/latest/meta-data/")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                if outer.mode == "slow":
                    time.sleep(3)
                if outer.mode == "not_json":
                    return self._send_raw(200, b"<html>gateway</html>")
                left, right = responses_of(body["messages"][-1]["content"])
                if outer.mode == "garbage":
                    content = "I think both have merits."
                else:
                    choice, confidence = outer.decide(left, right)
                    content = ("Here is my verdict:\n```json\n" + json.dumps(
                        {"choice": choice, "confidence": confidence, "rationale": f"{choice} follows the spec"}) + "\n```")
                self._send(200, {"id": "chatcmpl-1", "object": "chat.completion", "model": body.get("model"),
                                 "choices": [{"index": 0, "finish_reason": "stop",
                                              "message": {"role": "assistant", "content": content}}],
                                 "usage": {"prompt_tokens": 120, "completion_tokens": 30, "total_tokens": 150}})

            def _send(self, code, payload):
                self._send_raw(code, json.dumps(payload).encode())

            def _send_raw(self, code, raw):
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"


@contextmanager
def judge_server(decide, *, key: str = ""):
    server = JudgeServer(decide, key=key)
    thread = threading.Thread(target=server.httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.httpd.shutdown()
        server.httpd.server_close()
