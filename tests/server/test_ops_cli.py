"""`buttress breakers` and `buttress cache stats` find the ops routes wherever they are mounted, and print
every value whole: `buttress serve` (routes at the root) as a real subprocess, an app that mounts them
under /ops with install(), and an app without them."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from fastapi import FastAPI
from typer.testing import CliRunner

from buttress.cli import app as cli_app
from buttress.config import reset_settings
from buttress.resilience import CircuitBreaker

from .conftest import install_isolated, make_settings
from .test_live_server import buttress_serve, serving

LONG_HOST = "checkout-payments-authorisation-gateway.eu-west-1.internal.example-corporation.com"
LONG_NAME = f"http:{LONG_HOST}"
ANSI = re.compile(r"\x1b\[[0-9;]*m")


def _installed_app() -> FastAPI:
    """A user's app with the ops routes under /ops (install's default), on registries of its own."""
    app = FastAPI()
    install_isolated(app)
    return app


def _cli(*arguments: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli_app, list(arguments), env=env)
    return result.exit_code, result.stdout, result.stderr


def test_the_default_url_reaches_buttress_serve(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with buttress_serve(tmp_path) as served:
        port = served.port
        monkeypatch.setenv("BUTTRESS_SERVER__PORT", str(port))  # the default URL comes from the settings
        reset_settings()
        code, out, _ = _cli("breakers")
        assert code == 0, out
        assert "0 circuit breakers" in out
        code, out, _ = _cli("cache", "stats")
        assert code == 0, out
        assert "cache backend: memory" in out
        # A URL that names the /ops mount of an installed app finds buttress serve's root mount too.
        code, out, _ = _cli("breakers", "--json", "--url", f"http://127.0.0.1:{port}/ops")
        assert code == 0, out
        assert out.strip() == "[]"


@pytest.mark.parametrize("suffix", ["", "/", "/ops", "/ops/"])
def test_an_app_with_the_routes_under_ops_is_found_from_its_root(suffix: str) -> None:
    breaker = CircuitBreaker("installed-app.example.com")
    breaker.call(lambda: None)
    with serving(_installed_app()) as base:
        code, out, _ = _cli("breakers", "--url", base + suffix)
        assert code == 0, out
        assert "installed-app.example.com" in out
        code, out, _ = _cli("cache", "stats", "--url", base + suffix)
        assert code == 0, out
        assert "cache namespaces" in out


def test_a_server_without_ops_routes_is_named_with_both_places_tried() -> None:
    plain = FastAPI()
    with serving(plain) as base:
        code, out, err = _cli("breakers", "--url", base)
    assert code == 1
    message = " ".join((out + err).split())
    assert f"{base}/breakers" in message
    assert f"{base}/ops/breakers" in message
    assert "--url" in message


def test_reset_goes_to_the_discovered_mount(monkeypatch: pytest.MonkeyPatch) -> None:
    token = "ops-cli-admin-token-0123456789abcdef"
    app = FastAPI()
    install_isolated(app, make_settings(security={"admin_token": token}))
    breaker = CircuitBreaker("reset-through-ops.example.com")
    breaker.isolate()
    monkeypatch.setenv("BUTTRESS_SECURITY__ADMIN_TOKEN", token)
    reset_settings()
    with serving(app) as base:
        code, out, _ = _cli("breakers", "--url", base, "--reset", "reset-through-ops.example.com")
    assert code == 0, out
    assert "reset done" in out
    assert breaker.state.value == "closed"


# --- full values when piped, wrapped on a terminal -------------------------------------------------------


def test_piped_tables_print_long_names_whole() -> None:
    breaker = CircuitBreaker(LONG_NAME)
    breaker.call(lambda: None)
    with serving(_installed_app()) as base:
        code, out, _ = _cli("breakers", "--url", base, env={"COLUMNS": "80"})
    assert code == 0, out
    assert "…" not in out
    assert any(LONG_NAME in line for line in out.splitlines())


def test_terminal_tables_wrap_long_names_instead_of_cutting_them() -> None:
    breaker = CircuitBreaker(LONG_NAME)
    breaker.call(lambda: None)
    with serving(_installed_app()) as base:
        # FORCE_COLOR makes rich treat the runner's output as a terminal 80 columns wide.
        code, out, _ = _cli("breakers", "--url", base, env={"COLUMNS": "80", "FORCE_COLOR": "1"})
    assert code == 0, out
    text = ANSI.sub("", out)
    assert "…" not in text
    assert max(len(line) for line in text.splitlines()) <= 80
    cells = [line.split("│")[1].strip() for line in text.splitlines() if line.startswith("│")]
    assert LONG_NAME in "".join(cells)  # folded over several lines, every character kept
