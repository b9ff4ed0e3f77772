"""Query rows as the cache stores them: plain lists that every cache serializer returns unchanged.

The cache refuses values a serializer would not return as they went (a tuple comes back from JSON as a
list, a ``datetime`` not at all), so rows are stored as lists of encoded values: a str, int, float, bool
or None stands for itself, anything else is a two-item list ``[tag, payload]`` (``datetime``, ``date``,
``time``, ``timedelta``, ``Decimal``, ``UUID``, ``bytes``, a JSON document, an array). A column of any
other type is a ValidationError naming the column: cast it in SQL, or leave that query uncached.
"""

from __future__ import annotations

import base64
import datetime as dt
import uuid
from collections.abc import Callable, Iterable, Sequence
from decimal import Decimal
from typing import Any, Final

from buttress.errors import ValidationError

__all__ = ["Rows", "decode_rows", "encode_rows"]

_PLAIN: Final = frozenset({str, int, float, bool, type(None)})


class Rows(list[tuple[Any, ...]]):
    """The rows of a cached query: a list of plain tuples, with the column names in :attr:`columns`.

    Equal to a plain list of the same tuples; :meth:`mappings` gives one dict per row, :meth:`scalars`
    the first column.
    """

    __slots__ = ("columns",)

    def __init__(self, columns: Sequence[str], rows: Iterable[tuple[Any, ...]] = ()) -> None:
        super().__init__(rows)
        self.columns: tuple[str, ...] = tuple(columns)

    def mappings(self) -> list[dict[str, Any]]:
        """One ``{column: value}`` dict per row."""
        columns = self.columns
        return [dict(zip(columns, row, strict=True)) for row in self]

    def scalars(self) -> list[Any]:
        """The first column of every row."""
        return [row[0] for row in self]

    def __repr__(self) -> str:
        return f"Rows({list(self.columns)!r}, {list(self)!r})"


def _encode_list(value: Any) -> list[Any]:
    return ["a", [_encode(item, "") for item in value]]


_ENCODERS: Final[dict[type, Callable[[Any], list[Any]]]] = {
    dt.datetime: lambda v: ["dt", v.isoformat()],
    dt.date: lambda v: ["d", v.isoformat()],
    dt.time: lambda v: ["t", v.isoformat()],
    dt.timedelta: lambda v: ["td", [v.days, v.seconds, v.microseconds]],
    Decimal: lambda v: ["n", str(v)],
    uuid.UUID: lambda v: ["u", v.hex],
    bytes: lambda v: ["b", base64.b64encode(v).decode()],
    memoryview: lambda v: ["b", base64.b64encode(bytes(v)).decode()],
    bytearray: lambda v: ["b", base64.b64encode(bytes(v)).decode()],
    dict: lambda v: ["j", v],
    list: _encode_list,
}

_DECODERS: Final[dict[str, Callable[[Any], Any]]] = {
    "dt": dt.datetime.fromisoformat,
    "d": dt.date.fromisoformat,
    "t": dt.time.fromisoformat,
    "td": lambda p: dt.timedelta(days=p[0], seconds=p[1], microseconds=p[2]),
    "n": Decimal,
    "u": uuid.UUID,
    "b": base64.b64decode,
    "j": lambda p: p,
    "a": lambda p: [_decode(item) for item in p],
}


def _encode(value: Any, column: str) -> Any:
    kind = type(value)
    if kind in _PLAIN:
        return value
    encoder = _ENCODERS.get(kind)
    if encoder is None:
        raise ValidationError(
            f"column {column or '(array item)'!r} holds a {kind.__qualname__}, which the query cache cannot "
            "store; select it cast to text or a number, or run this query uncached",
            field="stmt",
        )
    return encoder(value)


def _decode(value: Any) -> Any:
    if type(value) is list:
        return _DECODERS[value[0]](value[1])
    return value


def encode_rows(columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> list[list[Any]]:
    """``rows`` as lists of encoded values (a ValidationError names a column of a type it cannot store)."""
    encoded = []
    for row in rows:
        out = []
        for column, value in zip(columns, row, strict=True):
            out.append(value if type(value) in _PLAIN else _encode(value, column))
        encoded.append(out)
    return encoded


def decode_rows(rows: Iterable[list[Any]]) -> list[tuple[Any, ...]]:
    """What :func:`encode_rows` encoded, as tuples."""
    return [tuple(value if type(value) is not list else _decode(value) for value in row) for row in rows]
