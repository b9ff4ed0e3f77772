"""Admin auth: a bearer token or a JWT; admin endpoints do not exist without either."""

from __future__ import annotations

import importlib.util
from typing import Any

import jwt
import pytest

from buttress.clock import FakeClock
from buttress.errors import ConfigError
from buttress.server import PROBLEM_CONTENT_TYPE, AdminAuth, AdminAuthError

from .conftest import ADMIN_TOKEN, JWT_KEY, bearer, build, client_for, make_settings

ADMIN_PATHS = ["/profiler/start", "/profiler/stop", "/profiler/reset"]


def _token(clock: FakeClock, *, key: str = JWT_KEY, algorithm: str = "HS256", **claims: Any) -> str:
    payload = {"sub": "ops-bot", "exp": clock.time() + 300, **claims}
    payload = {name: value for name, value in payload.items() if value is not None}
    return jwt.encode(payload, key, algorithm=algorithm)


# --- which endpoints exist ------------------------------------------------------------------------------


@pytest.mark.parametrize("path", [*ADMIN_PATHS, "/loggers/httpx"])
async def test_admin_endpoints_do_not_exist_without_admin_auth(path: str) -> None:
    built = build()
    async with client_for(built.app) as client:
        response = await client.post(path, json={"level": "DEBUG"}, headers=bearer("anything"))
        schema = (await client.get("/openapi.json")).json()
    assert response.status_code == 404
    assert response.headers["content-type"] == PROBLEM_CONTENT_TYPE
    assert path not in schema["paths"]
    assert "/loggers/{name}" not in schema["paths"]
    assert "securitySchemes" not in schema.get("components", {})
    assert "security" not in schema["paths"]["/errors"]["get"]


async def test_admin_endpoints_are_documented_as_bearer_protected_when_configured() -> None:
    built = build(admin_token=ADMIN_TOKEN)
    async with client_for(built.app) as client:
        schema = (await client.get("/openapi.json")).json()
    operation = schema["paths"]["/profiler/start"]["post"]
    assert operation["security"] == [{"AdminBearer": []}]
    assert operation["responses"]["401"]["content"] == {
        PROBLEM_CONTENT_TYPE: {"schema": {"$ref": "#/components/schemas/Problem"}}
    }
    assert schema["components"]["securitySchemes"]["AdminBearer"] == {
        "type": "http",
        "scheme": "bearer",
        "description": "security.admin_token, or a JWT signed with server.jwt_key.",
    }
    # /errors takes credentials but does not need them
    assert schema["paths"]["/errors"]["get"]["security"] == [{"AdminBearer": []}, {}]


# --- the static token -----------------------------------------------------------------------------------


async def test_the_admin_token_is_accepted() -> None:
    built = build(admin_token=ADMIN_TOKEN)
    async with client_for(built.app) as client:
        response = await client.post("/profiler/start", headers=bearer(ADMIN_TOKEN))
    assert response.status_code == 200
    assert response.json() == {"enabled": True, "names": 0}
    assert built.profiler.enabled


@pytest.mark.parametrize(
    "credential",
    [ADMIN_TOKEN + "x", ADMIN_TOKEN[:-1], "", "a.b.c", ADMIN_TOKEN.upper()],
    ids=["longer", "shorter", "empty", "jwt-shaped", "other-case"],
)
async def test_a_wrong_token_is_a_401_problem_with_a_bearer_challenge(credential: str) -> None:
    built = build(admin_token=ADMIN_TOKEN)
    async with client_for(built.app) as client:
        response = await client.post("/profiler/start", headers=bearer(credential))
    assert response.status_code == 401
    assert response.headers["content-type"] == PROBLEM_CONTENT_TYPE
    assert response.headers["www-authenticate"].startswith('Bearer realm="buttress"')
    problem = response.json()
    assert problem["error_code"] == "unauthorized"
    assert problem["status"] == 401
    assert not built.profiler.enabled


