"""The API's limit/offset pagination, with a ceiling on `limit`: an unbounded one goes to the
database as LIMIT and a number past bigint is a DataError there (a 500), besides asking for every
row at once. A larger `limit` is cut to the ceiling, as DRF does with `max_limit`."""
from __future__ import annotations

from rest_framework.pagination import LimitOffsetPagination


class BoundedLimitOffsetPagination(LimitOffsetPagination):
    max_limit = 1000
    # `offset` needs no ceiling: past the row count DRF answers an empty page without a query.
