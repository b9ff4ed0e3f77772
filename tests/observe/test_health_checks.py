"""Built-in health checks against real services: Redis, PostgreSQL, SQLite, disk, memory, loopback HTTP."""

from __future__ import annotations

import http.server
import os
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import psutil
import pytest
from pydantic import SecretStr

from buttress.errors import ValidationError
from buttress.observe.health import (
    HealthRegistry,
    HealthReport,
    database_check,
    default_health_registry,
    disk_check,
    http_check,
    human_bytes,
    memory_check,
    parse_threshold,
    redis_check,
    required_settings_check,
    safe_url,
    sqlalchemy_url,
)


def run(*checks: Any) -> HealthReport:
    registry = HealthRegistry()
    for check in checks:
        registry.register(check)
    try:
        return registry.run_sync()
    finally:
        registry.close()


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# -- Redis --------------------------------------------------------------------------------------


def test_redis_check_pings_a_real_server(redis_url: str) -> None:
    check = redis_check(redis_url)
    report = run(check)
    outcome = report["redis"]
    assert outcome.status == "pass"
    assert isinstance(outcome.observed_value, float)
    assert outcome.observed_value >= 0
    assert outcome.observed_unit == "ms"
    entry = report.to_dict()["checks"]["redis:responseTime"][0]
    assert entry["componentType"] == "datastore"
    assert check.critical


def test_redis_check_fails_fast_when_the_server_is_unreachable() -> None:
    report = run(
        redis_check(f"redis://127.0.0.1:{_closed_port()}/0", name="cache", critical=False, timeout=1)
    )
    outcome = report["cache"]
    assert outcome.status == "fail"
    assert outcome.output.startswith("ConnectionError: ")
    assert "Connection refused" in outcome.output
    assert report.status == "warn"


def test_redis_check_refuses_a_url_that_is_not_redis() -> None:
    with pytest.raises(ValidationError, match="redis_check needs a Redis URL") as info:
        redis_check("http://127.0.0.1:6379")
    assert info.value.field == "url"


@pytest.mark.parametrize(
    ("url", "reason"),
    [("redis://:ab#cd@127.0.0.1:6379/0", "percent-encode"), ("redis+cluster://:abcd@", "names no seed node")],
)
def test_redis_check_masks_the_password_of_a_bad_url(url: str, reason: str) -> None:
    with pytest.raises(ValidationError, match=reason) as info:
        redis_check(url)
    assert "ab" not in str(info.value)
    assert "cd" not in str(info.value)


# -- database -----------------------------------------------------------------------------------


def test_bare_postgresql_urls_get_the_psycopg_driver() -> None:
    assert sqlalchemy_url("postgresql://u@h/db").drivername == "postgresql+psycopg"
    assert sqlalchemy_url("postgres://u@h/db").drivername == "postgresql+psycopg"
    assert sqlalchemy_url("postgresql+psycopg://u@h/db").drivername == "postgresql+psycopg"
    assert sqlalchemy_url("sqlite:///x.db").drivername == "sqlite"
    with pytest.raises(ValidationError) as info:
        sqlalchemy_url("not a url")
    assert info.value.field == "url"


def test_database_check_selects_one_on_postgresql(database_url: str) -> None:
    check = database_check(database_url)
    registry = HealthRegistry()
    registry.register(check)
    first = registry.run_sync()
    assert first["database"].status == "pass"
    assert first["database"].observed_unit == "ms"
    assert first["database"].observed_value >= 0
    assert first.to_dict()["checks"]["database:responseTime"][0]["componentId"] == "postgresql"
    registry.close()  # disposes the engine; the next run builds a new one
    assert registry.run_sync()["database"].status == "pass"
    registry.close()


def test_database_check_selects_one_on_sqlite(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'health.db'}"
    report = run(database_check(url, name="db"))
    assert report["db"].status == "pass"
    assert report.to_dict()["checks"]["db:responseTime"][0]["componentId"] == "sqlite"


