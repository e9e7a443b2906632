"""Command-line options generated from a config dataclass (training.config): one `--field-name`
per field, typed from its default, with the field's own help text and default, so a new setting
reaches the CLI with no second list to keep in step. Short spellings people already use stay as
aliases (`--lr` for `--learning-rate`)."""
from __future__ import annotations

import argparse
from dataclasses import MISSING, fields


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _default(f):
    return f.default_factory() if f.default_factory is not MISSING else f.default


def add_config_arguments(parser, config_cls, *, aliases: dict[str, tuple[str, ...]] | None = None,
                         skip: frozenset[str] = frozenset(), required: frozenset[str] = frozenset(),
                         choices: dict[str, tuple[str, ...]] | None = None) -> None:
    """Add an option for every field of `config_cls` but those in `skip`. Every option defaults to
    None (the config's own default applies); booleans get `--x/--no-x`; lists and dicts take the
    comma-separated form the config parses ("math,code", "math=2,format=0.2")."""
    aliases = aliases or {}
    for f in fields(config_cls):
        if f.name in skip:
            continue
        default = _default(f)
        kind = config_cls.OPTIONAL.get(f.name) or type(default)
        help_text = f.metadata.get("help", "")
        if default not in (None, "", [], {}):
            shown = ",".join(default) if isinstance(default, list) else (
                ",".join(f"{k}={v}" for k, v in default.items()) if isinstance(default, dict) else default)
            help_text += f" (default: {shown})"
        help_text = help_text.replace("%", "%%")
        names = (_flag(f.name), *aliases.get(f.name, ()))
        common = {"dest": f.name, "default": None, "help": help_text, "required": f.name in required}
        if choices and f.name in choices:
            common["choices"] = choices[f.name]
        if kind is bool:
            parser.add_argument(*names, action=argparse.BooleanOptionalAction, **common)
        elif kind in (list, dict):
            parser.add_argument(*names, type=str, metavar="A,B" if kind is list else "K=V,...", **common)
        else:
            parser.add_argument(*names, type=kind, **common)


def config_values(options: dict, config_cls) -> dict:
    """The fields given on the command line, for `config_cls.from_dict`."""
    return {f.name: options[f.name] for f in fields(config_cls) if options.get(f.name) is not None}


def start_from_options(options: dict, config_cls, start):
    """Build `config_cls` from the command's options and call `start(config)` (which creates the
    run); a config the service refuses becomes a CommandError naming every bad field. Returns
    (config, run)."""
    from django.core.management.base import CommandError

    from training.services.reward_runs import RunConfigError

    try:
        config = config_cls.from_dict(config_values(options, config_cls))
        return config, start(config)
    except RunConfigError as exc:
        raise CommandError("; ".join(f"{k}: {v}" for k, v in exc.errors.items())) from None
    except ValueError as exc:
        raise CommandError(str(exc)) from None