async def test_missing_credentials_are_a_401_without_an_error_code_in_the_challenge() -> None:
    built = build(admin_token=ADMIN_TOKEN)
    async with client_for(built.app) as client:
        missing = await client.post("/profiler/start")
        basic = await client.post("/profiler/start", headers={"Authorization": "Basic YWRtaW46YWRtaW4="})
        wrong = await client.post("/profiler/start", headers=bearer("nope"))
    assert missing.status_code == basic.status_code == 401
    assert missing.headers["www-authenticate"] == 'Bearer realm="buttress"'  # RFC 6750 3.1: no error
    assert "missing" in missing.json()["detail"]
    assert wrong.headers["www-authenticate"] == 'Bearer realm="buttress", error="invalid_token"'


# --- JWTs -----------------------------------------------------------------------------------------------


def _jwt_app(**jwt_settings: Any) -> Any:
    return build(jwt={"jwt_key": JWT_KEY, **jwt_settings})


async def test_a_valid_jwt_is_accepted() -> None:
    built = _jwt_app(jwt_audience="buttress-ops", jwt_issuer="https://auth.example.com/")
    token = _token(built.clock, aud="buttress-ops", iss="https://auth.example.com/")
    async with client_for(built.app) as client:
        response = await client.post(
            "/loggers/test.server.jwt", json={"level": "ERROR"}, headers=bearer(token)
        )
    assert response.status_code == 200
    assert response.json() == {"name": "test.server.jwt", "level": "ERROR", "effective_level": "ERROR"}


async def test_an_expired_jwt_is_a_401() -> None:
    built = _jwt_app()
    token = _token(built.clock, exp=built.clock.time() - 1)
    async with client_for(built.app) as client:
        response = await client.post("/profiler/start", headers=bearer(token))
    assert response.status_code == 401
    assert response.json()["detail"] == "the admin JWT has expired"
    assert 'error="invalid_token"' in response.headers["www-authenticate"]


async def test_expiry_follows_the_injected_clock() -> None:
    built = _jwt_app()
    token = _token(built.clock, exp=built.clock.time() + 60)
    async with client_for(built.app) as client:
        assert (await client.post("/profiler/stop", headers=bearer(token))).status_code == 200
        built.clock.advance(59.5)
        assert (await client.post("/profiler/stop", headers=bearer(token))).status_code == 200
        built.clock.advance(0.5)  # exp is exclusive: at exp the token is no longer valid
        assert (await client.post("/profiler/stop", headers=bearer(token))).status_code == 401


@pytest.mark.parametrize(
    ("settings", "claims"),
    [
        ({}, {"exp": None}),  # exp is required
        ({}, {"exp": "tomorrow"}),
        ({"jwt_audience": "buttress-ops"}, {}),  # audience required but missing
        ({"jwt_audience": "buttress-ops"}, {"aud": "billing"}),
        ({}, {"aud": "billing"}),  # a token for some audience, none configured
        ({"jwt_issuer": "https://auth.example.com/"}, {"iss": "https://evil.example.com/"}),
        ({}, {"nbf": 1_700_000_000.0 + 3600}),  # not valid yet
    ],
    ids=["no-exp", "text-exp", "no-aud", "wrong-aud", "unexpected-aud", "wrong-iss", "nbf-future"],
)
async def test_jwts_with_bad_claims_are_refused(settings: dict[str, Any], claims: dict[str, Any]) -> None:
    built = _jwt_app(**settings)
    token = _token(built.clock, **claims)
    async with client_for(built.app) as client:
        response = await client.post("/profiler/start", headers=bearer(token))
    assert response.status_code == 401, response.text
    assert not built.profiler.enabled


async def test_a_jwt_signed_with_another_key_or_algorithm_is_refused() -> None:
    built = _jwt_app()
    other_key = _token(built.clock, key="another-key-of-enough-length-0123456789")
    other_algorithm = _token(built.clock, algorithm="HS512", key=JWT_KEY + JWT_KEY)
    unsigned = jwt.encode({"exp": built.clock.time() + 60}, None, algorithm="none")
    async with client_for(built.app) as client:
        for token in (other_key, other_algorithm, unsigned):
            response = await client.post("/profiler/start", headers=bearer(token))
            assert response.status_code == 401
            assert response.json()["detail"] == "the admin JWT is not valid"


