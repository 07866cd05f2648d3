"""Failed runs are recorded in the run_failures table and their alerts reach the webhook: retried
with backoff while it hangs, refuses or fails, delivered once it recovers, given up at a bound."""

import base64
import json
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from dagster import DagsterInstance, build_sensor_context, job, op
from dagster._core.definitions.run_status_sensor_definition import RunStatusSensorCursor

from cryptify_pipeline.automation.alerts import FailureAlerts
from cryptify_pipeline.automation.failures import cursor_for, cursor_record_id
from cryptify_pipeline_tests.support import pipeline
from cryptify_pipeline_tests.support.database import run_sql
from cryptify_pipeline_tests.support.live_deployment import Deployment, live_deployment
from cryptify_pipeline_tests.support.webhook import TOKEN, Webhook


@pytest.fixture
def webhook():
    hook = Webhook()
    yield hook
    hook.stop()


class FailureSensor:
    """``record_run_failures`` of the pipeline on ``schema``, ticked as the daemon ticks it:
    its cursor carried from tick to tick."""

    def __init__(self, instance: DagsterInstance, schema: str):
        self.instance = instance
        self.schema = schema
        self.defs = pipeline.definitions(schema)
        self.sensor = self.defs.resolve_sensor_def("record_run_failures")
        self.cursor: str | None = None
        self.tick(FailureAlerts())  # a new sensor starts from now

    def tick(self, alerts: FailureAlerts) -> str:
        """One evaluation; its skip message."""
        context = build_sensor_context(
            instance=self.instance,
            cursor=self.cursor,
            resources={"database": pipeline.database(self.schema), "alerts": alerts},
        )
        result = self.sensor.evaluate_tick(context)
        assert not result.run_requests
        self.cursor = result.cursor
        return result.skip_message or ""

    def fail_run(self, hour: int = 5) -> str:
        """A predict_job run that fails (no features, no models); its id."""
        result = self.defs.resolve_job_def("predict_job").execute_in_process(
            instance=self.instance, partition_key=f"2025-03-03-{hour:02d}:00", raise_on_error=False
        )
        assert not result.success
        return result.run_id

    def rows(self) -> dict[str, tuple]:
        """run_id -> (alert_state, alert_attempts, alert_last_error, alert_next_attempt_at)."""
        rows = run_sql(
            "SELECT run_id, alert_state, alert_attempts, alert_last_error, alert_next_attempt_at"
            f' FROM "{self.schema}".run_failures'
        )
        return {row[0]: row[1:] for row in rows}


def wait_until_due(next_attempt_at: datetime) -> None:
    time.sleep(max(0.0, (next_attempt_at - datetime.now(UTC)).total_seconds()) + 0.05)


@pytest.fixture
def failures(instance, schema) -> FailureSensor:
    return FailureSensor(instance, schema)


def test_failed_run_is_recorded_and_alerted(failures, webhook):
    run_id = failures.fail_run()
    message = failures.tick(FailureAlerts(webhook_url=webhook.url))
    assert message == "1 failed run(s) recorded; 1 of 1 alert post(s) delivered"
    [row] = run_sql(
        "SELECT run_id, job_name, partitions, failed_steps, message, alert_state, alert_attempts"
        f' FROM "{failures.schema}".run_failures'
    )
    assert row[:4] == (run_id, "predict_job", "2025-03-03-05:00", "predictions")
    assert row[4]  # the step's error, not an empty string
    assert row[5:] == ("delivered", 1)
    [body] = webhook.bodies
    assert body["run_id"] == run_id and body["job_name"] == "predict_job"
    assert body["failed_steps"] == ["predictions"]
    assert body["text"].startswith("cryptify: predict_job [2025-03-03-05:00] failed: ")

    # a later tick sees no new failure and posts nothing again
    assert failures.tick(FailureAlerts(webhook_url=webhook.url)).startswith("0 failed run(s)")
    assert webhook.requests == 1


