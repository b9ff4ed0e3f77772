"""Configured secrets never reach a log line, an error group (admin view too) or a problem document.

The secret values come from the loaded settings (admin token, JWT key, secret key, signing key, the
passwords inside the Redis and database URLs); they are scrubbed wherever they appear, free text included.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import structlog
from fastapi import FastAPI

from buttress.config import Settings
from buttress.errors import MASK, ValidationError
from buttress.http import HttpClient
from buttress.observe.errors import ErrorAggregator
from buttress.observe.health import HealthRegistry
from buttress.observe.logging import configure_logging, configure_logging_from_settings, get_logger
from buttress.server import create_app
from buttress.testing import Upstream

from .conftest import ADMIN_TOKEN, JWT_KEY, bearer, build, client_for, make_settings
from .test_live_server import serving

SECRET_KEY = "s3cret-key-for-signing-cookies-0123456789"
SIGNING_KEY = "cache-signing-key-0123456789abcdef0123"
REDIS_PASSWORD = "r3dis-pa55-w0rd"
DB_PASSWORD = "pg:Secret@77"  # ':' and '@' percent-encoded in the URL, shown plain in an error
SECRETS = (ADMIN_TOKEN, JWT_KEY, SECRET_KEY, SIGNING_KEY, REDIS_PASSWORD, DB_PASSWORD, "pg%3ASecret%4077")


def secret_settings(*, expose_details: bool = False) -> Settings:
    return make_settings(
        security={"admin_token": ADMIN_TOKEN, "secret_key": SECRET_KEY},
        server={"jwt_key": JWT_KEY, "expose_details": expose_details},
        cache={"signing_key": SIGNING_KEY},
        redis_url=f"redis://:{REDIS_PASSWORD}@127.0.0.1:6379/2",
        database_url="postgresql+psycopg://app:pg%3ASecret%4077@127.0.0.1:5432/app",
    )


@pytest.fixture
def log_output() -> Iterator[io.StringIO]:
    """Console-format logs (the format that shows free text as it is) captured in a string."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    stream = io.StringIO()
    configure_logging(json=False, level="DEBUG", stream=stream)
    yield stream
    for handler in list(root.handlers):
        if handler not in handlers:
            root.removeHandler(handler)
            handler.close()
    root.setLevel(level)
    structlog.reset_defaults()


def assert_no_secret(text: str, where: str) -> None:
    for secret in SECRETS:
        assert secret not in text, f"{secret!r} leaked into {where}: {text[:2000]}"


def leaky_message() -> str:
    return (
        f"upstream refused jwt key {JWT_KEY} and admin {ADMIN_TOKEN}; "
        f"cache at redis://:{REDIS_PASSWORD}@cache:6379/0 said WRONGPASS for {REDIS_PASSWORD}; "
        f"db password {DB_PASSWORD}"
    )


def add_leaky_routes(app: FastAPI) -> None:
    @app.get("/boom")
    def boom() -> None:
        raise RuntimeError(leaky_message())

    @app.get("/refused")
    def refused() -> None:
        raise ValidationError(leaky_message(), field="token", context={"note": f"key was {SECRET_KEY}"})


async def provoke(app: FastAPI) -> dict[str, Any]:
    async with client_for(app) as client:
        problems = [await client.get("/boom"), await client.get("/refused")]
        admin = await client.get("/errors", headers=bearer(ADMIN_TOKEN))
        anonymous = await client.get("/errors")
    return {"problems": problems, "admin": admin, "anonymous": anonymous}


@pytest.mark.parametrize("expose_details", [False, True])
async def test_configured_secrets_reach_no_log_error_group_or_problem(
    log_output: io.StringIO, expose_details: bool
) -> None:
    built = build(settings=secret_settings(expose_details=expose_details))
    add_leaky_routes(built.app)
    logging.getLogger("app").warning("logging in with %s", ADMIN_TOKEN)
    get_logger("app").info(f"connecting with {REDIS_PASSWORD} and {SIGNING_KEY}", note=DB_PASSWORD)
    try:
        raise ConnectionError(leaky_message())  # noqa: TRY301
    except ConnectionError:
        logging.getLogger("app").exception("reconnect failed")

    seen = await provoke(built.app)

    output = log_output.getvalue()
    assert "logging in with" in output
    assert "reconnect failed" in output
    assert "unhandled error in GET /boom" in output
    assert MASK in output
    assert_no_secret(output, "the log output")
    for problem in seen["problems"]:
        assert problem.status_code in (422, 500)
        assert_no_secret(problem.text, "a problem document")
    refused = seen["problems"][1].json()
    assert MASK in refused["detail"]
    if expose_details:
        assert "Traceback" in seen["problems"][0].json()["traceback"]
    admin = seen["admin"].json()
    assert admin["details"] is True
    [group] = [group for group in admin["groups"] if group["type"] == "RuntimeError"]
    assert "Traceback" in group["traceback"]
    assert MASK in group["sample_message"]
    assert_no_secret(seen["admin"].text, "the admin view of /errors")
    assert_no_secret(seen["anonymous"].text, "the anonymous view of /errors")


def test_secrets_from_settings_are_scrubbed_from_logs_before_any_app_exists(log_output: io.StringIO) -> None:
    configure_logging_from_settings(secret_settings(), stream=log_output)
    logging.getLogger("app").warning("token %s, key %s", ADMIN_TOKEN, JWT_KEY)
    output = log_output.getvalue()
    assert "token **********, key **********" in output
    assert_no_secret(output, "the log output")


