"""``/metrics`` for Prometheus: how fresh the candles and forecasts are, how good the forecasts
have been lately, how the pipeline's runs ended, and the API's own requests.

Everything but the request metrics is read from the database at scrape time: the ages of the
newest candle and forecast per symbol, per symbol, model and horizon the scores pooled over the
last ``SCORED_DAYS`` scored days (``forecast_metrics``), and the runs in the Dagster instance's
run table by job and status. A source that cannot be read leaves its metrics out of that
scrape and sets ``cryptify_metrics_source_up{source}`` to 0, so the rest is still scraped.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from cryptify_pipeline.api.queries import Database, DatabaseUnavailable
from cryptify_pipeline.hours import HOUR

SCORED_DAYS = 7
_LOG = logging.getLogger(__name__)


class PipelineCollector(Collector):
    """The metrics read from the database, computed at each scrape."""

    def __init__(
        self, database: Database, symbols: Sequence[str], clock: Callable[[], datetime]
    ) -> None:
        self.database = database
        self.symbols = list(symbols)
        self.clock = clock

    def collect(self) -> Iterator[Metric]:
        now = self.clock()
        up = GaugeMetricFamily(
            "cryptify_metrics_source_up",
            "1 when the source of these metrics was read at this scrape, 0 when it could not "
            "be (the API's log says why)",
            labels=["source"],
        )
        sources = (("freshness", self._ages), ("scores", self._scores), ("runs", self._runs))
        for source, read in sources:
            try:
                families = list(read(now))
            except DatabaseUnavailable as error:
                _LOG.warning("metrics of %s not read: %s", source, error)
                up.add_metric([source], 0)
                continue
            up.add_metric([source], 1)
            yield from families
        yield up

    def _ages(self, now: datetime) -> Iterator[Metric]:
        for table, name, what in (
            ("candles", "cryptify_candle_age_seconds", "the newest stored candle"),
            ("predictions", "cryptify_forecast_age_seconds", "the newest forecast's hour"),
        ):
            family = GaugeMetricFamily(
                name, f"Seconds since {what} closed, per symbol; +Inf when there is none",
                labels=["symbol"],
            )  # fmt: skip
            for symbol, latest in self.database.latest_by_symbol(table, self.symbols).items():
                age = math.inf if latest is None else (now - (latest + HOUR)).total_seconds()
                family.add_metric([symbol], age)
            yield family

    def _scores(self, now: datetime) -> Iterator[Metric]:
        labels = ["symbol", "model", "horizon"]
        window = f"over each symbol's last {SCORED_DAYS} scored days"
        rmse = GaugeMetricFamily(
            "cryptify_forecast_rmse", f"RMSE of the log-return forecasts {window}", labels=labels
        )
        mae = GaugeMetricFamily(
            "cryptify_forecast_mae", f"MAE of the log-return forecasts {window}", labels=labels
        )
        skill = GaugeMetricFamily(
            "cryptify_forecast_skill_vs_zero",
            f"1 - RMSE / RMSE of the zero forecast on the same rows {window}: > 0 beats it",
            labels=labels,
        )
        coverage = GaugeMetricFamily(
            "cryptify_forecast_interval_coverage",
            f"Share of realised prices inside the forecast intervals {window}",
            labels=labels,
        )
        scored = GaugeMetricFamily(
            "cryptify_forecast_scored", f"Forecasts scored {window}", labels=labels
        )
        for row in self.database.recent_scores(SCORED_DAYS):
            symbol, model, horizon, n, sse, abs_error, sum_y2, covered, interval_n, _ = row
            if not n:
                continue
            key = [symbol, model, str(horizon)]
            scored.add_metric(key, float(n))
            rmse.add_metric(key, math.sqrt(sse / n))
            mae.add_metric(key, abs_error / n)
            if sum_y2:
                skill.add_metric(key, 1 - math.sqrt(sse / sum_y2))
            if interval_n:
                coverage.add_metric(key, covered / interval_n)
        yield from (rmse, mae, skill, coverage, scored)

    def _runs(self, now: datetime) -> Iterator[Metric]:
        runs = GaugeMetricFamily(
            "cryptify_dagster_runs",
            "Runs in the Dagster instance's storage, by job and status (SUCCESS, FAILURE, ...)",
            labels=["job", "status"],
        )
        for job, status, count in self.database.run_counts():
            runs.add_metric([job, status], float(count))
        yield runs


class ApiMetrics:
    """The registry ``/metrics`` serves: the pipeline's metrics and the API's requests."""

    def __init__(
        self, database: Database, symbols: Sequence[str], clock: Callable[[], datetime]
    ) -> None:
        # one registry per app (not the global one): tests build many apps in one process
        self.registry = CollectorRegistry(auto_describe=True)
        self.registry.register(PipelineCollector(database, symbols, clock))
        self.requests = Counter(
            "cryptify_api_requests",
            "Requests answered, by method, route template and status",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "cryptify_api_request_duration_seconds",
            "Time to answer a request, by method and route template",
            ["method", "route"],
            registry=self.registry,
        )

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        self.requests.labels(method, route, str(status)).inc()
        self.latency.labels(method, route).observe(seconds)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