def test_alert_survives_a_hanging_then_refusing_webhook_and_is_delivered_when_it_recovers(
    failures, webhook
):
    alerts = FailureAlerts(webhook_url=webhook.url, timeout_seconds=0.5, first_retry_seconds=1)
    webhook.mode = "hang"
    run_id = failures.fail_run()

    before = datetime.now(UTC)
    failures.tick(alerts)
    # one POST, cut at its 0.5 s timeout (the webhook answers only after 3 s), then backed off
    # by first_retry_seconds from when it was given up
    state, attempts, error, next_at = failures.rows()[run_id]
    assert (state, attempts, error) == ("pending", 1, "no answer within 0.5 s")
    assert next_at - before >= timedelta(seconds=1)
    assert webhook.bodies == [] and webhook.requests == 1

    webhook.stop()
    failures.tick(alerts)  # before its backoff has passed: not tried
    assert failures.rows()[run_id][:2] == ("pending", 1)
    wait_until_due(next_at)
    failures.tick(alerts)
    state, attempts, error, next_at = failures.rows()[run_id]
    assert (state, attempts) == ("pending", 2)
    assert error.startswith("cannot connect: ") and "refused" in error

    webhook.start("ok")
    wait_until_due(next_at)
    assert failures.tick(alerts).endswith("1 of 1 alert post(s) delivered")
    assert failures.rows()[run_id][:3] == ("delivered", 3, error)  # the last error is kept
    assert [body["run_id"] for body in webhook.bodies] == [run_id]
    failures.tick(alerts)
    assert webhook.requests == 2  # the hung one and the delivered one: nothing more


def test_alert_is_given_up_after_its_attempts_and_at_once_when_refused_for_good(failures, webhook):
    alerts = FailureAlerts(
        webhook_url=webhook.url, timeout_seconds=0.5, first_retry_seconds=0, max_attempts=2
    )
    webhook.mode = 500
    first = failures.fail_run(5)
    failures.tick(alerts)
    assert failures.rows()[first][:3] == ("pending", 1, "HTTP 500 Internal Server Error")
    failures.tick(alerts)
    assert failures.rows()[first][:2] == ("gave_up", 2)
    assert failures.rows()[first][3] is None  # no next attempt
    failures.tick(alerts)
    assert failures.rows()[first][:2] == ("gave_up", 2) and webhook.requests == 2

    webhook.mode = 404  # a deleted webhook: retrying cannot help
    second = failures.fail_run(6)
    failures.tick(alerts)
    assert failures.rows()[second][:3] == ("gave_up", 1, "HTTP 404 Not Found")


def test_a_tick_stops_at_the_first_failure_and_within_its_budget(failures, webhook):
    runs = [failures.fail_run(hour) for hour in (5, 6, 7)]
    webhook.mode = "hang"
    alerts = FailureAlerts(webhook_url=webhook.url, timeout_seconds=0.5, first_retry_seconds=0)
    failures.tick(alerts)
    # the first POST timed out: the other two are not tried on this tick
    assert sorted(attempts for _, attempts, _, _ in failures.rows().values()) == [0, 0, 1]
    assert webhook.requests == 1

    # a webhook that answers, slowly: a tick starts no POST that could end past its budget
    webhook.mode = "slow"  # 0.6 s per answer: a third could start at >= 1.2 s, end > 1.9 s
    budget = FailureAlerts(
        webhook_url=webhook.url, timeout_seconds=1.0, first_retry_seconds=0,
        tick_budget_seconds=1.9,
    )  # fmt: skip
    requests = webhook.requests
    first = failures.tick(budget)
    # a third POST would start at >= 1.2 s, and with its 1 s timeout could end past 1.9 s
    assert first.endswith(("1 of 1 alert post(s) delivered", "2 of 2 alert post(s) delivered"))
    assert webhook.requests - requests in (1, 2)
    for _ in range(2):  # the rest on the next tick(s)
        failures.tick(budget)
    assert {state for state, *_ in failures.rows().values()} == {"delivered"}
    assert sorted(body["run_id"] for body in webhook.bodies) == sorted(runs)


def test_without_a_webhook_failures_are_recorded_as_not_configured_and_never_posted(
    failures, webhook
):
    run_id = failures.fail_run()
    failures.tick(FailureAlerts())
    assert failures.rows()[run_id][:3] == ("not_configured", 0, None)
    failures.tick(FailureAlerts(webhook_url=webhook.url))
    assert webhook.requests == 0


def test_a_repeated_tick_keeps_the_alert_state_and_posts_nothing_twice(failures, webhook):
    alerts = FailureAlerts(webhook_url=webhook.url)
    before = failures.cursor
    run_id = failures.fail_run()
    failures.tick(alerts)
    assert failures.rows()[run_id][:2] == ("delivered", 1)
    failures.cursor = before  # as if the tick's cursor had not been saved (a crash)
    assert failures.tick(alerts).startswith("1 failed run(s) recorded; 0 of 0")
    assert failures.rows()[run_id][:2] == ("delivered", 1) and webhook.requests == 1
    assert cursor_record_id(failures.cursor) > cursor_record_id(before)


