"""Dagster instance storage on the project's Postgres, named in ``dagster.yaml``.

dagster-postgres wants a URL in its config, but ours comes from the settings precedence and may
be an embedded server started on demand, so this subclass resolves it when the instance loads
(in the webserver, the daemon and every run process alike). Dagster's tables live in their own
schema (``dagster`` by default) beside the asset tables.
"""

from __future__ import annotations

import psycopg2
from dagster import Field, StringSource
from dagster._serdes import ConfigurableClassData
from dagster_postgres import DagsterPostgresStorage
from psycopg2 import sql

from cryptify_pipeline.storage.database_url import database_url
from cryptify_pipeline.storage.urls import DatabaseUrl

DEFAULT_INSTANCE_SCHEMA = "dagster"


class CryptifyPostgresStorage(DagsterPostgresStorage):
    """``DagsterPostgresStorage`` on the configured (or embedded) database."""

    @classmethod
    def config_type(cls):
        return {
            "schema": Field(
                StringSource,
                is_required=False,
                default_value=DEFAULT_INSTANCE_SCHEMA,
                description="Schema for Dagster's run, event log and schedule tables.",
            ),
            "url": Field(
                StringSource,
                is_required=False,
                description="Postgres URL; default: the project's database (DATABASE_URL, "
                "DB_*, or the embedded server).",
            ),
        }

    @classmethod
    def from_config_value(  # type: ignore[override]
        cls, inst_data: ConfigurableClassData | None, config_value
    ) -> CryptifyPostgresStorage:
        url = DatabaseUrl.parse(config_value["url"]) if config_value.get("url") else database_url()
        schema = config_value.get("schema", DEFAULT_INSTANCE_SCHEMA)
        _ensure_schema(url, schema)
        storage = cls(postgres_url=url.with_search_path(schema).sqlalchemy, inst_data=inst_data)
        storage.hold_connections()
        return storage

    def hold_connections(self) -> None:
        """Keep a small connection pool instead of dagster-postgres's connection per statement.

        dagster-postgres defaults to NullPool, a new connection for every event it stores; a
        single-run backfill stores a few events per partition, so connecting dominated: a year
        of hourly partitions spent ~3x longer in Dagster's bookkeeping than with a pool. This is
        the pool the webserver gets (``optimize_for_webserver``), with no statement timeout.
        """
        for part in (self._run_storage, self._event_log_storage, self._schedule_storage):
            part.optimize_for_webserver(statement_timeout=0, pool_recycle=3600, max_overflow=10)

    # The parent describes its parts as dagster_postgres classes built from *its* config
    # shape; ours has a different shape, and Dagster wraps custom storage itself.
    @property
    def event_storage_data(self) -> ConfigurableClassData | None:
        return None

    @property
    def run_storage_data(self) -> ConfigurableClassData | None:
        return None

    @property
    def schedule_storage_data(self) -> ConfigurableClassData | None:
        return None


def _ensure_schema(url: DatabaseUrl, schema: str) -> None:
    with url.errors_redacted():
        connection = psycopg2.connect(url.libpq)
    try:
        with connection, connection.cursor() as cursor:
            # Serialises concurrent first starts (webserver and daemon start together).
            cursor.execute("SELECT pg_advisory_xact_lock(hashtext('cryptify-ddl'))")
            cursor.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(schema)))
    finally:
        connection.close()
