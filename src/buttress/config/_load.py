"""Loading the settings: one call that names every bad variable, and the process-wide instance.

:func:`load_settings` turns pydantic's errors into one :class:`~buttress.errors.ConfigError` listing
every problem at once, each with the variable, its (masked) value, what was expected and an example.
Unknown BUTTRESS_* variables are problems too, at every load (start-up included): a misspelt variable
would otherwise leave its setting at the default silently (a JWT issuer check off, say).
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Final

from pydantic import ValidationError as PydanticValidationError
from pydantic_settings import SettingsError

from buttress.config._imports import importing_names
from buttress.config._problems import problem_from_settings_error, problems_from_validation_error
from buttress.config._settings import Settings
from buttress.config._sources import EnvFile, RawSources, environ_override
from buttress.config._unknown import unknown_variable_problems
from buttress.errors import ConfigError

__all__ = ["INVALID_MESSAGE", "check_settings", "get_settings", "load_settings", "reset_settings"]

INVALID_MESSAGE: Final = "Invalid buttress configuration"


def load_settings(*, env_file: EnvFile = ".env", environ: Mapping[str, str] | None = None) -> Settings:
    """Build the settings from ``environ`` (default ``os.environ``) and ``env_file`` (``None``: no file).

    Raises :class:`ConfigError` listing every problem at once: each invalid variable with its (masked)
    value, what was expected and an example, and each BUTTRESS_* variable that names no setting (a
    misspelling would otherwise be ignored) with the setting it probably meant.
    """
    raw = RawSources.read(env_file, environ)
    unknown = unknown_variable_problems(Settings, raw)
    with environ_override(environ):
        try:
            settings = Settings(_env_file=env_file)
        # ``from None``: pydantic's own errors quote every input value, secrets too, and a traceback
        # prints the chained cause; the problems below carry the same facts with the values masked.
        except PydanticValidationError as exc:
            problems = problems_from_validation_error(exc, Settings, raw)
            raise ConfigError(INVALID_MESSAGE, problems=[*problems, *unknown]) from None
        except SettingsError as exc:  # a source failed in a way the tolerant sources do not cover
            problem = problem_from_settings_error(exc, Settings, raw)
            raise ConfigError(INVALID_MESSAGE, problems=[problem, *unknown]) from None
    if unknown:
        raise ConfigError(INVALID_MESSAGE, problems=unknown)
    return settings


def check_settings(*, env_file: EnvFile = ".env", environ: Mapping[str, str] | None = None) -> Settings:
    """:func:`load_settings` plus the checks that import code (``buttress config --check``).

    Exception classes named in the settings (a pipeline's ``RETRY__ON``) are imported, so a name that
    would fail when its pipeline is first built fails here, with the other problems.
    """
    with importing_names():
        return load_settings(env_file=env_file, environ=environ)


class _SettingsCache:
    """The process-wide settings, loaded once even when many threads ask at the same moment."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._settings: Settings | None = None

    def get(self) -> Settings:
        settings = self._settings
        if settings is None:
            with self._lock:
                if self._settings is None:
                    self._settings = load_settings()
                settings = self._settings
        return settings

    def clear(self) -> None:
        with self._lock:
            self._settings = None


_CACHE = _SettingsCache()


def get_settings() -> Settings:
    """The process-wide settings from the environment and ``./.env``, loaded on first use."""
    return _CACHE.get()


def reset_settings() -> None:
    """Forget the cached settings so the next :func:`get_settings` reloads them (tests, reloads)."""
    _CACHE.clear()
