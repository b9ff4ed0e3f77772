"""Where setting values are read from: the environment (or a mapping standing in for it) and ``.env``.

:class:`RawSources` mirrors how pydantic-settings reads the variables, so ``describe_settings`` and the
error messages can say which source a value came from and quote the raw text.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from dotenv import dotenv_values
from pydantic_settings import BaseSettings, EnvSettingsSource, PydanticBaseSettingsSource

from buttress.config._fields import ENV_PREFIX, NESTED_DELIMITER, env_var_name

__all__ = ["EnvFile", "RawSources", "environ_override", "environment_source"]

EnvFile = Path | str | None

_ENVIRON_OVERRIDE: ContextVar[Mapping[str, str] | None] = ContextVar(
    "buttress_environ_override", default=None
)


@contextmanager
def environ_override(environ: Mapping[str, str] | None) -> Iterator[None]:
    """Within the block, settings read their variables from ``environ`` (``None``: ``os.environ``)."""
    token = _ENVIRON_OVERRIDE.set(environ)
    try:
        yield
    finally:
        _ENVIRON_OVERRIDE.reset(token)


def environment_source(
    settings_cls: type[BaseSettings], default: PydanticBaseSettingsSource
) -> PydanticBaseSettingsSource:
    """The source of "environment variables": the override of :func:`environ_override`, else ``default``."""
    environ = _ENVIRON_OVERRIDE.get()
    return default if environ is None else _MappingEnvSettingsSource(settings_cls, environ)


class _MappingEnvSettingsSource(EnvSettingsSource):
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
