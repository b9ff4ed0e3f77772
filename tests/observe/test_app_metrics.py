"""An application's own metrics, under its own prefix, in the registry the ops server exposes."""

from __future__ import annotations

import httpx
import pytest

from buttress.config import Settings
from buttress.errors import ValidationError
from buttress.observe.errors import ErrorAggregator
from buttress.observe.health import HealthRegistry
from buttress.observe.metrics import Counter, MetricsRegistry, get_metrics, timed
from buttress.observe.system import SystemSampler
from buttress.server import create_app


@pytest.fixture(autouse=True)
def _isolated(isolated_settings: None) -> None:
    """A fresh default container, so get_metrics() is a registry of this test's own."""


async def _exposition(metrics: MetricsRegistry) -> str:
    app = create_app(
        Settings(_env_file=None),
        metrics=metrics,
        health=HealthRegistry(),
        errors=ErrorAggregator(),
        sampler=SystemSampler(3600.0),
    )
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://ops.test") as client:
        answer = await client.get("/metrics")
    assert answer.status_code == 200
    return answer.text


async def test_the_ops_server_exposes_metrics_under_the_applications_prefix() -> None:
    shop = get_metrics().prefixed("shop")
    orders = shop.counter("shop_orders_total", "Orders placed.", labels=("status",))
    basket = shop.gauge("shop_basket_items", "Items in open baskets.")
    checkout = shop.histogram("shop_checkout_seconds", "Checkout latency.", labels=("outcome",))
    orders.labels(status="paid").inc(3)
    basket.set(7)
    with timed(checkout):
        pass
    text = await _exposition(get_metrics())
    assert "# TYPE shop_orders_total counter" in text
    assert 'shop_orders_total{status="paid"} 3.0' in text
    assert "shop_basket_items 7.0" in text
    assert 'shop_checkout_seconds_count{outcome="success"} 1.0' in text
    assert "buttress_server_requests_total" in text  # beside buttress's own, in one exposition


def test_a_prefixed_declaration_is_the_registrys_metric() -> None:
    registry = MetricsRegistry()
    orders = registry.prefixed("shop").counter("shop_orders_total", "Orders placed.")
    assert isinstance(orders, Counter)
    assert registry.get("shop_orders_total") is orders
    assert registry.prefixed("shop").counter("shop_orders_total", "Orders placed.") is orders
    assert registry.declare_under("shop", Counter, "shop_orders_total", "Orders placed.", ()) is orders
    assert registry.prefixed("shop").prefix == "shop"
    assert "shop_orders_total" in registry.snapshot()


@pytest.mark.parametrize("prefix", ["Shop", "", "shop_", "9shop", "sh-op", "shop__x", None])
def test_a_bad_prefix_is_refused(prefix: object) -> None:
    with pytest.raises(ValidationError) as caught:
        MetricsRegistry().prefixed(prefix)  # type: ignore[arg-type]
    assert caught.value.field == "prefix"
    assert "e.g. 'shop'" in caught.value.message


def test_names_outside_the_prefix_are_refused_with_an_example() -> None:
    shop = MetricsRegistry().prefixed("shop")
    with pytest.raises(ValidationError, match="'shop_orders_total'") as caught:
        shop.counter("orders_total", "Orders placed.")
    assert caught.value.field == "name"
    with pytest.raises(ValidationError, match="shop_<component>_<what>_<unit>"):
        shop.gauge("buttress_cache_size_bytes", "Not the application's.")


def test_an_application_name_on_the_plain_registry_says_how_to_declare_it() -> None:
    with pytest.raises(ValidationError, match=r"prefixed\('shop'\)"):
        MetricsRegistry().counter("shop_orders_total", "Orders placed.")
