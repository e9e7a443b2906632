"""Model instances from hand-written SQL on the labelling hot path, built as the ORM builds them.

The hot path (annotation/services/routing.py's one-statement lease, token authentication) runs a
few statements per request whose ORM construction and compilation cost more CPU than the
database spends answering them (bench/annotate_load.py --py-spy). There the SQL is written once
and its rows are turned back into model instances here, so callers keep working with models.
"""
from __future__ import annotations

from django.db import connection


def columns(model, alias: str) -> str:
    """Every concrete column of `model` under the table alias `alias`, in field order."""
    return ", ".join(f'{alias}."{f.column}"' for f in model._meta.concrete_fields)


def from_row(model, values):
    """A `model` instance from the first columns of a row selected with `columns` (each field's
    from_db_value applied, e.g. JSON parsed, as the ORM does), and the columns left over."""
    fields = model._meta.concrete_fields
    own = [f.from_db_value(v, None, connection) if v is not None and hasattr(f, "from_db_value") else v
           for f, v in zip(fields, values)]
    return model.from_db(connection.alias, [f.attname for f in fields], own), list(values[len(fields):])
