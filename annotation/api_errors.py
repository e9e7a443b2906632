"""DRF exception handler: domain errors become clear JSON with per-field messages."""
from __future__ import annotations

from django.core.exceptions import ObjectDoesNotExist
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from .errors import DomainError


def exception_handler(exc, context):
    if isinstance(exc, DomainError):
        body = {"detail": exc.message, "errors": exc.field_errors, **getattr(exc, "extra", {})}
        return Response(body, status=exc.status_code)
    if isinstance(exc, ObjectDoesNotExist):
        return Response({"detail": "Not found."}, status=404)
    return drf_exception_handler(exc, context)
