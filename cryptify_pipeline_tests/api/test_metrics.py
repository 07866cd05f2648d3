"""``/metrics``: the ages, scores and run counts read from the tables the pipeline wrote, the
API's own requests; and a real Prometheus scraping a real ``cryptify api`` and evaluating the
shipped stale-candles alert."""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import time
import urllib.parse
import urllib.request
from datetime import timedelta
from pathlib import Path

import pytest
import yaml
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from cryptify_pipeline.api.app import create_app
from cryptify_pipeline.api.queries import Database
from cryptify_pipeline.settings import project_root
from cryptify_pipeline_tests.api.conftest import LAST_CANDLE
from cryptify_pipeline_tests.api.test_app import NOW, SETTINGS, client_for
from cryptify_pipeline_tests.support.database import run_sql, suite_database_url
from cryptify_pipeline_tests.support.live_api import live_api
from cryptify_pipeline_tests.support.live_deployment import free_port

PROMETHEUS_CONFIG = project_root() / "docker" / "prometheus"


def samples(text: str) -> dict[tuple[str, frozenset], float]:
    """(sample name, its labels) -> value, from Prometheus' text format."""
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(found: dict, name: str, **labels: str) -> float:
    return found[name, frozenset(labels.items())]


def scrape(forecast_tables: str, instance_schema: str, clock=lambda: NOW, calls=()) -> dict:
    """The samples of ``/metrics`` at ``clock()``, after GETs of ``calls``."""
    database = Database(suite_database_url(), forecast_tables, instance_schema=instance_schema)
    with TestClient(create_app(SETTINGS, database, clock=clock)) as client:
        for path in calls:
            client.get(path)
        response = client.get("/metrics")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain; version=")
    return samples(response.text)


def test_ages_of_the_newest_candle_and_forecast(forecast_tables, instance_schema):
    found = scrape(forecast_tables, instance_schema)
    # NOW is 20 minutes after the newest candle (and the newest forecast's hour) closed
    for symbol in ("BTC/USDT", "ETH/USDT"):
        assert value(found, "cryptify_candle_age_seconds", symbol=symbol) == 20 * 60
        assert value(found, "cryptify_forecast_age_seconds", symbol=symbol) == 20 * 60
    later = scrape(forecast_tables, instance_schema, clock=lambda: NOW + timedelta(hours=3))
    assert value(later, "cryptify_candle_age_seconds", symbol="BTC/USDT") == 3 * 3600 + 20 * 60


def test_scores_pooled_over_the_recent_days(forecast_tables, instance_schema):
    found = scrape(forecast_tables, instance_schema)
    rows = run_sql(
        "SELECT symbol, model, horizon_h, sum(n)::float8, sum(sse), sum(sum_abs_error),"
        " sum(sum_y2), sum(covered)::float8, sum(interval_n)::float8"
        f' FROM "{forecast_tables}".forecast_metrics GROUP BY 1, 2, 3'
    )
    assert rows
    for symbol, model, horizon, n, sse, abs_error, sum_y2, covered, interval_n in rows:
        key = {"symbol": symbol, "model": model, "horizon": str(horizon)}
        assert value(found, "cryptify_forecast_scored", **key) == n
        assert math.isclose(value(found, "cryptify_forecast_rmse", **key), math.sqrt(sse / n))
        assert math.isclose(value(found, "cryptify_forecast_mae", **key), abs_error / n)
        skill = value(found, "cryptify_forecast_skill_vs_zero", **key)
        assert math.isclose(skill, 1 - math.sqrt(sse / sum_y2))
        if interval_n:
            coverage = value(found, "cryptify_forecast_interval_coverage", **key)
            assert math.isclose(coverage, covered / interval_n)
        else:
            assert ("cryptify_forecast_interval_coverage", frozenset(key.items())) not in found


def test_runs_by_job_and_status_from_the_instance_tables(forecast_tables, instance_schema):
    found = scrape(forecast_tables, instance_schema)
    stored = run_sql(
        f'SELECT pipeline_name, status, count(*) FROM "{instance_schema}".runs GROUP BY 1, 2'
    )
    assert stored
    for job, status, count in stored:
        assert value(found, "cryptify_dagster_runs", job=job, status=status) == count
    assert value(found, "cryptify_metrics_source_up", source="runs") == 1


def test_an_unreadable_source_is_reported_and_the_rest_still_served(forecast_tables):
    found = scrape(forecast_tables, "no_such_instance")
    assert value(found, "cryptify_metrics_source_up", source="runs") == 0
    assert value(found, "cryptify_metrics_source_up", source="freshness") == 1
    assert not [name for name, _ in found if name == "cryptify_dagster_runs"]
    assert value(found, "cryptify_candle_age_seconds", symbol="BTC/USDT") == 20 * 60