async def test_token_and_jwt_can_both_be_configured() -> None:
    built = build(admin_token=ADMIN_TOKEN, jwt={"jwt_key": JWT_KEY})
    async with client_for(built.app) as client:
        by_token = await client.post("/profiler/start", headers=bearer(ADMIN_TOKEN))
        by_jwt = await client.post("/profiler/stop", headers=bearer(_token(built.clock)))
    assert (by_token.status_code, by_jwt.status_code) == (200, 200)


async def test_a_jwt_is_refused_when_only_the_token_is_configured() -> None:
    built = build(admin_token=ADMIN_TOKEN)
    token = jwt.encode({"exp": built.clock.time() + 60}, JWT_KEY, algorithm="HS256")
    async with client_for(built.app) as client:
        response = await client.post("/profiler/start", headers=bearer(token))
    assert response.status_code == 401


# --- the authenticator on its own ---------------------------------------------------------------------


def test_verify_returns_who_passed() -> None:
    clock = FakeClock()
    auth = AdminAuth(token=ADMIN_TOKEN, jwt_key=JWT_KEY, clock=clock)
    assert auth.methods == ("token", "jwt")
    assert auth.verify(ADMIN_TOKEN).method == "token"
    identity = auth.verify(_token(clock, role="ops"))
    assert (identity.method, identity.subject, identity.claims["role"]) == ("jwt", "ops-bot", "ops")


def test_an_unconfigured_authenticator_refuses_everything() -> None:
    auth = AdminAuth()
    assert not auth.configured
    with pytest.raises(AdminAuthError):
        auth.verify("anything")
    with pytest.raises(AdminAuthError, match="missing"):
        auth.verify(None)


@pytest.mark.parametrize(
    ("key", "algorithm", "message"),
    [
        ("short", "HS256", "longer key"),
        (JWT_KEY, "HS512", "longer key"),  # 46 bytes: enough for HS256, not for HS512
        ("-----BEGIN PUBLIC KEY-----\nMIIB\n-----END PUBLIC KEY-----", "HS256", "a key for HS256"),
    ],
)
def test_a_key_that_cannot_work_is_a_config_error(key: str, algorithm: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as caught:
        AdminAuth(jwt_key=key, jwt_algorithm=algorithm)
    assert caught.value.problems[0].variable == "BUTTRESS_SERVER__JWT_KEY"
    assert caught.value.problems[0].value == "**********"  # the key itself is never shown


@pytest.mark.skipif(importlib.util.find_spec("cryptography") is not None, reason="cryptography is installed")
def test_rs256_without_cryptography_says_what_to_install() -> None:
    with pytest.raises(ConfigError, match=r"pyjwt\[crypto\]") as caught:
        AdminAuth(jwt_key="-----BEGIN PUBLIC KEY-----\n...", jwt_algorithm="RS256")
    assert caught.value.problems[0].variable == "BUTTRESS_SERVER__JWT_ALGORITHM"


def test_settings_refuse_a_short_hmac_key() -> None:
    from buttress.config import load_settings

    with pytest.raises(ConfigError) as caught:
        load_settings(env_file=None, environ={"BUTTRESS_SERVER__JWT_KEY": "too-short"})
    problem = caught.value.problems[0]
    assert problem.variable == "BUTTRESS_SERVER__JWT_KEY"
    assert problem.value == "**********"
    assert "at least 32 bytes for HS256" in problem.expected


def test_settings_accept_a_long_enough_key_for_the_chosen_algorithm() -> None:
    from buttress.config import load_settings

    settings = load_settings(
        env_file=None,
        environ={"BUTTRESS_SERVER__JWT_ALGORITHM": "HS384", "BUTTRESS_SERVER__JWT_KEY": "k" * 48},
    )
    assert settings.server.jwt_algorithm == "HS384"
    with pytest.raises(ConfigError, match="at least 64 bytes for HS512"):
        load_settings(
            env_file=None,
            environ={"BUTTRESS_SERVER__JWT_ALGORITHM": "HS512", "BUTTRESS_SERVER__JWT_KEY": "k" * 48},
        )


def test_from_settings_reads_the_token_and_jwt_settings() -> None:
    settings = make_settings(
        security={"admin_token": ADMIN_TOKEN},
        server={"jwt_key": JWT_KEY, "jwt_audience": "a", "jwt_issuer": "i"},
    )
    auth = AdminAuth.from_settings(settings)
    assert auth.methods == ("token", "jwt")
