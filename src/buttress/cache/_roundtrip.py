"""Which values come back unchanged through a serializer: the rule every backend applies at ``set``.

A value is cached only if it comes back equal and of the same types, so memory, an L1 and Redis (read by
this process or another) all return the same thing; anything else is a
:class:`~buttress.errors.ValidationError` at ``set`` naming where in the value the problem is and the fix.

- **json**: ``str``, ``int``, ``float`` (NaN and infinities included), ``bool``, ``None``, ``list`` and
  ``dict`` with ``str`` keys, exactly those types. Refused: tuples (they come back as lists), non-``str``
  keys (``{1: "a"}`` would come back as ``{"1": "a"}``), sets, bytes, subclasses (an ``IntEnum`` comes
  back as an ``int``, an ``OrderedDict`` as a ``dict``) and every other object.
- **msgpack**: the same, plus ``bytes``, and dict keys of any of those scalar types (``{1: "a"}`` comes
  back as it went); integers within ``-2**63 .. 2**64 - 1``.
- **pickle**: anything pickle can carry (tuples, sets, ``int`` keys, your classes) comes back as it went;
  refused only when ``pickle.dumps`` fails (locks, lambdas, open files).

A custom serializer (another ``name``) is not checked here: it answers for its own round trip.
"""

from __future__ import annotations

import pickle
from collections.abc import Callable
from typing import Any, Final

from buttress.errors import ValidationError

__all__ = ["RULES", "check_value", "value_checker"]

_SCALARS: Final[frozenset[type]] = frozenset({str, int, float, bool, type(None)})
_MSGPACK_SCALARS: Final[frozenset[type]] = _SCALARS | {bytes}
_MSGPACK_PLAIN: Final[frozenset[type]] = _MSGPACK_SCALARS - {int}  # ints are range-checked
_STR: Final[frozenset[type]] = frozenset({str})
_MSGPACK_INT: Final = (-(2**63), 2**64)
RULES: Final = ("json", "msgpack", "pickle")
_OTHER_SERIALIZERS: Final = {"json": "msgpack or pickle", "msgpack": "pickle"}


def _refuse(rule: str, path: str, problem: str, fix: str) -> ValidationError:
    other = _OTHER_SERIALIZERS.get(rule)
    also = f", or use the {other} serializer (BUTTRESS_CACHE__SERIALIZER)" if other else ""
    return ValidationError(
        f"cannot cache {path}: {problem} with the {rule} serializer; {fix}{also}", field="value"
    )


def _leaf_problem(rule: str, path: str, value: Any) -> ValidationError:
    kind = type(value)
    name = kind.__qualname__
    if isinstance(value, tuple):
        return _refuse(rule, path, f"a {name} comes back as a list", "store a list")
    if isinstance(value, set | frozenset):
        return _refuse(rule, path, f"a {name} cannot be stored", "store a sorted list")
    if isinstance(value, bytes):
        return _refuse(rule, path, "bytes cannot be stored", "decode them to str (or base64)")
    for base in (bool, int, float, str, list, dict):
        if isinstance(value, base):
            return _refuse(
                rule,
                path,
                f"a {name} (a subclass of {base.__name__}) would come back as a plain {base.__name__}",
                f"store {base.__name__}(value) (for an enum, its .value)",
            )
    return _refuse(
        rule,
        path,
        f"a {name} cannot be stored",
        "store plain data (e.g. dataclasses.asdict(obj) or model.model_dump())",
    )


def _walk(rule: str, value: Any, path: str) -> None:
    scalars, plain = (_MSGPACK_SCALARS, _MSGPACK_PLAIN) if rule == "msgpack" else (_SCALARS, _SCALARS)
    kind = type(value)
    if kind in scalars:
        if kind is int and rule == "msgpack" and not _MSGPACK_INT[0] <= value < _MSGPACK_INT[1]:
            raise _refuse(rule, path, f"{value} is outside 64-bit range", "store it as a str")
    elif kind is list:
        if not plain.issuperset(map(type, value)):  # a C loop: a list of scalars costs no Python step
            for index, item in enumerate(value):
                if type(item) not in plain:
                    _walk(rule, item, f"{path}[{index}]")
    elif kind is dict:
        if not (_STR.issuperset(map(type, value)) and plain.issuperset(map(type, value.values()))):
            _walk_dict(rule, value, path, plain)
    else:
        raise _leaf_problem(rule, path, value)


def _walk_dict(rule: str, value: dict[Any, Any], path: str, plain: frozenset[type]) -> None:
    for key, item in value.items():
        if type(key) is not str:
            where = f"the key {key!r} in {path}"
            if rule == "json":
                raise _refuse(
                    rule,
                    where,
                    f"JSON object keys are strings, so {key!r} would come back as {str(key)!r}",
                    "use str keys",
                )
            _walk(rule, key, where)  # msgpack keeps scalar keys; a tuple key is refused like a tuple
        if type(item) not in plain:
            _walk(rule, item, f"{path}[{key!r}]")


def check_value(rule: str, value: Any) -> None:
    """Raise :class:`ValidationError` unless ``value`` comes back unchanged through serializer ``rule``."""
    kind = type(value)
    if kind in _SCALARS and (kind is not int or rule != "msgpack"):
        return
    if rule == "pickle":
        try:
            pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
        except (pickle.PicklingError, TypeError, AttributeError, ValueError, RecursionError) as exc:
            raise ValidationError(
                f"cannot cache a {type(value).__qualname__} with the pickle serializer: pickle refuses it "
                f"({type(exc).__name__}: {exc}); store plain data, or an object pickle can carry",
                field="value",
            ) from None
        return
    if rule not in RULES:
        return
    try:
        _walk(rule, value, "value")
    except RecursionError:
        raise ValidationError(
            f"cannot cache this {type(value).__qualname__}: it refers to itself (or nests deeper than "
            f"Python's recursion limit), which the {rule} serializer cannot store; cache a tree",
            field="value",
        ) from None


def value_checker(rule: str | None) -> Callable[[Any], None] | None:
    """``check_value`` bound to ``rule``; None when there is nothing to check (no rule, or a custom one)."""
    if rule is None or rule not in RULES:
        return None

    def check(value: Any) -> None:
        check_value(rule, value)

    return check
