"""Cache keys for decorated functions: a typed default, ``str.format`` templates, or a callable.

The default key is ``"<module>.<qualname>:<arguments>"``. Arguments of the plain types (str, int, float, bool,
None, bytes) are written with ``repr``, which is typed (``1``, ``1.0``, ``True`` and ``'1'`` all differ) and
stable across processes; containers, dates, UUIDs, enums, dataclasses and pydantic models are written by a
canonical encoder; anything else is refused, because its ``repr`` usually holds a memory address and would
make a key nobody can hit again. Keys longer than 120 characters are replaced by a BLAKE2b digest of them.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import decimal
import enum
import hashlib
import inspect
import string
import uuid
from collections.abc import Callable, Mapping
from typing import Any, Final, cast

from buttress.errors import ValidationError

__all__ = ["KeyBuilder", "build_key_builder", "encode_arguments", "function_name", "is_method"]

KeyBuilder = Callable[[tuple[Any, ...], dict[str, Any]], str]
"""Turns a call's positional and keyword arguments into the key part after the namespace."""

_PLAIN: Final[frozenset[type]] = frozenset({str, int, float, bool, type(None), bytes})
_MAX_PLAIN_KEY: Final = 120
_SELF_NAMES: Final = ("self", "cls")


def function_name(fn: Callable[..., Any]) -> str:
    """``module.qualname`` of ``fn``: the stable prefix of its default keys."""
    return f"{getattr(fn, '__module__', '?')}.{getattr(fn, '__qualname__', repr(fn))}"


def _canonical(value: Any) -> str:  # noqa: PLR0911 - one return per kind of value
    kind = type(value)
    if kind in _PLAIN:
        return repr(value)
    if isinstance(value, enum.Enum):
        return f"{type(value).__qualname__}.{value.name}"
    if isinstance(value, tuple | list):
        inner = ",".join(_canonical(item) for item in value)
        return f"({inner})" if isinstance(value, tuple) else f"[{inner}]"
    if isinstance(value, Mapping):
        items = sorted((_canonical(k), _canonical(v)) for k, v in value.items())
        return "{" + ",".join(f"{k}:{v}" for k, v in items) + "}"
    if isinstance(value, set | frozenset):
        return "{" + ",".join(sorted(_canonical(item) for item in value)) + "}"
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return f"{kind.__name__}({value.isoformat()})"
    if isinstance(value, uuid.UUID | decimal.Decimal | dt.timedelta):
        return f"{kind.__name__}({value})"
    if isinstance(value, str | int | float | bytes):  # subclasses of the plain types (StrEnum handled above)
        return repr(kind.__mro__[-2](value))
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        fields = {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}
        return f"{kind.__qualname__}{_canonical(fields)}"
    model_dump = getattr(value, "model_dump", None)
    if callable(model_dump):  # pydantic models
        return f"{kind.__qualname__}{_canonical(model_dump(mode='json'))}"
    raise ValidationError(
        f"an argument of type {kind.__qualname__} has no stable cache key (its repr may hold a memory "
        "address); pass key= as a template such as 'user:{user_id}' or a callable returning a string",
        field="key",
    )


_REPR: Final[dict[type, Callable[[Any], str]]] = {
    kind: cast("Callable[[Any], str]", kind.__repr__) for kind in _PLAIN
}


