"""BUTTRESS_* names that are no setting: a misspelt variable is an error with a "did you mean", never ignored.

pydantic-settings ignores a variable it cannot place, so ``BUTTRESS_SERVER__JWT_ISUER`` would silently
leave the issuer check off. Every variable is walked down the settings tree (sections, then the names of
a mapping such as ``PIPELINES__<NAME>``, then the knobs below it), and so is every key of a section given
as JSON; where the walk stops, the closest name at that point (difflib) is suggested. Values of unknown
variables are never shown: one may be a secret.

The sources hand pydantic their values without the unknown keys (:class:`WithoutUnknownKeys`): those are
reported here, and a section holding one is still validated, so its other problems are listed too.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal, get_args, get_origin

from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource

from buttress.config._fields import ENV_PREFIX, NESTED_DELIMITER, env_var_name
from buttress.config._sources import RawSources
from buttress.errors import MASK, ConfigProblem

__all__ = ["WithoutUnknownKeys", "unknown_path_problem", "unknown_variable_problems"]

_CUTOFF: Final = 0.6
_ANYWHERE: Final = (
    f"not a buttress setting ({ENV_PREFIX} names only buttress settings; "
    "`buttress config --markdown` lists them)"
)

Kind = Literal["section", "mapping", "leaf"]


def _model(annotation: Any) -> type[BaseModel] | None:
    for candidate in (annotation, *get_args(annotation)):  # X, or X | None
        if isinstance(candidate, type) and issubclass(candidate, BaseModel):
            return candidate
    return None


def _kind(info: FieldInfo) -> tuple[Kind, type[BaseModel] | None]:
    """A field is a section (a model), a mapping (``dict[str, X]``, with X when it is a model) or a leaf."""
    if get_origin(info.annotation) is dict:
        args = get_args(info.annotation)
        return "mapping", _model(args[1]) if len(args) == 2 else None
    section = _model(info.annotation)
    return ("section", section) if section is not None else ("leaf", None)


@dataclass(frozen=True, slots=True)
class _Stop:
    """Where a walk down the tree stopped: after ``depth`` parts, at ``node`` (a model)."""

    depth: int
    node: type[BaseModel]


def _walk(root: type[BaseModel], parts: Sequence[str]) -> _Stop | type[BaseModel] | None:
    """Where ``parts`` lead: a model (a section, a mapping's entry), None (a leaf, a mapping) or a stop."""
    node, index = root, 0
    while index < len(parts):
        info = node.model_fields.get(parts[index].lower())
        if info is None:
            return _Stop(index, node)
        kind, below = _kind(info)
        if kind == "section" and below is not None:
            node, index = below, index + 1
        elif kind == "mapping" and below is not None and index + 2 <= len(parts) - 1:
            node, index = below, index + 2  # the entry's name, then its knobs
        elif kind == "mapping" and below is not None and index + 2 == len(parts):
            return below  # one entry, as JSON
        elif index + 1 == len(parts) or (kind == "mapping" and index + 2 == len(parts)):
            return None
        else:
            return _Stop(index, node)
    return node


def _names_below(node: type[BaseModel]) -> Iterator[str]:
    """Every variable tail below ``node``: leaves, sections and mappings (``RETRY__ATTEMPTS``, ``RETRY``)."""
    for name, info in node.model_fields.items():
        yield name.upper()
        kind, below = _kind(info)
        if kind == "section" and below is not None:
            yield from (f"{name.upper()}{NESTED_DELIMITER}{tail}" for tail in _names_below(below))


def _expected(root: type[BaseModel], parts: Sequence[str], stop: _Stop) -> str:
    prefix = ENV_PREFIX + "".join(part.upper() + NESTED_DELIMITER for part in parts[: stop.depth])
    tail = NESTED_DELIMITER.join(part.upper() for part in parts[stop.depth :])
    candidates = list(_names_below(stop.node))
    close = difflib.get_close_matches(tail, candidates, n=1, cutoff=_CUTOFF)
    if close:
        return f"not a buttress setting; did you mean {prefix}{close[0]}?"
    if stop.node is root:
        return _ANYWHERE
    return "not a buttress setting; the names here are " + ", ".join(
        name for name in candidates if NESTED_DELIMITER not in name
    )


def unknown_path_problem(
    root: type[BaseModel], parts: Sequence[str], variable: str, source: str | None
) -> ConfigProblem | None:
    """The problem of a name at ``parts`` (a variable, or a key inside a section's JSON), or None if known."""
    stop = _walk(root, parts)
    if not isinstance(stop, _Stop):
        return None
    return ConfigProblem(variable, MASK, _expected(root, parts, stop), source=source)


def _unknown_keys(
    model: type[BaseModel], data: Mapping[str, Any], parts: tuple[str, ...]
) -> Iterator[tuple[str, ...]]:
    for key, value in data.items():
        info = model.model_fields.get(key.lower())
        if info is None:
            yield (*parts, key)
            continue
        kind, below = _kind(info)
        if below is not None and isinstance(value, dict):
            if kind == "section":
                yield from _unknown_keys(below, value, (*parts, key))
            else:
                for name, entry in value.items():
                    if isinstance(entry, dict):
                        yield from _unknown_keys(below, entry, (*parts, key, name))


def unknown_variable_problems(root: type[BaseModel], raw: RawSources) -> list[ConfigProblem]:
    """One problem per BUTTRESS_* variable (environment, then .env) or JSON key that names no setting."""
    problems = []
    for variable in raw.names():
        parts = tuple(variable.removeprefix(ENV_PREFIX).split(NESTED_DELIMITER))
        where = raw.where(variable)
        problem = unknown_path_problem(root, parts, raw.as_written(variable), where)
        if problem is not None:
            problems.append(problem)
            continue
        inside = f"in {raw.as_written(variable)}" + ("" if where is None else f", {where}")
        for unknown in _unknown_json_keys(root, parts, raw.lookup(variable) or ""):
            found = unknown_path_problem(root, unknown, env_var_name(unknown), inside)
            problems += [found] if found is not None else []
    return problems


def _unknown_json_keys(root: type[BaseModel], parts: tuple[str, ...], text: str) -> Iterator[tuple[str, ...]]:
    """The unknown keys of a section, mapping or entry given as JSON at ``parts``."""
    if not text.lstrip().startswith("{"):
        return
    try:
        data = json.loads(text)
    except ValueError:  # reported by validation, as a value that is not JSON
        return
    node = _walk(root, parts)
    if isinstance(node, type) and isinstance(data, dict):
        yield from _unknown_keys(node, data, parts)
        return
    parent = _walk(root, parts[:-1])  # a whole mapping: look at it from its section
    if isinstance(parent, type):
        yield from _unknown_keys(parent, {parts[-1].lower(): data}, parts[:-1])


def _known_keys_only(model: type[BaseModel], data: Mapping[str, Any]) -> dict[str, Any]:
    """``data`` without the keys ``model`` does not have (any case: keys are matched like variable names)."""
    kept: dict[str, Any] = {}
    for key, value in data.items():
        info = model.model_fields.get(key.lower())
        if info is None:
            continue
        kind, below = _kind(info)
        if below is not None and isinstance(value, dict) and kind == "section":
            kept[key.lower()] = _known_keys_only(below, value)
        elif below is not None and isinstance(value, dict):
            kept[key.lower()] = {
                name: _known_keys_only(below, entry) if isinstance(entry, dict) else entry
                for name, entry in value.items()
            }
        else:
            kept[key.lower()] = value
    return kept


class WithoutUnknownKeys(PydanticBaseSettingsSource):
    """Another source's values without the keys that name no setting (reported by this module instead)."""

    def __init__(self, settings_cls: type[BaseSettings], inner: PydanticBaseSettingsSource) -> None:
        super().__init__(settings_cls)
        self._inner = inner

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return self._inner.get_field_value(field, field_name)

    def __call__(self) -> dict[str, Any]:
        return _known_keys_only(self.settings_cls, self._inner())
