"""The leaves of a settings tree and the raw variables behind them (private to ``buttress.config``)."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, Literal, get_args, get_origin

from dotenv import dotenv_values
from pydantic import BaseModel, SecretBytes, SecretStr
from pydantic.fields import FieldInfo
from pydantic_core import to_jsonable_python

ENV_PREFIX = "BUTTRESS_"
NESTED_DELIMITER = "__"

EnvFile = Path | str | None


def env_var_name(path: tuple[str, ...]) -> str:
    """``("events", "queue_size")`` -> ``BUTTRESS_EVENTS__QUEUE_SIZE``."""
    return ENV_PREFIX + NESTED_DELIMITER.join(part.upper() for part in path)


def shown_value(value: Any) -> str:
    """A value as it is written in an environment variable: JSON for lists and dicts, ``true`` for True."""
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


@dataclass(frozen=True, slots=True)
class RawSources:
    """The BUTTRESS_* variables of the environment and of the .env file: upper-cased, empty ones dropped.

    Mirrors how pydantic-settings reads them (case-insensitive, empty means unset), so the source
    reported for a value is the one it was really loaded from.
    """

    env: dict[str, str]
    dotenv: dict[str, str]

    @classmethod
    def read(cls, env_file: EnvFile, environ: Mapping[str, str] | None) -> RawSources:
        dotenv: dict[str, str | None] = {}
        if env_file is not None and Path(env_file).is_file():
            dotenv = dotenv_values(env_file, encoding="utf-8")
        return cls(_ours(os.environ if environ is None else environ), _ours(dotenv))

    def lookup(self, variable: str) -> str | None:
        return self.env.get(variable, self.dotenv.get(variable))

    def source_of(self, path: tuple[str, ...]) -> Literal["env", ".env"] | None:
        if _defines(self.env, path):
            return "env"
        if _defines(self.dotenv, path):
            return ".env"
        return None


def _ours(variables: Mapping[str, str | None]) -> dict[str, str]:
    return {
        name.upper(): value
        for name, value in variables.items()
        if value and name.upper().startswith(ENV_PREFIX)
    }


def _defines(variables: Mapping[str, str], path: tuple[str, ...]) -> bool:
    """Whether the leaf is set by its own variable or inside a section given as JSON (``BUTTRESS_EVENTS``)."""
    variable = env_var_name(path)
    if variable in variables:
        return True
    below = variable + NESTED_DELIMITER  # a dict leaf set key by key: BUTTRESS_RESILIENCE__PIPELINES__X__...
    if any(name.startswith(below) for name in variables):
        return True
    for depth in range(len(path) - 1, 0, -1):
        raw = variables.get(env_var_name(path[:depth]))
        if raw is None:
            continue
        try:
            node: Any = json.loads(raw)
        except ValueError:
            continue
        for key in path[depth:]:
            node = node.get(key) if isinstance(node, dict) else None
        if node is not None:
            return True
    return False
