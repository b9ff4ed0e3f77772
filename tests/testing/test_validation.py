"""Bad input fails where it is written, with a ValidationError naming the field; the API around it."""

from __future__ import annotations

import pickle
import random
import subprocess
import sys
from typing import Any

import pytest

from buttress.errors import ConflictError, ValidationError
from buttress.testing import Domain, Fault, Latency, Upstream


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"latency": -1}, "latency"),
        ({"latency": float("nan")}, "latency"),
        ({"latency": True}, "latency"),
        ({"errors": [503]}, "errors"),
        ({"errors": {200: 0.1}}, "errors"),
        ({"errors": {"503": 0.1}}, "errors"),
        ({"errors": {503: 1.5}}, "errors"),
        ({"errors": {503: -0.1}}, "errors"),
        ({"errors": {503: 0.6, 500: 0.5}}, "errors"),
        ({"errors": {503: 0.5}, "reset": 0.3, "hang": 0.3}, "errors"),
        ({"retry_after": "soon"}, "retry_after"),
        ({"retry_after": -1}, "retry_after"),
        ({"retry_after_seconds": -1}, "retry_after_seconds"),
        ({"rate_limit": "fast"}, "rate_limit"),
        ({"rate_limit": "10/fortnight"}, "rate_limit"),
        ({"rate_limit": 10}, "rate_limit"),
        ({"reset": 2}, "reset"),
        ({"hang": -0.5}, "hang"),
        ({"slow_body": -1}, "slow_body"),
        ({"body_chunks": 0}, "body_chunks"),
        ({"body_chunks": 2.5}, "body_chunks"),
        ({"down": "yes"}, "down"),
        ({"status": 700}, "status"),
        ({"status": 101}, "status"),
    ],
)
def test_bad_fault_names_the_field(options: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError) as caught:
        Fault(**options)
    assert caught.value.field == field
    assert field in str(caught.value)


@pytest.mark.parametrize(
    "make",
    [
        lambda: Latency.fixed(-0.1),
        lambda: Latency.uniform(0.5, 0.2),
        lambda: Latency.uniform(-1, 1),
        lambda: Latency.lognormal(0, 1),
        lambda: Latency.lognormal(0.5, 0.1),
    ],
)
def test_bad_latency_names_the_field(make: Any) -> None:
    with pytest.raises(ValidationError) as caught:
        make()
    assert caught.value.field == "latency"


def test_latency_samples() -> None:
    rng = random.Random(1)
    assert Latency.fixed(0.25).sample(rng) == 0.25
    uniform = [Latency.uniform(0.2, 0.6).sample(rng) for _ in range(1000)]
    assert 0.2 <= min(uniform) < 0.25
    assert 0.55 < max(uniform) <= 0.6
    lognormal = sorted(Latency.lognormal(0.05, 0.5).sample(rng) for _ in range(20000))
    assert 0.045 < lognormal[10000] < 0.055
    assert 0.4 < lognormal[19800] < 0.6
    assert Latency.lognormal(0.1, 0.1).sample(rng) == pytest.approx(0.1)
    assert repr(Latency.uniform(0.2, 0.6)) == "Latency.uniform(0.2, 0.6)"
    assert repr(Latency.fixed(1.0)) == "Latency.fixed(1.0)"


def test_faults_are_values() -> None:
    fault = Fault(errors={503: 0.3}, latency=Latency.lognormal(0.05, 0.5), rate_limit="20/s")
    assert pickle.loads(pickle.dumps(fault)) == fault
    assert hash(fault) == hash(
        Fault(errors={503: 0.3}, latency=Latency.lognormal(0.05, 0.5), rate_limit="20/s")
    )
    assert fault.errors[503] == 0.3


def test_bad_upstream_arguments() -> None:
    with pytest.raises(ValidationError) as seed:
        Upstream(seed="0")  # type: ignore[arg-type]
    assert seed.value.field == "seed"
    with pytest.raises(ValidationError) as mode:
        Upstream(mode="fork")  # type: ignore[arg-type]
    assert mode.value.field == "mode"


@pytest.mark.parametrize("name", ["Flaky", "with space", "", "under_score", 3])
def test_bad_domain_name(name: Any) -> None:
    with pytest.raises(ValidationError, match=r"\[a-z0-9-\]\+") as caught:
        Upstream().add(name)
    assert caught.value.field == "name"


def test_duplicate_unknown_and_mistyped() -> None:
    up = Upstream()
    up.add("payments")
    with pytest.raises(ValidationError, match="already exists") as duplicate:
        up.add("payments")
    assert duplicate.value.field == "name"
    with pytest.raises(ValidationError, match="known domains: 'payments'") as unknown:
        up.calls("paymets")
    assert unknown.value.field == "domain"
    assert unknown.value.context["known"] == ["payments"]
    with pytest.raises(ValidationError) as not_fault:
        up.add("other", {"errors": {503: 1.0}})  # type: ignore[arg-type]
    assert not_fault.value.field == "fault"
    with pytest.raises(ValidationError) as down_route:
        up.route("payments", "/x", Fault(down=True))
    assert down_route.value.field == "down"
    with pytest.raises(ValidationError) as path:
        up.route("payments", "x", Fault())
    assert path.value.field == "path"
    with pytest.raises(ValidationError) as url_path:
        up.calls("payments", "items")
    assert url_path.value.field == "path"


def test_addresses_need_a_running_upstream() -> None:
    up = Upstream(seed=3)
    with pytest.raises(ConflictError, match="not running"):
        up.url()
    assert [d.name for d in up.domains] == ["default"]
    assert up.calls() == 0
    assert up.outcomes() == {}
    assert up.connections() == 0
    assert up.counts() == {"default": {}}
    assert repr(up) == "Upstream(seed=3, mode='thread', domains=['default'], running=False)"


def test_shape_before_start_and_counters_after_stop() -> None:
    import httpx

    up = Upstream(mode="thread")
    assert up.mode == "thread"
    up.add("api", Fault(status=201))
    up.add("gone", Fault(down=True))
    up.route("api", "/v1", Fault(errors={500: 1.0}))
    up.set_down("api")
    up.set_down("api", down=False)
    with up:
        assert up.start() is up
        url = up.url("api", "/v1/x")
        assert up.host("api") == f"127.0.0.1:{up.port('api')}"
        assert up.domain("api") == Domain(
            "api", Fault(status=201), (("/v1", Fault(errors={500: 1.0})),), up.port("api")
        )
        assert httpx.get(url).status_code == 500
        assert httpx.get(up.url("api")).status_code == 201
        with pytest.raises(ValidationError):
            up.domain()
    up.stop()
    assert up.domain("api").port is None
    assert up.calls("api") == 2
    assert up.outcomes("api") == {"500": 1, "201": 1}
    assert up.counts() == {"api": {"/v1/x": 1, "/": 1}, "gone": {}}
    up.reset_counts()
    assert up.calls("api") == 0
    with up:
        assert httpx.get(up.url("api")).json()["n"] == 0


def test_importing_the_package_does_not_import_pytest() -> None:
    code = "import sys, buttress.testing; sys.exit('pytest' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0
