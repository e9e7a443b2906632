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


def _converters(model) -> list[list]:
    """Per concrete field, the converters the ORM applies to a value read from the database (the
    backend's, e.g. SQLite's text to an aware datetime, then the field's, e.g. JSON parsed), each
    with the column expression it is called with."""
    out = []
    for field in model._meta.concrete_fields:
        column = field.get_col(model._meta.db_table)
        chain = [*connection.ops.get_db_converters(column), *column.get_db_converters(connection)]
        out.append([(convert, column) for convert in chain])
    return out


_converter_cache: dict[tuple, list[list]] = {}


def from_row(model, values):
    """A `model` instance from the first columns of a row selected with `columns` (converted as the
    ORM converts them), and the columns left over."""
    fields = model._meta.concrete_fields
    key = (connection.vendor, model)
    converters = _converter_cache.get(key)
    if converters is None:
        converters = _converter_cache[key] = _converters(model)
    own = []
    for value, chain in zip(values, converters):
        for convert, column in chain:
            value = convert(value, column, connection)
        own.append(value)
    return model.from_db(connection.alias, [f.attname for f in fields], own), list(values[len(fields):])