def test_database_check_reports_the_driver_error_without_sqlalchemy_noise(tmp_path: Path) -> None:
    report = run(database_check(f"sqlite:///{tmp_path / 'missing-dir' / 'x.db'}", name="db"))
    assert report["db"].status == "fail"
    assert report["db"].output == "OperationalError: unable to open database file"


def test_database_check_on_an_unreachable_postgresql_hides_the_password() -> None:
    url = f"postgresql://app:hunter2secret@127.0.0.1:{_closed_port()}/app"
    report = run(database_check(url, timeout=2))
    output = report["database"].output
    assert report["database"].status == "fail"
    assert output.startswith("OperationalError: connection failed")
    assert "hunter2secret" not in report.to_json()
    assert "sqlalche.me" not in output


def test_database_check_with_a_missing_driver_is_a_failed_check_not_a_crash() -> None:
    report = run(database_check("mysql+nosuchdriver://u@127.0.0.1/db"))
    assert report["database"].status == "fail"
    assert "nosuchdriver" in report["database"].output


# -- disk and memory ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "parsed"),
    [
        (None, None),
        (10, ("percent", 10.0)),
        (12.5, ("percent", 12.5)),
        ("10%", ("percent", 10.0)),
        (" 7.5 % ", ("percent", 7.5)),
        ("500MB", ("bytes", 500e6)),
        ("2GiB", ("bytes", 2 * 2**30)),
        ("1.5kb", ("bytes", 1500.0)),
        ("100B", ("bytes", 100.0)),
        ("1TiB", ("bytes", float(2**40))),
    ],
)
def test_parse_threshold(value: Any, parsed: Any) -> None:
    assert parse_threshold(value, "warn_below") == parsed


@pytest.mark.parametrize("value", [101, -1, "101%", "10", "ten", "5 parsecs", True, [10]])
def test_parse_threshold_refuses_bad_values_naming_the_field(value: Any) -> None:
    with pytest.raises(ValidationError) as info:
        parse_threshold(value, "fail_below")
    assert info.value.field == "fail_below"


def test_disk_check_thresholds_in_percent(tmp_path: Path) -> None:
    path = str(tmp_path)
    ok, warn, fail = (
        disk_check(path, name="ok", warn_below=0, fail_below=0),
        disk_check(path, name="warn", warn_below=100, fail_below=0),
        disk_check(path, name="fail", warn_below="100%", fail_below="100%"),
    )
    report = run(ok, warn, fail)
    free = 100.0 - psutil.disk_usage(path).percent
    assert report["ok"].status == "pass"
    assert report["ok"].observed_value == pytest.approx(free, abs=1.0)
    assert report["ok"].observed_unit == "percent"
    assert report["ok"].output.endswith(f" on {path}")
    assert "% free (" in report["ok"].output
    assert report["warn"].status == "warn"
    assert report["warn"].output.endswith(", below warn_below=100; free space or grow the volume")
    assert report["fail"].status == "fail"
    assert report["fail"].output.endswith(", below fail_below=100%; free space or grow the volume")
    entry = report.to_dict()["checks"]["warn:utilization"][0]
    assert (entry["componentType"], entry["componentId"]) == ("system", path)


def test_disk_check_thresholds_in_bytes(tmp_path: Path) -> None:
    total = psutil.disk_usage(str(tmp_path)).total
    report = run(
        disk_check(str(tmp_path), name="roomy", warn_below="1B", fail_below=None),
        disk_check(str(tmp_path), name="tight", warn_below=f"{total * 2}B", fail_below="1KB"),
        disk_check(str(tmp_path), name="full", warn_below=None, fail_below=f"{total * 2}B"),
    )
    assert report["roomy"].status == "pass"
    assert report["tight"].status == "warn"
    assert report["full"].status == "fail"


