"""Realtime channels: batch progress and one channel per reading, each behind a JWT that names them.

The app mounts buttress's ``realtime_router`` at ``/realtime`` (``/realtime/ws``, ``/realtime/sse``). A
batch's creator gets a JWT whose claims list the batch's job and readings (``jobs``, ``readings``), signed
with ``BUTTRESS_SERVER__JWT_KEY`` for the audience ``astrology:readings``. The ops server's admin check
refuses tokens that carry an audience it does not expect, so a reading token never opens an admin
endpoint. The static admin token (``BUTTRESS_SECURITY__ADMIN_TOKEN``) follows everything. Anonymous
clients follow nothing.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

import jwt
from fastapi import APIRouter

from buttress.config import Settings
from buttress.realtime import Identity, covers, realtime_router
from buttress.server import AdminAuth

__all__ = ["AUDIENCE", "allows", "channel_router", "issue_token", "job_topic", "reading_topic"]

AUDIENCE = "astrology:readings"
TOKEN_LIFETIME = 3600.0


def job_topic(job_id: int) -> str:
    """Where buttress's jobs publish a job's progress (``ctx.progress``) and status."""
    return f"jobs.{job_id}.*"


def reading_topic(reading_id: int) -> str:
    return f"readings.{reading_id}.*"


def allows(identity: Identity | None, pattern: str) -> bool:
    """May this client follow ``pattern``: the admin token anything, a JWT the jobs and readings it names."""
    if identity is None:
        return False
    if identity.method == "token":
        return True
    granted = [job_topic(int(job)) for job in _ids(identity.claims.get("jobs"))]
    granted += [reading_topic(int(reading)) for reading in _ids(identity.claims.get("readings"))]
    return any(covers(topic, pattern) for topic in granted)


def _ids(value: Any) -> Iterable[int]:
    return [item for item in value if isinstance(item, int)] if isinstance(value, list) else []


def issue_token(settings: Settings, subject: str, *, jobs: list[int], readings: list[int]) -> str | None:
    """A JWT for these channels, or None when no JWT key is configured (only the admin token works then)."""
    key = settings.server.jwt_key
    if key is None or not settings.server.jwt_algorithm.startswith("HS"):
        return None  # an RS256/ES256 setting holds a public key: tokens come from your identity provider
    claims = {"sub": subject, "aud": AUDIENCE, "exp": int(time.time() + TOKEN_LIFETIME),
              "jobs": jobs, "readings": readings}  # fmt: skip
    return jwt.encode(claims, key.get_secret_value(), algorithm=settings.server.jwt_algorithm)


def channel_router(settings: Settings) -> APIRouter:
    """buttress's realtime router with this app's rule and its audience."""
    auth = AdminAuth(
        token=settings.security.admin_token,
        jwt_key=settings.server.jwt_key,
        jwt_algorithm=settings.server.jwt_algorithm,
        jwt_audience=AUDIENCE,
    )
    return realtime_router(authorize=allows, auth=auth)
