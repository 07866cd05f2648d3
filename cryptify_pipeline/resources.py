"""Resources: how runtime code (steps, checks, sensors) gets its settings.

``definitions.build_resources`` turns the settings into these once, when the definitions load,
so the same definitions serve a laptop (embedded Postgres, sample market) and production. URLs
that may hold secrets, and the model signing key, are passed as ``EnvVar``s: the UI shows the
variable's name, not its value. The alerts' resource lives with the alerts
(``automation/alerts.py``).
"""

from __future__ import annotations

from pathlib import Path

from dagster import ConfigurableResource
from pydantic import Field

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
)
from cryptify_pipeline.storage.resource import PostgresDatabase

__all__ = ["Forecasting", "MarketData", "ModelSigning", "PostgresDatabase"]


class MarketData(ConfigurableResource):
    """Where candles come from, for which symbols, and how far back they are checked."""

    source: str = Field(description="sample, file:<dir or glob>, or a ccxt exchange id")
    symbols: list[str] = Field(description="BASE/QUOTE pairs to collect")
    exchange_api_url: str | None = Field(
        default=None, description="Override of the exchange's REST base URL (proxies, tests)."
    )
    exchange_backoff_seconds: float = Field(
        default=1.0,
        gt=0,
        description=(
            "Wait before an exchange call's first retry of a transient error (doubling, with "
            "jitter, up to 4 attempts); tests shorten it."
        ),
    )
    step_retry_seconds: float = Field(
        default=10.0,
        gt=0,
        description=(
            "Wait before the candles step is retried once the in-call retries are spent "
            "(doubling per retry, with jitter, up to 3 retries); tests shorten it."
        ),
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
        return source_for(self.source, self.exchange_api_url, self.exchange_backoff_seconds)

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
