"""The secret values this process knows, scrubbed from every log line, error group and problem document.

They come from the loaded settings: every ``SecretStr``/``SecretBytes`` field (``security.admin_token``,
``security.secret_key``, ``server.jwt_key``, ``cache.signing_key``...) and the password of every URL
(``redis_url``, ``database_url``...), as written and percent-decoded. The process-wide
:class:`SecretScrubber` (the default container's) starts with the secrets of
:func:`~buttress.config.get_settings`; :func:`buttress.server.install` and
:func:`~buttress.observe.logging.configure_logging_from_settings` add those of the settings they are
given. Secrets are only ever added: a value once known stays masked until the container is reset.

Three choke points apply it: the logging processor (:func:`buttress.observe.logging.redact_secrets`),
error aggregation (:meth:`buttress.observe.errors.ErrorAggregator.record`) and the ops server's
problem responses. Each also masks URL passwords and credential ``name=value`` pairs
(:func:`buttress._redaction.scrub_text`).
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from contextlib import suppress

from buttress._redaction import MIN_SECRET_LENGTH, scrub_text, secret_values_of
from buttress.container import get_container
from buttress.errors import ConfigError

__all__ = ["SecretScrubber", "get_secret_scrubber", "register_secrets", "scrub"]


class SecretScrubber:
    """A growing set of secret values, and :meth:`scrub` to mask them (and URL passwords) in text."""

    def __init__(self, values: Iterable[str] = ()) -> None:
        self._lock = threading.Lock()
        self._values: tuple[str, ...] = ()  # longest first: a secret containing another is masked whole
        self.add(*values)

    @property
    def values(self) -> tuple[str, ...]:
        """The known values, longest first (read without a lock: the tuple is replaced, never changed)."""
        return self._values

    def add(self, *values: str) -> None:
        """Know ``values`` from now on; those shorter than ``MIN_SECRET_LENGTH`` characters are ignored."""
        fresh = {value for value in values if isinstance(value, str) and len(value) >= MIN_SECRET_LENGTH}
        with self._lock:
            if not fresh.issubset(self._values):
                self._values = tuple(
                    sorted(fresh.union(self._values), key=lambda value: (-len(value), value))
                )

    def add_settings(self, settings: object) -> None:
        """Know every secret value of ``settings`` (a :class:`~buttress.config.Settings` or any model)."""
        self.add(*secret_values_of(settings))

    def scrub(self, text: str) -> str:
        """``text`` with the known secrets, URL passwords and credential ``name=value`` pairs masked."""
        return scrub_text(text, self._values)

    def __repr__(self) -> str:
        return f"SecretScrubber({len(self._values)} values)"  # never the values


def default_scrubber() -> SecretScrubber:
    """The secrets of :func:`~buttress.config.get_settings`; none when the settings do not load (the
    process reports that and stops, and a log line must not fail on it)."""
    from buttress.config import get_settings  # noqa: PLC0415 - pydantic-settings, on the first scrub only

    scrubber = SecretScrubber()
    with suppress(ConfigError):
        scrubber.add_settings(get_settings())
    return scrubber


def get_secret_scrubber() -> SecretScrubber:
    """The process-wide scrubber: the default container's :class:`SecretScrubber`."""
    return get_container().resolve(SecretScrubber)


def scrubber_without_waiting() -> SecretScrubber:
    """The process-wide scrubber for code under a lock of its own (a log line is written under its handler's).

    While another thread builds one of the container's singletons (and may log as it does), a scrubber
    made from the settings stands in; it holds the same secrets, since none can have been registered in
    a process-wide scrubber not built yet.
    """
    return get_container().try_resolve(SecretScrubber) or default_scrubber()


def register_secrets(settings: object) -> None:
    """Add the secret values of ``settings`` to the process-wide scrubber."""
    get_secret_scrubber().add_settings(settings)


def scrub(text: str) -> str:
    """``text`` scrubbed by the process-wide scrubber."""
    return get_secret_scrubber().scrub(text)
