"""Freshness watched from outside the runs: Dagster's freshness daemon marks an asset stale when
nothing materialises it within its window, the UI shows it, and the ``freshness_alerts`` sensor
posts one alert to the webhook, then one when it is fresh again.

The live test runs a real webserver and daemon on the project's dagster.yaml, with a one-minute
window (``CRYPTIFY_FRESHNESS_MINUTES``) so that a stopped collection shows within two minutes.
"""

import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime

import pytest
from dagster import AssetKey, build_sensor_context
from dagster._core.definitions.freshness import FreshnessState, FreshnessStateChange

from cryptify_pipeline.assets.freshness import freshness_windows
from cryptify_pipeline.automation.alerts import FailureAlerts
from cryptify_pipeline_tests.support import pipeline
from cryptify_pipeline_tests.support.database import run_sql
from cryptify_pipeline_tests.support.fake_binance import FakeBinance
from cryptify_pipeline_tests.support.instances import own_instance
from cryptify_pipeline_tests.support.live_deployment import Deployment, live_deployment
from cryptify_pipeline_tests.support.webhook import Webhook

SYMBOLS = ["BTC/USDT", "ETH/USDT"]


def eventually(found: Callable[[], object], timeout: float, what: str) -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if result := found():
            return result
        time.sleep(1)
    raise AssertionError(f"not within {timeout:g} s: {what}")


def test_the_windows_cover_the_forecasting_chain():
    windows = freshness_windows(80)
    assert set(windows) == {"candles", "features", "predictions", "forecast_metrics"}
    assert windows["candles"].total_seconds() == 80 * 60
    assert windows["forecast_metrics"].total_seconds() == (24 * 60 + 80) * 60


def test_every_watched_asset_has_its_policy(schema):
    defs = pipeline.definitions(schema)
    graph = defs.resolve_asset_graph()
    policies = {
        key.to_user_string(): graph.get(key).freshness_policy
        for key in graph.get_all_asset_keys()
        if graph.get(key).freshness_policy is not None
    }
    assert set(policies) == {"candles", "features", "predictions", "forecast_metrics"}


def _tick(defs, instance, schema: str, cursor: str | None, webhook: Webhook):
    context = build_sensor_context(
        instance=instance,
        cursor=cursor,
        resources={
            "database": pipeline.database(schema),
            "alerts": FailureAlerts(webhook_url=webhook.url),
        },
    )
    result = defs.resolve_sensor_def("freshness_alerts").evaluate_tick(context)
    assert not result.run_requests
    return result.cursor, result.skip_message or ""


def _change(instance, asset: str, previous: FreshnessState, new: FreshnessState) -> None:
    # the event the freshness daemon records (dagster/_daemon/freshness.py)
    instance.report_runless_asset_event(
        FreshnessStateChange(
            key=AssetKey(asset), previous_state=previous, new_state=new,
            state_change_timestamp=time.time(),
        )
    )  # fmt: skip


@pytest.fixture
def quiet_instance():
    """An instance of its own: candles other tests materialised in the shared one would show
    in the alerts' "last materialised"."""
    with own_instance("freshness") as instance:
        yield instance


def test_stale_and_recovered_are_alerted_once_each_and_retried(quiet_instance, schema):
    instance = quiet_instance
    defs = pipeline.definitions(schema)
    webhook = Webhook()
    try:
        _change(instance, "candles", FreshnessState.UNKNOWN, FreshnessState.PASS)
        cursor, message = _tick(defs, instance, schema, None, webhook)  # a new sensor
        assert message.startswith("0 freshness change(s)")
        webhook.mode = 503
        _change(instance, "candles", FreshnessState.PASS, FreshnessState.FAIL)
        cursor, message = _tick(defs, instance, schema, cursor, webhook)
        assert message.startswith("1 freshness change(s) recorded; 0 of 1")
        [(state, attempts)] = run_sql(
            f'SELECT alert_state, alert_attempts FROM "{schema}".freshness_alerts'
        )
        assert (state, attempts) == ("pending", 1)
        webhook.mode = "ok"
        run_sql(f'UPDATE "{schema}".freshness_alerts SET alert_next_attempt_at = now()')
        _change(instance, "candles", FreshnessState.FAIL, FreshnessState.FAIL)  # not news
        _change(instance, "candles", FreshnessState.FAIL, FreshnessState.PASS)
        cursor, message = _tick(defs, instance, schema, cursor, webhook)
        assert message.startswith("1 freshness change(s) recorded; 2 of 2")
        assert [(body["asset"], body["state"]) for body in webhook.bodies] == [
            ("candles", "stale"), ("candles", "recovered"),
        ]  # fmt: skip
        assert webhook.bodies[0]["text"] == "cryptify: candles is stale: last materialised never"
        _tick(defs, instance, schema, cursor, webhook)
        assert len(webhook.bodies) == 2
    finally:
        webhook.stop()


