"""Per-app metrics (shared.observability): requests by route template, the /metrics endpoint, errors counted,
mounted apps, and two apps' registries kept apart."""

from __future__ import annotations

import pytest
from fastapi import FastAPI
from prometheus_client.parser import text_string_to_metric_families

from shared.observability import Metrics
from tests.kit.observability import client_for, make_app


def sample_value(metrics_text: str, name: str, labels: dict[str, str]) -> float | None:
    """Find one sample in Prometheus text by name and exact labels."""
    for family in text_string_to_metric_families(metrics_text):
        for sample in family.samples:
            if sample.name == name and sample.labels == labels:
                return sample.value
    return None


async def test_metrics_endpoint_reports_route_template() -> None:
    app = make_app()
    async with client_for(app) as client:
        await client.get("/v1/households/a")
        await client.get("/v1/households/b")
        await client.get("/no/such/path")
        response = await client.get("/metrics")

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    text = response.text
    labels = {"method": "GET", "route": "/v1/households/{household_id}", "status": "200"}
    assert sample_value(text, "http_requests_total", labels) == 2.0
    unmatched = {"method": "GET", "route": "unmatched", "status": "404"}
    assert sample_value(text, "http_requests_total", unmatched) == 1
    assert (
        sample_value(
            text,
            "http_request_duration_seconds_count",
            {"method": "GET", "route": "/v1/households/{household_id}"},
        )
        == 2.0
    )
    # Raw paths never become label values.
    assert "/v1/households/a" not in text
    assert app.state.metrics.registry is not None


async def test_metrics_route_hidden_from_openapi() -> None:
    async with client_for(make_app()) as client:
        schema = (await client.get("/openapi.json")).json()
    assert "/metrics" not in schema["paths"]
    assert "/v1/households/{household_id}" in schema["paths"]


async def test_metrics_endpoint_offers_openmetrics() -> None:
    async with client_for(make_app()) as client:
        response = await client.get("/metrics", headers={"Accept": "application/openmetrics-text"})
    assert response.headers["content-type"].startswith("application/openmetrics-text")
    assert response.text.rstrip().endswith("# EOF")


async def test_unhandled_error_counted_as_500() -> None:
    app = make_app()

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("boom")

    async with client_for(app) as client:
        with pytest.raises(RuntimeError):
            await client.get("/boom")
        text = (await client.get("/metrics")).text
    failed = {"method": "GET", "route": "/boom", "status": "500"}
    assert sample_value(text, "http_requests_total", failed) == 1


async def test_mounted_sub_app_route_includes_mount_prefix() -> None:
    metrics = Metrics()
    app = make_app(metrics=metrics)
    sub = FastAPI()

    @sub.get("/items/{item_id}")
    async def item(item_id: str) -> dict[str, str]:
        return {"item_id": item_id}

    app.mount("/admin", sub)
    async with client_for(app) as client:
        assert (await client.get("/admin/items/7")).status_code == 200
    labels = {"method": "GET", "route": "/admin/items/{item_id}", "status": "200"}
    assert metrics.registry.get_sample_value("http_requests_total", labels) == 1


async def test_two_metrics_instances_do_not_collide() -> None:
    first, second = Metrics(), Metrics()
    assert first.registry is not second.registry
    app_one, app_two = make_app("registry", first), make_app("assessment", second)

    first.outbox_pending.set(3)
    second.outbox_pending.set(7)
    first.events_published_total.labels(topic="registry.households").inc()
    second.events_consumed_total.labels(topic="registry.households", outcome="duplicate").inc()
    second.consumer_lag.labels(topic="registry.households", partition="0").set(12)
    second.handler_failures_total.labels(topic="registry.households").inc(2)
    first.outbox_publish_lag_seconds.set(1.5)

    async with client_for(app_one) as one, client_for(app_two) as two:
        await one.get("/v1/households/x")
        text_one = (await one.get("/metrics")).text
        text_two = (await two.get("/metrics")).text

    assert sample_value(text_one, "outbox_pending", {}) == 3
    assert sample_value(text_two, "outbox_pending", {}) == 7
    assert sample_value(text_one, "outbox_publish_lag_seconds", {}) == 1.5
    assert sample_value(text_one, "events_published_total", {"topic": "registry.households"}) == 1
    assert sample_value(text_two, "events_published_total", {"topic": "registry.households"}) is None
    consumed = {"topic": "registry.households", "outcome": "duplicate"}
    assert sample_value(text_two, "events_consumed_total", consumed) == 1
    assert sample_value(text_one, "events_consumed_total", consumed) is None
    assert sample_value(text_two, "consumer_lag", {"topic": "registry.households", "partition": "0"}) == 12
    assert sample_value(text_two, "handler_failures_total", {"topic": "registry.households"}) == 2
    households = {"method": "GET", "route": "/v1/households/{household_id}", "status": "200"}
    assert sample_value(text_one, "http_requests_total", households) == 1
    assert sample_value(text_two, "http_requests_total", households) is None
