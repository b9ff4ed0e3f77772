"""The leaves of a settings tree: their variable names, descriptions, examples and shown values.

The field metadata is what ``.env.example``, the settings reference (docs/reference/settings.md) and the
error messages are made of.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from typing import Any, Literal, get_args, get_origin

from pydantic import BaseModel, SecretBytes, SecretStr
from pydantic.fields import FieldInfo
from pydantic_core import to_jsonable_python

from buttress.rate import Rate

__all__ = [
    "ENV_PREFIX",
    "NESTED_DELIMITER",
    "SECRET_EXAMPLE",
    "SettingField",
    "env_var_name",
    "fields_under",
    "known_paths",
    "setting_fields",
    "shown_value",
]

ENV_PREFIX = "BUTTRESS_"
NESTED_DELIMITER = "__"
SECRET_EXAMPLE = "<long random string>"  # noqa: S105 -- a placeholder, shown in docs


def env_var_name(path: tuple[str, ...]) -> str:
    """``("events", "queue_size")`` -> ``BUTTRESS_EVENTS__QUEUE_SIZE``."""
    return ENV_PREFIX + NESTED_DELIMITER.join(part.upper() for part in path)


def shown_value(value: Any) -> str:
    """A value as it is written in an environment variable: JSON for lists and dicts, ``true`` for True."""
    if isinstance(value, Rate):
        return value.to_text()
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | tuple | dict):
        return json.dumps(to_jsonable_python(value))  # dict leaves may hold models (pipelines)
    return str(value)


@dataclass(frozen=True, slots=True)
class SettingField:
    """One leaf of the tree with the metadata that docs, examples and error messages are made of."""

    path: tuple[str, ...]
    variable: str
    info: FieldInfo
    secret: bool

    @property
    def description(self) -> str:
        return self.info.description or ""

    @property
    def example(self) -> str:
        return shown_value((self.info.examples or [""])[0])

    @property
    def default(self) -> Any:
        return self.info.get_default(call_default_factory=True)

    @property
    def choices(self) -> tuple[str, ...]:
        """The allowed values of a ``Literal`` field, else ``()``."""
        if get_origin(self.info.annotation) is Literal:
            return tuple(str(choice) for choice in get_args(self.info.annotation))
        return ()


def _section_model(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    return None


def _is_secret_annotation(annotation: Any) -> bool:
    if annotation in (SecretStr, SecretBytes):
        return True
    return any(_is_secret_annotation(arg) for arg in get_args(annotation))


def _walk(model: type[BaseModel], prefix: tuple[str, ...]) -> Iterator[SettingField]:
    for name, info in model.model_fields.items():
        path = (*prefix, name)
        section = _section_model(info.annotation)
        if section is not None:
            yield from _walk(section, path)
        else:
            yield SettingField(path, env_var_name(path), info, _is_secret_annotation(info.annotation))


@cache
def setting_fields(settings_cls: type[BaseModel]) -> tuple[SettingField, ...]:
    """Every leaf of the tree, in declaration order."""
    return tuple(_walk(settings_cls, ()))


def fields_under(settings_cls: type[BaseModel], path: tuple[str, ...]) -> list[SettingField]:
    """The leaves at or below ``path`` (``()`` is the whole tree)."""
    return [field for field in setting_fields(settings_cls) if field.path[: len(path)] == path]


def known_paths(settings_cls: type[BaseModel]) -> set[tuple[str, ...]]:
    """Every leaf path and every section path."""
    return {
        field.path[:depth]
        for field in setting_fields(settings_cls)
        for depth in range(1, len(field.path) + 1)
    }
