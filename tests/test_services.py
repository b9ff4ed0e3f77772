"""The test services answer, so the suites that need them really run (and CI proves it)."""

from __future__ import annotations

import subprocess
import sys

import psycopg
import redis

from tests.conftest import _reachable


def test_redis_answers_ping(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    try:
        assert client.ping() is True
    finally:
        client.close()


def test_postgres_answers_select_one(database_url: str) -> None:
    with psycopg.connect(database_url, connect_timeout=5) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)


def test_unreachable_service_is_reported_with_host_and_port() -> None:
    reason = _reachable("redis://127.0.0.1:1/0", 6379)
    assert reason is not None
    assert "127.0.0.1:1" in reason


def test_require_services_turns_a_skip_into_a_failure(tmp_path: object) -> None:
    test_file = f"{tmp_path}/test_needs.py"
    with open(test_file, "w") as fh:
        fh.write(
            "from tests.conftest import need_service\n"
            "def test_x():\n"
            "    need_service('Redis', 'redis://127.0.0.1:1/0', 6379)\n"
        )
    base = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--no-cov", test_file]
    skipped = subprocess.run(base, capture_output=True, text=True, env=_env(require=False), check=False)
    assert skipped.returncode == 0, skipped.stdout
    assert "1 skipped" in skipped.stdout
    failed = subprocess.run(base, capture_output=True, text=True, env=_env(require=True), check=False)
    assert failed.returncode == 1, failed.stdout
    assert "BUTTRESS_REQUIRE_SERVICES=1" in failed.stdout


def _env(*, require: bool) -> dict[str, str]:
    import os

    env = {k: v for k, v in os.environ.items() if not k.startswith(("BUTTRESS_", "COV_CORE"))}
    env["PYTHONPATH"] = os.getcwd()
    if require:
        env["BUTTRESS_REQUIRE_SERVICES"] = "1"
    return env
