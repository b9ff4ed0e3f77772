"""Startup health checks: the keys are set, and each network answers its verify endpoint with that key.

They live in a ``HealthRegistry``, so ``python -m examples.poster check`` prints them and an ops server
built with ``install(app, health=poster_health(config))`` serves them at ``/ops/health``. A network whose
key is optional is not critical: its failure warns, it does not take the service down.
"""

from __future__ import annotations

from buttress.observe.health import HealthRegistry, http_check, required_settings_check
from examples.poster.config import PosterConfig

__all__ = ["poster_health"]


def poster_health(config: PosterConfig, *, timeout: float = 2.0) -> HealthRegistry:
    """The settings check and one connectivity check per configured network, in the startup group too."""
    registry = HealthRegistry()
    groups = ("startup", "readiness")
    keys = required_settings_check(
        config.required_keys, config.optional_keys, name="poster-keys", groups=groups
    )
    registry.register(keys)
    for network in config.networks:
        url = network.url + network.spec.verify_path
        check = http_check(
            url,
            headers=network.headers(),
            name=network.name,
            timeout=timeout,
            critical=network.spec.required,
            groups=groups,
        )
        registry.register(check)
    return registry