def test_a_run_failure_sensor_cursor_is_resumed_from():
    # the cursor record_run_failures had as a run_failure_sensor, before it tracked alerts
    old = RunStatusSensorCursor(record_id=1234, record_timestamp=None).to_json()
    assert cursor_record_id(old) == 1234
    assert cursor_record_id(cursor_for(1234)) == 1234
    assert cursor_record_id(None) is None and cursor_record_id("garbage") is None


def test_failures_recorded_before_alerts_were_tracked_are_kept_and_not_posted(failures, webhook):
    schema = failures.schema
    run_sql(f'CREATE SCHEMA "{schema}"')
    run_sql(
        f'CREATE TABLE "{schema}".run_failures (run_id text PRIMARY KEY, job_name text NOT NULL,'
        " partitions text, failed_steps text NOT NULL, message text NOT NULL,"
        " failed_at timestamptz NOT NULL)"
    )
    run_sql(
        f"INSERT INTO \"{schema}\".run_failures VALUES ('old', 'collect_job', NULL, 'candles',"
        " 'boom', now())"
    )
    new = failures.fail_run()
    failures.tick(FailureAlerts(webhook_url=webhook.url))
    rows = failures.rows()
    assert rows["old"][:2] == ("untracked", 0) and rows[new][:2] == ("delivered", 1)
    assert [body["run_id"] for body in webhook.bodies] == [new]


def test_the_webhook_url_never_reaches_the_table_or_the_tick(failures, webhook):
    alerts = FailureAlerts(webhook_url=webhook.url, timeout_seconds=0.5, first_retry_seconds=0)
    failures.fail_run()
    messages = []
    for mode in ("hang", 500, "stop"):
        if mode == "stop":
            webhook.stop()
        else:
            webhook.mode = mode
        messages.append(failures.tick(alerts))
    webhook.start()
    errors = run_sql(f'SELECT alert_last_error FROM "{failures.schema}".run_failures')
    assert errors and all(TOKEN not in str(row) for row in errors)
    assert all(TOKEN not in message and "services" not in message for message in messages)


def test_credentials_in_the_webhook_url_are_sent_as_basic_auth_not_as_the_host(failures, webhook):
    # percent-encoded, as a password holding "@" or ":" must be in a URL
    alerts = FailureAlerts(webhook_url=webhook.url_with("alerts:PA%40SS%3Aword"))
    run_id = failures.fail_run()
    failures.tick(alerts)
    assert failures.rows()[run_id][:3] == ("delivered", 1, None)
    [headers] = webhook.headers
    assert headers["Host"] == f"127.0.0.1:{webhook.port}"
    assert headers["Authorization"] == "Basic " + base64.b64encode(b"alerts:PA@SS:word").decode()
    # a user alone (a token as the user name, as some services take it) has an empty password
    failures.fail_run(hour=6)
    failures.tick(FailureAlerts(webhook_url=webhook.url_with("T0KEN")))
    assert webhook.headers[1]["Authorization"] == "Basic " + base64.b64encode(b"T0KEN:").decode()


def test_webhook_credentials_never_show_in_an_attempts_error(failures, webhook):
    alerts = FailureAlerts(
        webhook_url=webhook.url_with("alerts:PASSWORD"), timeout_seconds=0.5,
        first_retry_seconds=0,
    )  # fmt: skip
    failures.fail_run()
    messages, errors = [], []
    for mode in ("hang", 500, 401, "stop"):
        failures.fail_run()
        if mode == "stop":
            webhook.stop()
        else:
            webhook.mode = mode
        messages.append(failures.tick(alerts))
        errors += [row[2] for row in failures.rows().values() if row[2]]
    webhook.start()
    assert len(errors) >= 4 and any("refused" in error for error in errors)
    for text in errors + messages:
        assert "PASSWORD" not in text and "alerts:" not in text and TOKEN not in text
    assert all(h["Authorization"].startswith("Basic ") for h in webhook.headers)


@op
def reach_exchange() -> None:
    # what ccxt raises for an exchange URL holding credentials: it quotes the whole URL
    raise RuntimeError(
        "NetworkError: binance GET http://key:APISEKRET@proxy.example/api/v3?apikey=APISEKRET"
    )


@job
def leaky_job() -> None:
    reach_exchange()


