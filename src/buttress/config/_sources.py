"""Where setting values are read from: the environment (or a mapping standing in for it) and ``.env``.

:class:`RawSources` mirrors how pydantic-settings reads the variables, so ``describe_settings`` and the
error messages can say which source a value came from, under the name and on the line it was written.
The sources given to pydantic-settings keep a value that is not valid JSON as text (:class:`Undecodable`),
so it is reported at its own variable beside every other problem instead of stopping the load.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Literal

from dotenv import dotenv_values
from dotenv.parser import parse_stream
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    DotEnvSettingsSource,
    EnvSettingsSource,
    PydanticBaseSettingsSource,
)

from buttress.config._fields import ENV_PREFIX, NESTED_DELIMITER, env_var_name

__all__ = [
    "NOT_SETTINGS",
    "EnvFile",
    "RawSources",
    "Undecodable",
    "environ_override",
    "environment_source",
    "tolerant_dotenv_source",
]

EnvFile = Path | str | None

NOT_SETTINGS: Final = ("BUTTRESS_TEST_", "BUTTRESS_REQUIRE_SERVICES")
"""BUTTRESS_* names that are not settings: buttress's own test suite reads them (services to test against)."""

_ENVIRON_OVERRIDE: ContextVar[Mapping[str, str] | None] = ContextVar(
    "buttress_environ_override", default=None
)


class Undecodable(str):
    """A value that should have been JSON and is not: kept as text, with the parser's reason.

    pydantic-settings raises at the first such value and hides every other problem; kept as text, it
    fails validation like any other bad value, at its own location, beside the others.
    """

    __slots__ = ("reason",)

    def __new__(cls, text: str, reason: str) -> Undecodable:
        value = super().__new__(cls, text)
        value.reason = reason
        return value

    reason: str


class _KeepUndecodable(EnvSettingsSource):
    """Decodes JSON like pydantic-settings, but keeps a value that does not parse (:class:`Undecodable`)."""

    def decode_complex_value(self, field_name: str, field: FieldInfo, value: Any) -> Any:
        try:
            return super().decode_complex_value(field_name, field, value)
        except ValueError as exc:
            return Undecodable(value, str(exc)) if isinstance(value, str) else value


class _TolerantDotEnvSettingsSource(DotEnvSettingsSource, _KeepUndecodable):
    pass


@contextmanager
def environ_override(environ: Mapping[str, str] | None) -> Iterator[None]:
    """Within the block, settings read their variables from ``environ`` (``None``: ``os.environ``)."""
    token = _ENVIRON_OVERRIDE.set(environ)
    try:
        yield
    finally:
        _ENVIRON_OVERRIDE.reset(token)


def environment_source(settings_cls: type[BaseSettings]) -> PydanticBaseSettingsSource:
    """The source of "environment variables": the override of :func:`environ_override`, else os.environ."""
    environ = _ENVIRON_OVERRIDE.get()
    return (
        _KeepUndecodable(settings_cls)
        if environ is None
        else _MappingEnvSettingsSource(settings_cls, environ)
    )


def tolerant_dotenv_source(
    settings_cls: type[BaseSettings], default: DotEnvSettingsSource
) -> PydanticBaseSettingsSource:
    """``default`` (the .env source pydantic-settings built) that keeps undecodable values as text."""
    return _TolerantDotEnvSettingsSource(
        settings_cls, env_file=default.env_file, env_file_encoding=default.env_file_encoding
    )


class _MappingEnvSettingsSource(_KeepUndecodable):
    """Reads "environment variables" from a given mapping, so callers and tests need not touch os.environ."""

    def __init__(self, settings_cls: type[BaseSettings], environ: Mapping[str, str]) -> None:
        self._environ = environ  # read by the base __init__ through _load_env_vars
        super().__init__(settings_cls)

    def _load_env_vars(self) -> Mapping[str, str | None]:
        return {
            (name if self.case_sensitive else name.lower()): value
            for name, value in self._environ.items()
            if not (self.env_ignore_empty and value == "")
        }


@dataclass(frozen=True, slots=True)
class RawSources:
    """The BUTTRESS_* variables of the environment and of the .env file: upper-cased, empty ones dropped.

    Mirrors how pydantic-settings reads them (case-insensitive, empty means unset), so the source
    reported for a value is the one it was really loaded from. ``written`` keeps each name as the user
    spelt it and ``lines`` the .env line it is on, so problems name the variable as it was written.
    """

    env: dict[str, str]
    dotenv: dict[str, str]
    written: dict[str, str] = field(default_factory=dict)
    lines: dict[str, int] = field(default_factory=dict)
    env_file: str | None = None

    @classmethod
    def read(cls, env_file: EnvFile, environ: Mapping[str, str] | None) -> RawSources:
        dotenv: dict[str, str | None] = {}
        lines: dict[str, int] = {}
        if env_file is not None and Path(env_file).is_file():
            dotenv = dotenv_values(env_file, encoding="utf-8")
            lines = _dotenv_lines(Path(env_file))
        environ = os.environ if environ is None else environ
        written = {name.upper(): name for name in (*dotenv, *environ) if name.upper().startswith(ENV_PREFIX)}
        return cls(
            _ours(environ),
            _ours(dotenv),
            written,
            {name.upper(): line for name, line in lines.items()},
            None if env_file is None else str(env_file),
        )

    def lookup(self, variable: str) -> str | None:
        return self.env.get(variable, self.dotenv.get(variable))

    def names(self) -> list[str]:
        """Every variable set, upper-cased: the environment's first, then the .env file's."""
        return [*self.env, *(name for name in self.dotenv if name not in self.env)]

    def as_written(self, variable: str) -> str:
        return self.written.get(variable, variable)

    def where(self, variable: str) -> str | None:
        """``.env line 3`` for a variable the .env file sets and the environment does not; else None."""
        if variable in self.env or variable not in self.dotenv:
            return None
        line = self.lines.get(variable)
        return f"{self.env_file} line {line}" if line is not None else self.env_file

    def sets_at_or_below(self, variable: str) -> bool:
        """Whether ``variable`` itself, or a variable below it (``variable__...``), is set."""
        below = variable + NESTED_DELIMITER
        return any(name == variable or name.startswith(below) for name in self.names())

    def setter(self, parts: tuple[str, ...]) -> str | None:
        """The variable that set the value at ``parts``: itself, or the nearest section or mapping above."""
        for depth in range(len(parts), 0, -1):
            variable = env_var_name(parts[:depth])
            if variable in self.env or variable in self.dotenv:
                return variable
        return None

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
        if value and name.upper().startswith(ENV_PREFIX) and not name.upper().startswith(NOT_SETTINGS)
    }


def _dotenv_lines(path: Path) -> dict[str, int]:
    """The line each variable of a .env file is set on (the last one, as python-dotenv keeps the last)."""
    lines: dict[str, int] = {}
    with path.open(encoding="utf-8") as stream:
        for binding in parse_stream(stream):
            if binding.key is not None:
                text = binding.original.string  # starts with the blank lines before the binding
                lines[binding.key] = binding.original.line + text[: text.find(binding.key)].count("\n")
    return lines


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