def test_a_new_sensor_announces_what_is_stale_already(quiet_instance, schema):
    instance = quiet_instance
    defs = pipeline.definitions(schema)
    webhook = Webhook()
    try:
        _change(instance, "features", FreshnessState.UNKNOWN, FreshnessState.FAIL)
        _change(instance, "candles", FreshnessState.UNKNOWN, FreshnessState.PASS)
        _tick(defs, instance, schema, None, webhook)
        assert [(body["asset"], body["state"]) for body in webhook.bodies] == [
            ("features", "stale")
        ]
    finally:
        webhook.stop()


# -- live: a real daemon -------------------------------------------------------------------


@pytest.fixture
def live_watch(tmp_path, monkeypatch):
    schema = f"fresh_{uuid.uuid4().hex[:8]}"
    exchange = FakeBinance(
        SYMBOLS, datetime(2025, 1, 1, tzinfo=UTC), datetime(2025, 1, 10, tzinfo=UTC)
    )
    webhook = Webhook()
    env = {
        "CRYPTIFY_SCHEMA": schema,
        "CRYPTIFY_SOURCE": "binance",
        "CRYPTIFY_EXCHANGE_API_URL": exchange.api_url,
        "CRYPTIFY_SYMBOLS": ",".join(SYMBOLS),
        "CRYPTIFY_CONTEXT_SOURCE": "none",
        "CRYPTIFY_EQUITY_INDEX_SOURCE": "none",
        # only the runs the test launches: it is the collection, and it stops
        "CRYPTIFY_AUTOMATION": "off",
        "CRYPTIFY_FRESHNESS_MINUTES": "1",
        "CRYPTIFY_ALERT_WEBHOOK_URL": webhook.url,
        "FRESHNESS_DAEMON_INTERVAL_SECONDS": "5",  # Dagster's default: 30
    }
    try:
        with exchange, live_deployment(tmp_path / "home", f"{schema}_dagster", env) as deployment:
            deployment.schema = schema
            yield deployment, webhook
    finally:
        webhook.stop()
        run_sql(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        run_sql(f'DROP SCHEMA IF EXISTS "{schema}_dagster" CASCADE')


def freshness_status(live: Deployment, asset: str) -> str | None:
    """What the UI shows on the asset's page (HEALTHY, DEGRADED, ...)."""
    data = live.client.query(
        """query($key: AssetKeyInput!) { assetNodeOrError(assetKey: $key) {
             ... on AssetNode { freshnessStatusInfo { freshnessStatus } } } }""",
        {"key": {"path": [asset]}},
    )
    info = data["assetNodeOrError"].get("freshnessStatusInfo")
    return info and info["freshnessStatus"]


def alerts_for(webhook: Webhook, asset: str) -> list[str]:
    return [body["state"] for body in webhook.bodies if body.get("asset") == asset]


@pytest.mark.live
def test_a_stopped_collection_turns_stale_and_alerts_then_recovers(live_watch):
    live, webhook = live_watch
    assert live.client.start_sensor("freshness_alerts") == "RUNNING"
    collect = live.client.launch_run("collect_job", partition="2025-01-05-10:00")
    assert live.wait_for_run(collect).status == "SUCCESS"
    eventually(lambda: freshness_status(live, "candles") == "HEALTHY", 60, "candles fresh")
    # the collection stops: no run for over the one-minute window
    eventually(lambda: freshness_status(live, "candles") == "DEGRADED", 120, "candles stale")
    eventually(lambda: "stale" in alerts_for(webhook, "candles"), 90, "the stale alert posted")
    [stale] = [body for body in webhook.bodies if body.get("asset") == "candles"]
    assert stale["text"].startswith("cryptify: candles is stale: last materialised 20")
    # the collection resumes
    collect = live.client.launch_run("collect_job", partition="2025-01-05-11:00")
    assert live.wait_for_run(collect).status == "SUCCESS"
    eventually(lambda: freshness_status(live, "candles") == "HEALTHY", 60, "candles fresh again")
    # (a minute later it turns stale again: only the first two alerts are this test's)
    eventually(
        lambda: alerts_for(webhook, "candles")[:2] == ["stale", "recovered"], 90,
        "the recovery posted",
    )  # fmt: skip
    # the outcome is stored once the webhook has answered
    delivered = [("candles", "stale", "delivered"), ("candles", "recovered", "delivered")]
    eventually(
        lambda: run_sql(
            f'SELECT asset, change, alert_state FROM "{live.schema}".freshness_alerts'
            " WHERE asset = 'candles' ORDER BY changed_at LIMIT 2"
        ) == delivered,
        30, "both alerts stored as delivered",
    )  # fmt: skip
