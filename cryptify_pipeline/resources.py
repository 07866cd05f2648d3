"""Resources: how runtime code (steps, checks, sensors) gets its settings.

``build_resources`` turns the settings into resources once, when the definitions load, so the
same definitions serve a laptop (embedded Postgres, sample market) and production. URLs that
may hold secrets are passed as ``EnvVar``s: the UI shows the variable's name, not its value.
"""

from __future__ import annotations

from dagster import ConfigurableResource, EnvVar
from pydantic import Field

from cryptify_pipeline.automation.failures import RunFailure, post_alert
from cryptify_pipeline.market.sources import CandleSource, source_for
from cryptify_pipeline.settings import (
    DEFAULT_GAP_REPAIR_DAYS,
    DEFAULT_INTERVAL_LEVEL,
    DEFAULT_PRICE_JUMP_BOUND,
    Settings,
)
from cryptify_pipeline.storage.database import PostgresDatabase
from cryptify_pipeline.storage.io_manager import PostgresPandasIOManager

__all__ = ["FailureAlerts", "Forecasting", "MarketData", "PostgresDatabase", "build_resources"]


class MarketData(ConfigurableResource):
    """Where candles come from, for which symbols, and how far back they are checked."""

    source: str = Field(description="sample, file:<dir or glob>, or a ccxt exchange id")
    symbols: list[str] = Field(description="BASE/QUOTE pairs to collect")
    exchange_api_url: str | None = Field(
        default=None, description="Override of the exchange's REST base URL (proxies, tests)."
    )
    gap_repair_days: int = Field(
        default=DEFAULT_GAP_REPAIR_DAYS, description="Days gap repair and the checks look back."
    )
    price_jump_bound: float = Field(
        default=DEFAULT_PRICE_JUMP_BOUND, description="|hourly log return| the jump check flags."
    )

    def candle_source(self) -> CandleSource:
        return source_for(self.source, self.exchange_api_url)


class Forecasting(ConfigurableResource):
    """How forecasts are made: the coverage level their intervals are calibrated for."""

    interval_level: float = Field(
        default=DEFAULT_INTERVAL_LEVEL,
        description="Coverage the intervals are calibrated for (CRYPTIFY_INTERVAL_LEVEL).",
    )


class FailureAlerts(ConfigurableResource):
    """Where run failures are announced beyond the log and the run_failures table."""

    webhook_url: str | None = Field(
        default=None, description="POSTed a JSON body per failed run (Slack-compatible text)."
    )

    def send(self, failure: RunFailure) -> bool:
        """Post ``failure``; False when no webhook is configured."""
        if not self.webhook_url:
            return False
        post_alert(self.webhook_url, failure)
        return True


def _env_or_none(name: str, value: str | None) -> EnvVar | None:
    return EnvVar(name) if value is not None else None


def build_resources(settings: Settings) -> dict[str, object]:
    database = PostgresDatabase.from_settings(settings.database, settings.schema)
    return {
        "io_manager": PostgresPandasIOManager(database=database),
        "database": database,
        "alerts": FailureAlerts(
            webhook_url=_env_or_none("CRYPTIFY_ALERT_WEBHOOK_URL", settings.alert_webhook_url)
        ),
        "market": MarketData(
            source=settings.source,
            symbols=list(settings.symbols),
            exchange_api_url=_env_or_none("CRYPTIFY_EXCHANGE_API_URL", settings.exchange_api_url),
            gap_repair_days=settings.gap_repair_days,
            price_jump_bound=settings.price_jump_bound,
        ),
        "forecasting": Forecasting(interval_level=settings.interval_level),
    }