def test_urls_with_credentials_in_a_failure_are_redacted_in_the_table_and_the_alert(
    failures, webhook
):
    result = leaky_job.execute_in_process(instance=failures.instance, raise_on_error=False)
    failures.tick(FailureAlerts(webhook_url=webhook.url))
    [(message,)] = run_sql(
        f'SELECT message FROM "{failures.schema}".run_failures WHERE run_id = %s',
        (result.run_id,),
    )
    assert message.endswith("binance GET http://***@proxy.example/…?…")
    [body] = webhook.bodies
    assert "APISEKRET" not in json.dumps(body)


@op
def reach_exchange_by_path_token() -> None:
    # ccxt's message for an exchange URL with a token in its path
    raise RuntimeError("NetworkError: binance GET http://127.0.0.1:9/api/PATHSEKRET/exchangeInfo")


@job
def path_token_job() -> None:
    reach_exchange_by_path_token()


def test_a_token_in_a_urls_path_in_a_failure_is_redacted_in_the_table_and_the_alert(
    failures, webhook
):
    result = path_token_job.execute_in_process(instance=failures.instance, raise_on_error=False)
    failures.tick(FailureAlerts(webhook_url=webhook.url))
    [(message,)] = run_sql(
        f'SELECT message FROM "{failures.schema}".run_failures WHERE run_id = %s',
        (result.run_id,),
    )
    assert message.endswith("binance GET http://127.0.0.1:9/…")
    [body] = webhook.bodies
    assert "PATHSEKRET" not in json.dumps(body)


def eventually(what: Callable[[], object], timeout: float, description: str):
    """``what()`` once it is truthy, polled every half second."""
    deadline = time.monotonic() + timeout
    while not (result := what()):
        assert time.monotonic() < deadline, f"{description}: not after {timeout:g} s"
        time.sleep(0.5)
    return result


def sensor_ticks(live: Deployment, name: str) -> list[dict]:
    location, repository = live.client.repository()
    selector = {
        "repositoryLocationName": location,
        "repositoryName": repository,
        "sensorName": name,
    }
    data = live.client.query(
        "query Ticks($s: SensorSelector!) { sensorOrError(sensorSelector: $s) { ... on Sensor {"
        " sensorState { ticks(limit: 20) { status skipReason error { message } } } } } }",
        {"s": selector},
    )
    return data["sensorOrError"]["sensorState"]["ticks"]


@pytest.mark.live
def test_the_daemon_delivers_an_alert_once_a_refusing_webhook_recovers(tmp_path, webhook):
    """End to end: the daemon ticks the sensor in the code server; the webhook refuses at first,
    the alert waits as pending and is posted on a later tick after its backoff (2 s here, set
    as a deployment sets it; 30 s by default)."""
    schema = f"live_{uuid.uuid4().hex[:8]}"
    webhook.stop()
    env = {
        "CRYPTIFY_SCHEMA": schema, "CRYPTIFY_AUTOMATION": "off",
        "CRYPTIFY_ALERT_WEBHOOK_URL": webhook.url, "CRYPTIFY_ALERT_FIRST_RETRY_SECONDS": "2",
    }  # fmt: skip
    rows = (
        "SELECT alert_state, alert_attempts, alert_last_error, alert_next_attempt_at"
        f' FROM "{schema}".run_failures'
    )
    try:
        with live_deployment(tmp_path / "home", f"{schema}_dagster", env) as live:
            live.client.start_sensor("record_run_failures")
            eventually(lambda: sensor_ticks(live, "record_run_failures"), 60, "a first tick")
            run_id = live.client.launch_run("predict_job", partition="2025-03-03-05:00")
            assert live.wait_for_run(run_id).status == "FAILURE"  # no features, no models

            def tried():  # recorded, then posted once: two transactions
                exists = run_sql("SELECT to_regclass(%s)", (f'"{schema}".run_failures',))
                return exists != [(None,)] and run_sql(rows + " WHERE alert_attempts > 0")

            [(state, attempts, error, next_at)] = eventually(tried, 60, "recorded and tried")
            seen = datetime.now(UTC)
            assert (state, attempts) == ("pending", 1) and "refused" in error
            # retried 2 s after the attempt, which was made before it was seen: the setting
            # reached the sensor in the code server
            assert next_at <= seen + timedelta(seconds=2)
            webhook.start("ok")
            eventually(lambda: webhook.bodies, 90, "the alert delivered")
            assert [body["run_id"] for body in webhook.bodies] == [run_id]
            assert eventually(lambda: run_sql(rows)[0][0] == "delivered", 30, "delivered")
            errors = [t["error"] for t in sensor_ticks(live, "record_run_failures") if t["error"]]
            assert errors == []
    finally:
        run_sql(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        run_sql(f'DROP SCHEMA IF EXISTS "{schema}_dagster" CASCADE')