def test_disk_check_refuses_a_fail_threshold_above_the_warning() -> None:
    with pytest.raises(ValidationError) as info:
        disk_check(".", warn_below="5%", fail_below="10%")
    assert info.value.field == "fail_below"
    disk_check(".", warn_below="5%", fail_below="1GiB")  # different kinds cannot be compared: allowed


def test_disk_check_on_a_missing_path_fails(tmp_path: Path) -> None:
    report = run(disk_check(str(tmp_path / "nope")))
    assert report["disk"].status == "fail"
    assert report["disk"].output.startswith("FileNotFoundError: ")


def test_memory_check_thresholds() -> None:
    report = run(
        memory_check(name="ok", warn_above=100, fail_above=100),
        memory_check(name="warn", warn_above=0, fail_above=100),
        memory_check(name="fail", warn_above=0, fail_above=0),
        memory_check(name="off", warn_above=None, fail_above=None),
    )
    used = psutil.virtual_memory().percent
    assert report["ok"].status == "pass"
    assert report["ok"].observed_value == pytest.approx(used, abs=5.0)
    assert report["ok"].output.startswith("memory ")
    assert "available)" in report["ok"].output
    assert report["warn"].status == "warn"
    assert report["warn"].output.endswith(", at or above warn_above=0%")
    assert report["fail"].status == "fail"
    assert report["fail"].output.endswith(", at or above fail_above=0%")
    assert report["off"].status == "pass"
    assert "ok:utilization" in report.to_dict()["checks"]


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"warn_above": 150}, "warn_above"),
        ({"fail_above": -1}, "fail_above"),
        ({"warn_above": True}, "warn_above"),
        ({"warn_above": 90, "fail_above": 80}, "fail_above"),
    ],
)
def test_memory_check_validation(kwargs: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError) as info:
        memory_check(**kwargs)
    assert info.value.field == field


def test_human_bytes() -> None:
    assert human_bytes(0) == "0 B"
    assert human_bytes(1023) == "1023 B"
    assert human_bytes(1536) == "1.5 KiB"
    assert human_bytes(3 * 2**30) == "3.0 GiB"
    assert human_bytes(5000 * 2**40) == "5000.0 TiB"


# -- HTTP ---------------------------------------------------------------------------------------


class _Handler(http.server.BaseHTTPRequestHandler):
    slow: threading.Event

    def do_GET(self) -> None:
        if self.path.startswith("/slow"):
            self.slow.wait(5)
        codes = {"/ok": 200, "/fail": 503, "/redirect": 302, "/empty": 204}
        code = codes.get(self.path.split("?")[0], 200)
        self.send_response(code)
        if code == 302:
            self.send_header("Location", "/ok")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_HEAD(self) -> None:
        self.do_GET()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def server() -> Iterator[str]:
    slow = threading.Event()
    handler = type("Handler", (_Handler,), {"slow": slow})
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        slow.set()
        httpd.shutdown()
        httpd.server_close()
        thread.join(5)


def test_http_check_reachable(server: str) -> None:
    report = run(http_check(f"{server}/ok"), http_check(f"{server}/redirect", name="redirect", method="HEAD"))
    outcome = report["127.0.0.1"]  # the default name is the host
    assert outcome.status == "pass"
    assert outcome.output == f"GET {server}/ok -> 200"
    assert outcome.observed_unit == "ms"
    assert outcome.observed_value >= 0
    assert report["redirect"].status == "pass"  # 3xx is reachable: redirects are not followed
    assert report["redirect"].output == f"HEAD {server}/redirect -> 302"
    entry = report.to_dict()["checks"]["127.0.0.1:responseTime"][0]
    assert (entry["componentType"], entry["componentId"]) == ("http", f"{server}/ok")


