"""The words of an invalid setting's error: which variable or keyword, what it expects."""

from __future__ import annotations

import os
import re
from collections.abc import Collection
from typing import Any

from pydantic import AliasChoices, ValidationError
from pydantic.fields import FieldInfo
from pydantic_settings import SettingsError

Fields = dict[str, FieldInfo]


def env_var(fields: Fields, field: str) -> str:
    """The environment variable a setting is read from: ``PUBSUB_JOBS_<FIELD>``, or for a
    setting with several names, the first one set (else its own)."""
    info = fields.get(field)
    alias = info.validation_alias if info is not None else None
    if isinstance(alias, AliasChoices):
        names = [name for name in alias.choices if isinstance(name, str)]
        present = {name.upper() for name in os.environ}
        return next((n for n in names if n.upper() in present), names[0])
    return f"PUBSUB_JOBS_{field.upper()}"


def field_of(fields: Fields, name: str) -> str | None:
    """The field a validation error's location starts with (its name or one of its aliases)."""
    if name in fields:
        return name
    for field, info in fields.items():
        alias = info.validation_alias
        names = alias.choices if isinstance(alias, AliasChoices) else [alias]
        if any(isinstance(n, str) and n.lower() == name.lower() for n in names):
            return field
    return None


def _expects(fields: Fields, field: str | None) -> str:
    info = fields.get(field) if field else None
    if info is None or not info.description:
        return ""
    return f" [{info.description.rstrip('.')}]"


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def explain_invalid(fields: Fields, exc: ValidationError, *, given: Collection[str]) -> str:
    """One clause per error: the variable or keyword, its value, what was wrong, what it is."""
    clauses = []
    for error in exc.errors(include_url=False):
        loc = [str(part) for part in error["loc"]]
        if error["type"] == "extra_forbidden" and len(loc) == 1:
            known = ", ".join(sorted(fields))
            clauses.append(f"configure({loc[0]}=...): no such setting (known: {known})")
            continue
        field = field_of(fields, loc[0]) if loc else None
        shown = _shown(error["input"])
        inner = ".".join(loc[1:])
        if field is None:
            where = f"{'.'.join(loc) or 'settings'}={shown}"
        elif field in given or loc[0] in given:
            where = (f"configure({field}=...), at {inner}={shown}" if inner
                     else f"configure({field}={shown})")
        else:
            name = env_var(fields, field)
            where = f"{name}, at {inner}={shown}" if inner else f"{name}={shown}"
        msg = error["msg"].removeprefix("Value error, ")
        clauses.append(f"{where}: {msg}{_expects(fields, field)}")
    plural = "s" if len(clauses) > 1 else ""
    return f"invalid pubsub-jobs setting{plural}: " + "; ".join(clauses)


_UNPARSABLE_FIELD = re.compile(r'field "([^"]+)"')


def explain_unparsable(fields: Fields, exc: SettingsError) -> str:
    """pydantic-settings could not decode a variable's JSON (``PUBSUB_JOBS_QUEUES``...)."""
    found = _UNPARSABLE_FIELD.search(str(exc))
    field = field_of(fields, found.group(1)) if found else None
    if field is None:
        return f"invalid pubsub-jobs settings: {exc}"
    cause = f" ({exc.__cause__})" if exc.__cause__ is not None else ""
    return (
        f"invalid pubsub-jobs setting: {env_var(fields, field)} is not valid JSON{cause}"
        f"{_expects(fields, field)}"
    )
