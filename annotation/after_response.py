"""Run work after a response has been sent, in the same worker (like Starlette's background tasks).

Used so that scoring a hidden anchor does not make its submit slower than a live item's. Django
calls `response.close()` once the WSGI server has written the body; the callbacks run there,
before `request_finished`. A failing callback is logged, never raised (the client already has its
answer); the beat task `score_missing_hidden_answers` picks up anything that did not run.
"""
from __future__ import annotations

import logging
from collections.abc import Callable

log = logging.getLogger(__name__)


class AfterResponse:
    def __init__(self) -> None:
        self.callbacks: list[Callable[[], object]] = []

    def __call__(self, callback: Callable[[], object]) -> None:
        self.callbacks.append(callback)

    def attach(self, response):
        if not self.callbacks:
            return response
        callbacks, original_close = list(self.callbacks), response.close

        def close() -> None:
            try:
                for callback in callbacks:
                    try:
                        callback()
                    except Exception:  # noqa: BLE001 - the response is gone; log and let the beat task retry
                        log.exception("deferred work after a response failed")
            finally:
                original_close()

        response.close = close
        return response