def encode_arguments(args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> str:
    """The typed, stable text of a call's arguments (keyword arguments sorted by name).

    One plain argument is written bare (``42``, ``'42'``): no plain ``repr`` starts with ``(``, so it
    cannot collide with the tuple form used for several arguments.
    """
    if not kwargs and len(args) == 1:
        single = _REPR.get(type(args[0]))
        if single is not None:
            text = single(args[0])
            if len(text) <= _MAX_PLAIN_KEY:
                return text
    try:
        for arg in args:
            if type(arg) not in _PLAIN:
                text = _canonical(args)
                break
        else:
            text = repr(args)
        if kwargs:
            text += _canonical(dict(kwargs))
    except RecursionError:
        raise ValidationError(
            "an argument refers to itself (or nests deeper than Python's recursion limit), so it has no "
            "cache key; pass key= as a template such as 'report:{report_id}' or a callable returning a str",
            field="key",
        ) from None
    if len(text) > _MAX_PLAIN_KEY:
        text = "#" + hashlib.blake2b(text.encode(), digest_size=16).hexdigest()
    return text


def _default_builder(skip_self: bool) -> KeyBuilder:
    if skip_self:

        def method_key(args: tuple[Any, ...], kwargs: dict[str, Any]) -> str:
            return encode_arguments(args[1:], kwargs)

        return method_key
    return encode_arguments


def _template_builder(fn: Callable[..., Any], template: str, skip_self: bool) -> KeyBuilder:
    signature = inspect.signature(fn)
    names = list(signature.parameters)
    fields = {field for _, field, _, _ in string.Formatter().parse(template) if field is not None}
    roots = {field.split(".")[0].split("[")[0] for field in fields}
    if "" in roots:
        raise ValidationError(
            f"key template {template!r} has an empty or positional field; name the parameter, "
            "e.g. 'artist:{artist_id}'",
            field="key",
        )
    unknown = sorted(roots - set(names[1:] if skip_self else names))
    if unknown:
        raise ValidationError(
            f"key template {template!r} names {', '.join(unknown)}, which "
            f"{'is not a parameter' if len(unknown) == 1 else 'are not parameters'} of "
            f"{function_name(fn)}{' (self is never part of a key)' if skip_self else ''}; "
            f"its parameters are: {', '.join(names) or 'none'}",
            field="key",
        )
    empty = inspect.Parameter.empty
    defaults = {name: p.default for name, p in signature.parameters.items() if p.default is not empty}
    simple = all(
        p.kind in (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
        for p in signature.parameters.values()
    )
    fmt = template.format

    def template_key(args: tuple[Any, ...], kwargs: dict[str, Any]) -> str:
        if simple:
            values = dict(defaults)
            values.update(zip(names, args, strict=False))
            values.update(kwargs)
        else:
            bound = signature.bind(*args, **kwargs)
            bound.apply_defaults()
            values = bound.arguments
        return fmt(**values)

    return template_key


def _callable_builder(key: Callable[..., str], skip_self: bool) -> KeyBuilder:
    def callable_key(args: tuple[Any, ...], kwargs: dict[str, Any]) -> str:
        result = key(*(args[1:] if skip_self else args), **kwargs)
        if not isinstance(result, str):
            raise ValidationError(
                f"the key= callable returned a {type(result).__name__}, not a str; return the key text",
                field="key",
            )
        return result

    return callable_key


def is_method(fn: Callable[..., Any]) -> bool:
    """True for a function whose first parameter is ``self`` or ``cls`` (defined in a class body)."""
    try:
        first = next(iter(inspect.signature(fn).parameters), None)
    except (TypeError, ValueError):
        return False
    return first in _SELF_NAMES and "." in getattr(fn, "__qualname__", "")


def build_key_builder(
    fn: Callable[..., Any], key: str | Callable[..., str] | None, *, skip_self: bool
) -> tuple[str, KeyBuilder]:
    """The key prefix for ``fn`` and the builder of the rest, for ``@cached(key=...)``.

    ``None``: ``"<module>.<qualname>:"`` plus the typed arguments. A template: formatted with the call's
    arguments bound to parameter names (defaults applied). A callable: called with the call's arguments
    (``self`` excluded for methods), returning the key. Templates and callables own the whole key.
    ``skip_self`` (from :func:`is_method`) leaves a method's first argument out of every key.
    """
    if key is None:
        return function_name(fn) + ":", _default_builder(skip_self)
    if isinstance(key, str):
        return "", _template_builder(fn, key, skip_self)
    if callable(key):
        return "", _callable_builder(key, skip_self)
    raise ValidationError(
        f"key must be None, a template string or a callable, got {type(key).__name__}; "
        "e.g. key='artist:{artist_id}'",
        field="key",
    )
