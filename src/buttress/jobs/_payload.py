"""Arguments and results as JSON, checked when a job is deferred rather than when a worker chokes on them.

A job's arguments cross processes and outlive them, so they must survive ``json.dumps``/``loads``
unchanged: dicts with string keys, lists, strings, finite numbers, booleans and None. Anything else is a
``ValidationError`` that names the offending path (``kwargs.when``, ``args[1][0]``) and the fix.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from typing import Any

from buttress.errors import ValidationError

__all__ = ["dump_args", "dump_result", "load", "load_args"]

_SCALARS = (str, bool, int, type(None))


def _check(value: object, path: str, field: str) -> None:
    if isinstance(value, _SCALARS):
        return
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValidationError(
                f"{path} is {value!r}, which JSON cannot carry; pass a finite number or None",
                field=field,
                context={"path": path},
            )
        return
    if isinstance(value, Mapping):
        for key, item in value.items():
            if not isinstance(key, str):
                raise ValidationError(
                    f"{path} has the key {key!r} ({type(key).__name__}); JSON object keys are strings: "
                    f"use str({key!r})",
                    field=field,
                    context={"path": path},
                )
            _check(item, f"{path}.{key}", field)
        return
    if isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            _check(item, f"{path}[{index}]", field)
        return
    raise ValidationError(
        f"{path} is a {type(value).__name__}, which a job cannot carry as JSON; pass plain data "
        "(str, int, float, bool, None, list, dict) such as an id or an ISO date string",
        field=field,
        context={"path": path, "type": type(value).__name__},
    )


def dump_args(args: Sequence[Any], kwargs: Mapping[str, Any]) -> str:
    """The stored form of a call's arguments; raises ``ValidationError`` (field ``args``) first."""
    _check(list(args), "args", "args")
    _check(dict(kwargs), "kwargs", "args")
    return json.dumps({"args": list(args), "kwargs": dict(kwargs)}, separators=(",", ":"))


def dump_result(value: object) -> str:
    """The stored form of a job's return value; raises ``ValidationError`` (field ``result``)."""
    _check(value, "result", "result")
    return json.dumps(value, separators=(",", ":"))


def load_args(text: str) -> tuple[list[Any], dict[str, Any]]:
    """The positional and keyword arguments of a stored call."""
    data = json.loads(text)
    return list(data["args"]), dict(data["kwargs"])


def load(text: str | None) -> Any:
    """A stored JSON value (None stays None)."""
    return None if text is None else json.loads(text)
