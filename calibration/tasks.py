"""Celery tasks: thin wrappers that call one service."""
from __future__ import annotations

from celery import shared_task

from .services.queue import hidden_answers_score_missing


@shared_task
def score_missing_hidden_answers() -> int:
    return hidden_answers_score_missing()