def test_error_groups_scrub_the_secrets_of_the_loaded_settings() -> None:
    """An aggregator built on its own still learns the secrets from the settings the ops server loaded."""
    aggregator = ErrorAggregator()
    create_app(secret_settings(), errors=aggregator)
    other = ErrorAggregator()  # not the app's: the secrets are process-wide
    for target in (aggregator, other):
        try:
            raise OSError(leaky_message())  # noqa: TRY301
        except OSError as exc:
            target.record(exc, context={"detail": f"jwt {JWT_KEY}", "items": [REDIS_PASSWORD]})
    for target in (aggregator, other):
        snapshot = str(target.snapshot())
        assert MASK in snapshot
        assert_no_secret(snapshot, "an error group")


async def test_anonymous_readers_of_errors_get_type_location_and_counts_only() -> None:
    built = build(admin_token=ADMIN_TOKEN)
    for _ in range(2):
        try:
            raise ValueError("charge failed: api_key=sk_live_abcdef for customer alice")  # noqa: TRY301
        except ValueError as exc:
            built.errors.record(exc, context={"customer": "alice"})
    async with client_for(built.app) as client:
        anonymous = await client.get("/errors")
        admin = await client.get("/errors", headers=bearer(ADMIN_TOKEN))
    assert anonymous.status_code == 200
    body = anonymous.json()
    assert body["details"] is False
    [group] = body["groups"]
    assert group["type"] == "ValueError"
    assert group["origin"].startswith("tests.server.test_secret_scrubbing:")
    assert group["count"] == 2
    assert group["fingerprint"]
    assert group["message"] == group["sample_message"] == group["traceback"] == ""
    assert group["context"] == {}
    assert "sk_live" not in anonymous.text
    assert "alice" not in anonymous.text
    # the admin sees the details, with the credential in the free text masked
    [admin_group] = admin.json()["groups"]
    assert "customer alice" in admin_group["sample_message"]
    assert "api_key=**********" in admin_group["sample_message"]
    assert "sk_live" not in admin.text


async def test_problem_documents_scrub_credential_parameters_and_url_passwords() -> None:
    built = build(expose_details=True)

    @built.app.get("/fetch")
    def fetch() -> None:
        raise RuntimeError("GET https://api.example.com/v1?access_token=tok-9f8e7d&page=2 failed")

    async with client_for(built.app) as client:
        response = await client.get("/fetch")
    assert response.status_code == 500
    assert "tok-9f8e7d" not in response.text
    assert "access_token=**********&page=2" in response.json()["exception"]


def test_http_client_request_logs_mask_credential_parameters(
    upstream: Upstream, log_output: io.StringIO
) -> None:
    """httpx logs each request's full URL at INFO; the credentials in its query are masked."""
    with HttpClient() as client:
        client.get(upstream.url(path="/v1/items?api_key=ak-123456&Signature=sig-abcdef&page=3"))
    output = log_output.getvalue()
    assert "HTTP Request: GET " + upstream.url(path="/v1/items?api_key=**********") in output
    assert "Signature=**********&page=3" in output
    assert "ak-123456" not in output
    assert "sig-abcdef" not in output


# --- access log and log forging ---------------------------------------------------------------------


def test_the_access_log_masks_credential_parameters_and_drops_color_message(
    log_output: io.StringIO, caplog: pytest.LogCaptureFixture
) -> None:
    for name in ("uvicorn.error", "uvicorn.access"):  # the demo's tests leave them at WARNING
        caplog.set_level(logging.INFO, logger=name)
    built = build()
    with serving(built.app) as url, httpx.Client(base_url=url, timeout=10) as client:
        assert client.get("/health/live?token=tok-abc123&Api_Key=ak-xyz789&verbose=1").status_code == 200
    output = log_output.getvalue()
    assert f'"GET /health/live?token={MASK}&Api_Key={MASK}&verbose=1 HTTP/1.1" 200' in output
    assert "tok-abc123" not in output
    assert "ak-xyz789" not in output
    assert "Started server process" in output
    assert "color_message" not in output


async def test_a_path_parameter_cannot_forge_a_log_line(log_output: io.StringIO) -> None:
    built = build(admin_token=ADMIN_TOKEN)
    forged = "2026-01-01T00:00:00.000000Z [critical ] admin token rotated"
    async with client_for(built.app) as client:
        response = await client.post(
            "/loggers/app%0d%0a" + forged.replace(" ", "%20"),
            json={"level": "INFO"},
            headers=bearer(ADMIN_TOKEN),
        )
    assert response.status_code == 200
    lines = log_output.getvalue().splitlines()
    assert not any(line.startswith("2026-01-01") for line in lines)
    [line] = [line for line in lines if "level set to INFO" in line]
    assert "logger app\\r\\n2026-01-01T00:00:00.000000Z [critical ] admin token rotated level set" in line


async def test_health_outputs_are_scrubbed_for_their_anonymous_readers() -> None:
    health = HealthRegistry()
    create_app(secret_settings(), health=HealthRegistry())  # the secrets of the loaded settings

    def cache() -> None:
        raise ConnectionError(f"redis://:{REDIS_PASSWORD}@cache:6379 refused AUTH {REDIS_PASSWORD}")

    health.add("cache", cache)
    built = build(health=health)
    async with client_for(built.app) as client:
        response = await client.get("/health")
    assert response.status_code == 503
    assert f"ConnectionError: redis://:{MASK}@cache:6379 refused AUTH {MASK}" in response.text
    assert_no_secret(response.text, "a health document")