def test_http_check_unexpected_status(server: str) -> None:
    report = run(
        http_check(f"{server}/fail", name="down"),
        http_check(f"{server}/fail", name="expected-503", expected_status={503}),
        http_check(f"{server}/ok", name="only-204", expected_status=(204, 200 + 1)),
    )
    assert report["down"].status == "fail"
    assert report["down"].output == f"GET {server}/fail returned 503, expected 200-399"
    assert report["down"].observed_value >= 0
    assert report["expected-503"].status == "pass"
    assert report["only-204"].output == f"GET {server}/ok returned 200, expected 201, 204"


def test_http_check_connection_refused() -> None:
    url = f"http://127.0.0.1:{_closed_port()}/health"
    report = run(http_check(url, name="gone"))
    assert report["gone"].status == "fail"
    assert report["gone"].output.startswith(f"GET {url} failed: ConnectError: ")


def test_http_check_times_out(server: str) -> None:
    report = run(http_check(f"{server}/slow", name="slow", timeout=0.2))
    assert report["slow"].status == "fail"
    assert report["slow"].output in {
        "timed out after 0.2s",
        f"GET {server}/slow failed: ReadTimeout: timed out",
    }


def test_http_check_keeps_credentials_and_query_out_of_the_report(server: str) -> None:
    port = server.rsplit(":", 1)[1]
    url = f"http://user:s3cret@127.0.0.1:{port}/ok?token=abc#frag"
    report = run(http_check(url, name="private", headers={"X-Probe": "1"}))
    assert report["private"].status == "pass"
    text = report.to_json()
    assert "s3cret" not in text
    assert "token" not in text
    assert report["private"].output == f"GET {server}/ok -> 200"


def test_safe_url_and_http_check_validation() -> None:
    assert safe_url("https://u:p@[::1]:8443/p?q=1#f") == "https://[::1]:8443/p"
    assert safe_url("https://example.com/") == "https://example.com/"
    with pytest.raises(ValidationError) as info:
        http_check("not-a-url")
    assert info.value.field == "url"


@pytest.mark.parametrize("value", ["Bearer abc\r\nX-Evil: 1", "Bearer sk-live-SECR\u00c9T", "a\x00b"])
def test_an_unsendable_header_is_refused_naming_the_header_never_its_value(value: str) -> None:
    """The HTTP library's own error quoted the value (an API key) into a public health document."""
    with pytest.raises(ValidationError) as info:
        http_check("http://127.0.0.1:9/", headers={"Authorization": value})
    assert info.value.field == "headers"
    assert "'Authorization'" in info.value.message
    assert value not in info.value.message
    assert "SECR" not in info.value.message
    assert "Evil" not in info.value.message


def test_a_header_name_that_is_no_token_is_refused() -> None:
    with pytest.raises(ValidationError) as info:
        http_check("http://127.0.0.1:9/", headers={"X Bad": "1"})
    assert info.value.field == "headers"


# -- required settings --------------------------------------------------------------------------


def test_missing_optional_setting_warns_naming_the_variable() -> None:
    check = required_settings_check(
        required={"BUTTRESS_DATABASE_URL": "sqlite:///app.db"},
        optional={"BUTTRESS_SPOTIFY_API_KEY": None},
        purposes={"BUTTRESS_SPOTIFY_API_KEY": "Spotify features"},
    )
    report = run(check)
    assert report["settings"].status == "warn"
    assert report["settings"].output == (
        "BUTTRESS_SPOTIFY_API_KEY is not set: Spotify features are disabled; set it to enable them"
    )
    assert report["settings"].observed_value == 1
    assert report.status == "warn"