def test_requests_are_counted_by_route_template(forecast_tables, instance_schema):
    calls = ("/health", "/health", "/predict/ridge/6", "/predict/ridge/7", "/nowhere")
    found = scrape(forecast_tables, instance_schema, calls=calls)
    count = "cryptify_api_requests_total"
    assert value(found, count, method="GET", route="/health", status="200") == 2
    route = "/predict/{model}/{horizon}"
    assert value(found, count, method="GET", route=route, status="200") == 1
    assert value(found, count, method="GET", route=route, status="422") == 1
    assert value(found, count, method="GET", route="unmatched", status="404") == 1
    latency = "cryptify_api_request_duration_seconds_count"
    assert value(found, latency, method="GET", route="/health") == 2


def test_metrics_is_not_a_data_operation(forecast_tables):
    with client_for(forecast_tables) as client:
        assert "/metrics" not in client.get("/openapi.json").json()["paths"]


# -- a real Prometheus ---------------------------------------------------------------------


def prometheus_get(base: str, path: str, **query: str) -> dict:
    url = f"{base}{path}?{urllib.parse.urlencode(query)}" if query else f"{base}{path}"
    with urllib.request.urlopen(url, timeout=10) as response:
        body = json.loads(response.read())
    assert body["status"] == "success", body
    return body["data"]


def eventually(found, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if result := found():
            return result
        time.sleep(0.5)
    raise AssertionError(f"not within {timeout:g} s: {what}")


@pytest.fixture
def prometheus(tmp_path: Path):
    """``start(target)``: Debian's prometheus on loopback scraping ``target`` every second,
    with the shipped alert rules (their ``for`` cut to 0 s); its base URL."""
    binary = shutil.which("prometheus")
    if binary is None:
        pytest.skip("prometheus is not installed (apt-get install prometheus; .ci/run does)")
    processes: list[subprocess.Popen] = []

    def start(target: str) -> str:
        rules = yaml.safe_load((PROMETHEUS_CONFIG / "alerts.yml").read_text())
        for group in rules["groups"]:
            group["interval"] = "1s"
            for rule in group["rules"]:
                rule["for"] = "0s"
        (tmp_path / "alerts.yml").write_text(yaml.safe_dump(rules))
        config = yaml.safe_load((PROMETHEUS_CONFIG / "prometheus.yml").read_text())
        config["global"] = {"scrape_interval": "1s", "evaluation_interval": "1s"}
        [job] = config["scrape_configs"]
        job["static_configs"] = [{"targets": [target]}]
        (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
        port = free_port()
        processes.append(
            subprocess.Popen(
                [binary, f"--config.file={tmp_path / 'prometheus.yml'}",
                 f"--storage.tsdb.path={tmp_path / 'data'}",
                 f"--web.listen-address=127.0.0.1:{port}"],
                stdout=(tmp_path / "prometheus.log").open("w"), stderr=subprocess.STDOUT,
            )
        )  # fmt: skip
        base = f"http://127.0.0.1:{port}"

        def ready() -> bool:
            try:
                with urllib.request.urlopen(f"{base}/-/ready", timeout=2) as response:
                    return response.status == 200
            except OSError:
                return False

        eventually(ready, 60, "prometheus ready")
        return base

    yield start
    for process in processes:
        process.terminate()
        process.wait(20)


@pytest.mark.live
def test_prometheus_scrapes_the_api_and_fires_the_stale_candles_alert(
    forecast_tables, instance_schema, prometheus, tmp_path
):
    env = {"CRYPTIFY_SYMBOLS": "BTC/USDT,ETH/USDT", "CRYPTIFY_INSTANCE_SCHEMA": instance_schema}
    with live_api(forecast_tables, tmp_path / "api.log", **env) as api:
        base = prometheus(api.url.removeprefix("http://"))

        def scraped() -> list:
            return prometheus_get(base, "/api/v1/query", query="cryptify_candle_age_seconds")[
                "result"
            ]

        ages = eventually(lambda: len(scraped()) == 2 and scraped(), 60, "the API scraped")
        # the fixture's candles are from January 2025: with the real clock they are stale
        newest_close = (LAST_CANDLE + timedelta(hours=1)).timestamp()
        for sample in ages:
            at, age = sample["value"]
            assert math.isclose(float(age), at - newest_close, abs_tol=2)
        up = prometheus_get(base, "/api/v1/query", query='up{job="cryptify_api"}')["result"]
        assert [sample["value"][1] for sample in up] == ["1"]

        def firing() -> list:
            alerts = prometheus_get(base, "/api/v1/alerts")["alerts"]
            return [
                alert["labels"]["symbol"] for alert in alerts
                if alert["labels"]["alertname"] == "CryptifyCandlesStale"
                and alert["state"] == "firing"
            ]  # fmt: skip

        assert sorted(eventually(lambda: len(firing()) == 2 and firing(), 60, "alert firing")) == [
            "BTC/USDT", "ETH/USDT",
        ]  # fmt: skip
        # the runs and source metrics are scraped too; no source is unreadable
        unreadable = prometheus_get(base, "/api/v1/query", query="cryptify_metrics_source_up == 0")
        assert unreadable["result"] == []
