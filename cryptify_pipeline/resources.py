"""Resources. Every environment reads its database and market source from the settings, so
the same definitions serve a laptop (embedded Postgres, sample market) and production."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import pandas as pd
from dagster import ConfigurableResource
from pydantic import Field

from cryptify_pipeline.database import database_url
from cryptify_pipeline.io import pg_tables
from cryptify_pipeline.io.database_url import DatabaseUrl
from cryptify_pipeline.io.postgres_io_manager import PostgresPandasIOManager
from cryptify_pipeline.io.run_failures import RunFailure, post_alert
from cryptify_pipeline.io.sources import CandleSource, source_for
from cryptify_pipeline.settings import get_settings


class MarketData(ConfigurableResource):
    """Where candles come from, and for which symbols."""

    source: str = Field(description="sample, file:<dir or glob>, or a ccxt exchange id")
    symbols: list[str] = Field(description="BASE/QUOTE pairs to collect")
    exchange_api_url: str | None = Field(
        default=None, description="Override of the exchange's REST base URL (proxies, tests)."
    )

    def candle_source(self) -> CandleSource:
        return source_for(self.source, self.exchange_api_url)


class PostgresDatabase(ConfigurableResource):
    """Read access to asset tables for checks and sensors; writes go through the IO manager."""

    database_url: str | None = Field(default=None, description="Default: the project database.")
    schema_: str | None = Field(default=None, alias="schema", description="Default: settings.")

    @property
    def schema_name(self) -> str:
        return self.schema_ or get_settings().schema

    def url(self) -> DatabaseUrl:
        return DatabaseUrl.parse(self.database_url) if self.database_url else database_url()

    def read_time_range(
        self, table: str, start: datetime, end: datetime, columns: Sequence[str] | None = None
    ) -> pd.DataFrame:
        """Rows of ``table`` with ``ts`` in [start, end), in one query."""
        with pg_tables.transaction(self.url()) as connection:
            return pg_tables.read_frame(
                connection,
                self.schema_name,
                table,
                columns,
                [pg_tables.TimeRange("ts", start, end)],
            )

    def latest_ts(self, table: str) -> datetime | None:
        with pg_tables.transaction(self.url()) as connection, connection.cursor() as cursor:
            cursor.execute(
                f"SELECT max(ts) FROM {pg_tables.qualified_name(self.schema_name, table)}"
            )
            (latest,) = cursor.fetchone()
        return latest


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


def build_resources(schema: str | None = None) -> dict[str, object]:
    settings = get_settings()
    return {
        "io_manager": PostgresPandasIOManager(schema=schema),
        "database": PostgresDatabase(schema=schema),
        "alerts": FailureAlerts(webhook_url=settings.alert_webhook_url),
        "market": MarketData(
            source=settings.source,
            symbols=list(settings.symbols),
            exchange_api_url=settings.exchange_api_url,
        ),
    }
