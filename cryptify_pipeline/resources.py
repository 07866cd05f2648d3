"""Resources: how runtime code (steps, checks, sensors) gets its settings.

``build_resources`` turns the settings into resources once, when the definitions load, so the
same definitions serve a laptop (embedded Postgres, sample market) and production. URLs that
may hold secrets, and the model signing key, are passed as ``EnvVar``s: the UI shows the
variable's name, not its value.
"""

from __future__ import annotations

from pathlib import Path

from dagster import ConfigurableResource, EnvVar
from pydantic import Field

from cryptify_pipeline.automation.alerts import AlertPolicy, Attempt, deliver_due_alerts
from cryptify_pipeline.automation.failures import NOT_CONFIGURED, PENDING
from cryptify_pipeline.market.context_sources import (
    DerivativesSource,
    EquityIndexSource,
    derivatives_source_for,
    equity_index_source_for,
)
from cryptify_pipeline.market.sources import CandleSource, source_for
from cryptify_pipeline.ml.signing import SigningKey, SigningKeyError, read_or_create_key_file
from cryptify_pipeline.ml.training import default_training_jobs
from cryptify_pipeline.settings import (
    DEFAULT_EQUITY_INDEXES,
    DEFAULT_GAP_REPAIR_DAYS,
    DEFAULT_INTERVAL_LEVEL,
    DEFAULT_PRICE_JUMP_BOUND,
    Settings,
)
from cryptify_pipeline.storage.database import PostgresDatabase
from cryptify_pipeline.storage.io_manager import PostgresPandasIOManager

__all__ = [
    "FailureAlerts",
    "Forecasting",
    "MarketData",
    "ModelSigning",
    "PostgresDatabase",
    "build_resources",
]


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
    context_source: str = Field(
        default="sample",
        description="Open interest and funding: sample, none, or a ccxt exchange id (bybit).",
    )
    context_api_url: str | None = Field(
        default=None, description="Override of the context exchange's REST base URL (tests)."
    )
    equity_index_source_setting: str = Field(
        default="sample", description="Equity indexes: sample, none, yfinance or file:<dir>."
    )
    equity_indexes: list[str] = Field(
        default=list(DEFAULT_EQUITY_INDEXES), description="Index futures to collect (ES=F)."
    )

    def candle_source(self) -> CandleSource:
        return source_for(self.source, self.exchange_api_url)

    def derivatives_source(self) -> DerivativesSource | None:
        """None when CRYPTIFY_CONTEXT_SOURCE=none."""
        return derivatives_source_for(self.context_source, self.context_api_url)

    def equity_index_source(self) -> EquityIndexSource | None:
        """None when CRYPTIFY_EQUITY_INDEX_SOURCE=none."""
        return equity_index_source_for(self.equity_index_source_setting)


class Forecasting(ConfigurableResource):
    """How forecasts are made: the coverage level their intervals are calibrated for, and how
    many processes train a day's symbols."""

    interval_level: float = Field(
        default=DEFAULT_INTERVAL_LEVEL,
        description="Coverage the intervals are calibrated for (CRYPTIFY_INTERVAL_LEVEL).",
    )
    training_jobs: int | None = Field(
        default=None,
        ge=1,
        description=(
            "Processes that train symbols in parallel (CRYPTIFY_TRAINING_JOBS); unset: the "
            "cores of the machine the run is on, minus one, at least one."
        ),
    )

    def jobs(self) -> int:
        return self.training_jobs or default_training_jobs()


_ALERTS = AlertPolicy()


