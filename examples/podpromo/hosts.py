"""The three outside services a job calls, and the per-host policies they get, as settings.

The service addresses come from ``PODPROMO_TRANSCRIBE_URL``, ``PODPROMO_CLIPS_URL`` and
``PODPROMO_THUMBNAILS_URL``; the policies are plain ``BUTTRESS_HTTP__POLICIES__*`` settings, so every
worker process started with the same environment sends its requests the same way.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from urllib.parse import urlsplit

from buttress.errors import ValidationError

__all__ = ["Hosts", "policy_env"]


@dataclass(frozen=True, slots=True)
class Hosts:
    """Base URLs of the transcription, clip-cutting and thumbnail services."""

    transcribe: str
    clips: str
    thumbnails: str

    @classmethod
    def from_env(cls) -> Hosts:
        """The hosts of the environment, or a ValidationError naming the missing variable."""
        values = {}
        for name in ("transcribe", "clips", "thumbnails"):
            variable = f"PODPROMO_{name.upper()}_URL"
            value = os.environ.get(variable)
            if not value:
                raise ValidationError(
                    f"{variable} is not set; set it to the service's base URL, e.g. http://127.0.0.1:8001",
                    field=variable,
                )
            values[name] = value.rstrip("/")
        return cls(**values)

    def env(self) -> dict[str, str]:
        """These hosts as environment variables, with their policies (see :func:`policy_env`)."""
        return {
            "PODPROMO_TRANSCRIBE_URL": self.transcribe,
            "PODPROMO_CLIPS_URL": self.clips,
            "PODPROMO_THUMBNAILS_URL": self.thumbnails,
            **policy_env(self),
        }


def _authority(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.hostname}:{parts.port}" if parts.port else str(parts.hostname)


def policy_env(hosts: Hosts, *, clips_rate: str = "12/s") -> dict[str, str]:
    """Per-host policies: retry the flaky transcriber, pace the clip cutter, give up fast on thumbnails."""
    prefix = "BUTTRESS_HTTP__POLICIES__"
    return {
        f"{prefix}TRANSCRIBE__HOSTS": _authority(hosts.transcribe),
        f"{prefix}TRANSCRIBE__RETRY__ATTEMPTS": "6",
        f"{prefix}TRANSCRIBE__RETRY__INITIAL_DELAY": "0.05",
        f"{prefix}TRANSCRIBE__DEADLINE": "15",
        f"{prefix}TRANSCRIBE__BREAKER__CONSECUTIVE_FAILURES": "10",  # a quarter of 503s is its normal
        f"{prefix}CLIPS__HOSTS": _authority(hosts.clips),
        f"{prefix}CLIPS__LIMITER__RATE": clips_rate,
        f"{prefix}CLIPS__LIMITER__BURST": "2",
        f"{prefix}CLIPS__LIMITER__MAX_WAIT": "10",
        f"{prefix}CLIPS__RETRY__ATTEMPTS": "5",
        f"{prefix}CLIPS__RETRY__INITIAL_DELAY": "0.05",
        f"{prefix}THUMBNAILS__HOSTS": _authority(hosts.thumbnails),
        f"{prefix}THUMBNAILS__RETRY__ATTEMPTS": "2",
        f"{prefix}THUMBNAILS__RETRY__INITIAL_DELAY": "0.01",
        f"{prefix}THUMBNAILS__BREAKER__CONSECUTIVE_FAILURES": "3",
        f"{prefix}THUMBNAILS__BREAKER__OPEN_DURATION": "60",
        f"{prefix}THUMBNAILS__DEADLINE": "2",
        f"{prefix}THUMBNAILS__TIMEOUT__CONNECT": "1",
    }