def test_missing_required_setting_fails_naming_the_variable() -> None:
    check = required_settings_check(
        required={"BUTTRESS_STRIPE_API_KEY": SecretStr(""), "BUTTRESS_SMTP_HOST": "  "},
        optional={"BUTTRESS_SPOTIFY_API_KEY": "", "BUTTRESS_LASTFM_API_KEY": None},
        purposes={"BUTTRESS_STRIPE_API_KEY": "payments", "BUTTRESS_SPOTIFY_API_KEY": "Spotify features"},
    )
    report = run(check)
    assert report["settings"].status == "fail"
    assert report["settings"].output.split("\n") == [
        "BUTTRESS_STRIPE_API_KEY is required but not set: payments cannot work; set it and restart",
        "BUTTRESS_SMTP_HOST is required but not set; set it and restart",
        "BUTTRESS_SPOTIFY_API_KEY is not set: Spotify features are disabled; set it to enable them",
        "BUTTRESS_LASTFM_API_KEY is not set: the features that use it are disabled; set it to enable them",
    ]
    assert report["settings"].observed_value == 4
    assert report.status == "fail"


def test_present_settings_pass_and_values_are_never_shown() -> None:
    secret = "sk_live_do_not_print"
    live: dict[str, SecretStr | str | None] = {"BUTTRESS_STRIPE_API_KEY": SecretStr(secret)}
    check = required_settings_check(live, {"BUTTRESS_SPOTIFY_API_KEY": "spotify-key-value"})
    registry = HealthRegistry()
    registry.register(check)
    report = registry.run_sync()
    assert report["settings"].status == "pass"
    assert report["settings"].output == "all 2 settings are set"
    assert secret not in report.to_json()
    assert "spotify-key-value" not in report.to_json()
    live["BUTTRESS_STRIPE_API_KEY"] = None  # the mapping is read on every run
    assert registry.run_sync()["settings"].status == "fail"
    assert secret not in registry.run_sync().to_json()


def test_required_settings_check_validates_its_inputs() -> None:
    with pytest.raises(ValidationError) as info:
        required_settings_check(["BUTTRESS_API_KEY"])  # type: ignore[arg-type]
    assert info.value.field == "required"
    with pytest.raises(ValidationError) as info:
        required_settings_check({}, purposes="x")  # type: ignore[arg-type]
    assert info.value.field == "purposes"


# -- default registry ---------------------------------------------------------------------------


def test_default_registry_without_services_checks_disk_and_memory() -> None:
    registry = default_health_registry(SimpleNamespace(redis_url=None, database_url=None), disk_path="/")
    assert [(c.name, c.critical) for c in registry] == [("disk", False), ("memory", False)]
    assert registry.get("disk").component_id == "/"  # type: ignore[union-attr]
    assert registry.run_sync().status in {"pass", "warn"}


def test_default_registry_checks_configured_services(redis_url: str, database_url: str) -> None:
    settings = SimpleNamespace(
        redis_url=redis_url, database_url=database_url, app=SimpleNamespace(name="orders")
    )
    registry = default_health_registry(settings)
    assert [(c.name, c.critical) for c in registry] == [
        ("redis", True),
        ("database", True),
        ("disk", False),
        ("memory", False),
    ]
    try:
        report = registry.run_sync("readiness")
    finally:
        registry.close()
    assert report["redis"].status == "pass"
    assert report["database"].status == "pass"
    assert report.status in {"pass", "warn"}
    assert report.to_dict()["serviceId"] == "orders"


def test_default_registry_reads_the_process_settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    config = pytest.importorskip("buttress.config")
    monkeypatch.chdir(tmp_path)  # no stray .env
    for name in list(os.environ):
        if name.startswith("BUTTRESS_") and not name.startswith(("BUTTRESS_TEST_", "BUTTRESS_REQUIRE_")):
            monkeypatch.delenv(name)
    monkeypatch.setenv("BUTTRESS_DATABASE_URL", f"sqlite:///{tmp_path / 'app.db'}")
    config.reset_settings()
    try:
        registry = default_health_registry()
    finally:
        config.reset_settings()
    # The cache's own check is added by the composition root (buttress.composition), not by observe.
    assert [c.name for c in registry] == ["database", "disk", "memory"]
    try:
        assert registry.run_sync()["database"].status == "pass"
    finally:
        registry.close()