class FailureAlerts(ConfigurableResource):
    """Where run failures are announced beyond the log and the run_failures table, and how
    hard: each alert is retried with backoff until delivered or ``max_attempts`` is reached."""

    # Its path or query is the webhook's token: build_resources passes it as an EnvVar, and
    # the UI masks it even when given as a value.
    webhook_url: str | None = Field(
        default=None,
        description="POSTed a JSON body per failed run (Slack-compatible text).",
        json_schema_extra={"dagster__is_secret": True},
    )
    timeout_seconds: float = Field(
        default=_ALERTS.timeout_seconds, description="How long one POST waits for an answer."
    )
    max_attempts: int = Field(
        default=_ALERTS.max_attempts, description="Attempts per alert before it is given up."
    )
    first_retry_seconds: float = Field(
        default=_ALERTS.first_retry_seconds,
        description="Wait after the first failed attempt; doubled after each next one.",
    )
    max_retry_seconds: float = Field(
        default=_ALERTS.max_retry_seconds, description="Longest wait between two attempts."
    )
    tick_budget_seconds: float = Field(
        default=_ALERTS.tick_budget_seconds,
        description="Time a sensor tick may spend posting alerts.",
    )

    def policy(self) -> AlertPolicy:
        return AlertPolicy(
            timeout_seconds=self.timeout_seconds, max_attempts=self.max_attempts,
            first_retry_seconds=self.first_retry_seconds, max_retry_seconds=self.max_retry_seconds,
            tick_budget_seconds=self.tick_budget_seconds,
        )  # fmt: skip

    def state_of_new_alerts(self) -> str:
        """PENDING when there is a webhook to post to, else NOT_CONFIGURED."""
        return PENDING if self.webhook_url else NOT_CONFIGURED

    def deliver_due(self, database: PostgresDatabase) -> list[Attempt]:
        """Post the alerts whose next attempt is due (none without a webhook)."""
        if not self.webhook_url:
            return []
        url = database.connection_url()
        return deliver_due_alerts(url, database.schema_name, self.webhook_url, self.policy())


class ModelSigning(ConfigurableResource):
    """The key models are signed with when trained and verified with before they are loaded.

    ``key`` is CRYPTIFY_MODEL_SIGNING_KEY, passed as an EnvVar so the UI never shows it; without
    it, the key in ``key_file``, created (mode 0600) by the first process that needs it. Every
    process of a deployment (webserver, daemon, code server, runs) must see the same key.
    """

    key: str | None = Field(
        default=None, description="The key as hex or base64 (CRYPTIFY_MODEL_SIGNING_KEY)."
    )
    key_file: str | None = Field(
        default=None, description="File holding the key when the variable is unset."
    )

    def signing_key(self) -> SigningKey:
        if self.key:
            try:
                return SigningKey.parse(self.key)
            except SigningKeyError as error:  # its message never holds the key
                raise SigningKeyError(f"CRYPTIFY_MODEL_SIGNING_KEY: {error}") from None
        if self.key_file:
            return read_or_create_key_file(Path(self.key_file).expanduser())
        raise ValueError("ModelSigning needs a key or a key_file")


def _env_or_none(name: str, value: object | None) -> EnvVar | None:
    return EnvVar(name) if value is not None else None


def build_resources(settings: Settings) -> dict[str, object]:
    database = PostgresDatabase.from_settings(settings.database, settings.schema)
    return {
        "io_manager": PostgresPandasIOManager(database=database),
        "database": database,
        "alerts": FailureAlerts(
            webhook_url=_env_or_none("CRYPTIFY_ALERT_WEBHOOK_URL", settings.alert_webhook_url),
            first_retry_seconds=settings.alert_first_retry_seconds,
        ),
        "market": MarketData(
            source=settings.source,
            symbols=list(settings.symbols),
            exchange_api_url=_env_or_none("CRYPTIFY_EXCHANGE_API_URL", settings.exchange_api_url),
            gap_repair_days=settings.gap_repair_days,
            price_jump_bound=settings.price_jump_bound,
            context_source=settings.context_source,
            context_api_url=_env_or_none("CRYPTIFY_CONTEXT_API_URL", settings.context_api_url),
            equity_index_source_setting=settings.equity_index_source,
            equity_indexes=list(settings.equity_indexes),
        ),
        "model_signing": ModelSigning(
            key=_env_or_none("CRYPTIFY_MODEL_SIGNING_KEY", settings.model_signing_key),
            key_file=None if settings.model_signing_key else str(settings.model_signing_key_file),
        ),
        "forecasting": Forecasting(
            interval_level=settings.interval_level, training_jobs=settings.training_jobs
        ),
    }
