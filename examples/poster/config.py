"""The poster's own settings: which networks, their URLs and API keys, how often to post.

Read from ``POSTER_*`` variables (``BUTTRESS_*`` names only buttress's settings). A network whose key is
required refuses to start without it; an optional one is skipped with a warning.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final, NamedTuple
from urllib.parse import urlsplit

from pydantic import SecretStr

from buttress.errors import ConfigError, ConfigProblem
from buttress.observe.logging import get_logger

__all__ = [
    "CADENCES",
    "CHIRP",
    "NETWORKS",
    "SKYLINE",
    "Network",
    "NetworkSpec",
    "PosterConfig",
    "load_config",
]

log = get_logger("poster")


class NetworkSpec(NamedTuple):
    """How to talk to one network: where its key goes, its post and verify paths, whether it is required."""

    name: str
    key_header: str
    key_prefix: str
    post_path: str
    verify_path: str
    required: bool = False

    @property
    def default_url(self) -> str:
        return f"https://api.{self.name}.example"


CHIRP: Final = NetworkSpec("chirp", "Authorization", "Bearer ", "/v1/posts", "/v1/me", required=True)
SKYLINE: Final = NetworkSpec("skyline", "X-Api-Key", "", "/xrpc/post", "/xrpc/session")
NETWORKS: Final = (CHIRP, SKYLINE)
CADENCES: Final = {1: ("morning",), 2: ("morning", "evening"), 3: ("morning", "noon", "evening")}
"""Posts a day -> the named slots that post; every slot's schedule fires, the others do nothing."""


@dataclass(frozen=True, slots=True)
class Network:
    """A configured network: the spec, its base URL and its key (a SecretStr: never printed)."""

    spec: NetworkSpec
    url: str
    key: SecretStr

    @property
    def name(self) -> str:
        return self.spec.name

    def headers(self) -> dict[str, str]:
        return {self.spec.key_header: self.spec.key_prefix + self.key.get_secret_value()}


@dataclass(frozen=True, slots=True)
class PosterConfig:
    networks: tuple[Network, ...]
    slots: tuple[str, ...]
    required_keys: Mapping[str, SecretStr | None]
    """Key variables and their values (None when unset), for the settings health check."""
    optional_keys: Mapping[str, SecretStr | None]


def key_variable(spec: NetworkSpec) -> str:
    return f"POSTER_{spec.name.upper()}_KEY"


def load_config(environ: Mapping[str, str] | None = None) -> PosterConfig:
    """The configuration, or ConfigError listing every missing required key and bad value at once."""
    env = os.environ if environ is None else environ
    problems: list[ConfigProblem] = []
    networks: list[Network] = []
    keys: dict[bool, dict[str, SecretStr | None]] = {True: {}, False: {}}
    for spec in NETWORKS:
        variable = key_variable(spec)
        key = env.get(variable, "").strip()
        keys[spec.required][variable] = SecretStr(key) if key else None
        url_variable = f"POSTER_{spec.name.upper()}_URL"
        url = env.get(url_variable, spec.default_url).strip().rstrip("/")
        if (problem := url_problem(url_variable, url)) is not None:
            problems.append(problem)
        if key:
            networks.append(Network(spec, url, SecretStr(key)))
        elif spec.required:
            expected = f"the {spec.name} API key is required; set it and start again"
            problems.append(ConfigProblem(variable, None, expected, example="<your API key>"))
        else:
            log.warning("network skipped", network=spec.name, reason=f"{variable} is not set")
    per_day = env.get("POSTER_POSTS_PER_DAY", "3").strip()
    if per_day not in {"1", "2", "3"}:
        problems.append(ConfigProblem("POSTER_POSTS_PER_DAY", per_day, "1, 2 or 3 posts a day", example="2"))
    if problems:
        raise ConfigError("the poster cannot start", problems=problems)
    return PosterConfig(tuple(networks), CADENCES[int(per_day)], keys[True], keys[False])


def url_problem(variable: str, url: str) -> ConfigProblem | None:
    """None for an absolute http(s) URL with no user or password; else the problem, never showing one."""
    try:
        parts = urlsplit(url)
        valid = parts.scheme in {"http", "https"} and bool(parts.hostname) and parts.port != 0
    except ValueError:  # a port that is not a number
        valid = False
    if valid and "@" not in parts.netloc:
        return None
    shown = "<hidden: it holds a user or password>" if "@" in url else url
    expected = "an absolute http(s) URL with no user or password in it (the key goes in the _KEY variable)"
    return ConfigProblem(variable, shown, expected, example="https://api.example.com")
