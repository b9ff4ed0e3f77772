"""Posting: one pooled ``HttpClient`` for every network, each host under a policy of 3 retries on 429/5xx.

The policy is buttress's settings (``HttpSettings``), the same knobs as
``BUTTRESS_HTTP__POLICIES__CHIRP__HOSTS=api.chirp.example`` and ``..._RETRY__ATTEMPTS=4``. A POST is
retried only with an idempotency key, so each post carries one: a retried post is never published twice.
"""

from __future__ import annotations

import uuid
from typing import Any, Final
from urllib.parse import urlsplit

import httpx

from buttress.clock import Clock
from buttress.config import HttpSettings
from buttress.http import HttpClient, attempts_of
from buttress.observe.logging import get_logger
from examples.poster.config import Network, PosterConfig, load_config

__all__ = ["RETRY_POLICY", "Poster", "host_of", "http_settings"]

log = get_logger("poster")

RETRY_POLICY: Final[dict[str, Any]] = {
    "retry": {"attempts": 4, "statuses": [429, 500, 502, 503, 504]},  # the first try and 3 retries
    "deadline": 60.0,
}


def http_settings(networks: tuple[Network, ...]) -> HttpSettings:
    """A named policy per network, claiming its ``host[:port]`` (never a ``user:password@`` part)."""
    hosts = {network.name: host_of(network.url) for network in networks}
    policies = {name: {"hosts": [host], **RETRY_POLICY} for name, host in hosts.items()}
    return HttpSettings.model_validate({"policies": policies})


def host_of(url: str) -> str:
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    return host if parts.port is None else f"{host}:{parts.port}"


class Poster:
    """Posts a text to every configured network; ``clock`` is the client's (tests pass a FakeClock)."""

    def __init__(self, config: PosterConfig, *, clock: Clock | None = None) -> None:
        self.config = config
        self.client = HttpClient(settings=http_settings(config.networks), clock=clock)

    @classmethod
    def from_env(cls) -> Poster:
        return cls(load_config())

    def post(self, network: Network, text: str, *, key: str) -> httpx.Response:
        """Publish on one network; 4xx/5xx left after the retries raise ``UpstreamStatusError``."""
        response = self.client.post(
            network.url + network.spec.post_path,
            json={"text": text},
            headers=network.headers(),  # the key travels in a header, never in the URL or a log line
            idempotency_key=f"{network.name}:{key}",
        )
        log.info("posted", network=network.name, status=response.status_code, attempts=attempts_of(response))
        return response

    def post_all(self, text: str, *, key: str | None = None) -> dict[str, int]:
        """Publish on every configured network, one idempotency ``key`` for the lot (default: a new one)."""
        key = key or uuid.uuid4().hex
        return {
            network.name: self.post(network, text, key=key).status_code for network in self.config.networks
        }

    def close(self) -> None:
        self.client.close()
