"""Domain errors that services raise and the API / views turn into clear messages."""
from __future__ import annotations


class DomainError(Exception):
    """Base class: a request the domain refuses, with a message fit for the person who made it."""

    status_code = 400

    def __init__(self, message: str, *, field_errors: dict[str, str] | None = None):
        super().__init__(message)
        self.message = message
        self.field_errors = field_errors or {}


class ValidationFailed(DomainError):
    status_code = 422


class Conflict(DomainError):
    status_code = 409


class NotAllowed(DomainError):
    status_code = 403
