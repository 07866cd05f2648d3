"""Dagster instance storage on the project's Postgres, named in ``dagster.yaml``.

dagster-postgres wants a URL in its config, but ours comes from the settings precedence and may
be an embedded server started on demand, so this subclass resolves it when the instance loads
(in the webserver, the daemon and every run process alike). Dagster's tables live in their own
schema (``dagster`` by default) beside the asset tables.

Its run storage tags each run, as it starts, with the process executing it
(``run_process.RUN_PROCESS_TAG``), so that a run whose process was killed can be told from a
live one. Its event log stores the planned materialisations of a single-run backfill, one per
partition, in bulk (``PostgresEventLogBatchingPlans``): dagster-postgres stores them one by one.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Sequence
from datetime import datetime

import psycopg2
from dagster import DagsterEvent, DagsterEventType, EventLogEntry, Field, StringSource
from dagster._core.storage.event_log.schema import SqlEventLogStorageTable
from dagster._serdes import ConfigurableClassData
from dagster_postgres import DagsterPostgresStorage
from dagster_postgres.event_log import PostgresEventLogStorage
from dagster_postgres.run_storage import PostgresRunStorage
from psycopg2 import sql

from cryptify_pipeline.postgres_url import DatabaseUrl
from cryptify_pipeline.storage.run_process import RUN_PROCESS_TAG, RunProcess
from cryptify_pipeline.storage.server import database_url

DEFAULT_INSTANCE_SCHEMA = "dagster"


class PostgresEventLogBatchingPlans(PostgresEventLogStorage):
    """dagster-postgres's event log, storing a batch of planned materialisations as it stores
    a batch of materialisations: one INSERT of the events, then the asset's row from the last.

    It calls dagster-postgres's own batch helpers (``prepare_insert_event_batch``,
    ``_store_asset_event_tags``, ``_store_asset_event``), which are not public: the versions are
    pinned together in pyproject.toml, and the instance-storage tests fail if an upgrade moves them.

    A single-run backfill plans one materialisation per partition before the run starts, and
    Dagster hands them over in batches (``DAGSTER_EVENT_BATCH_SIZE``), but dagster-postgres
    stores such a batch event by event: an INSERT, a NOTIFY and a commit, then the asset's row
    in a transaction of its own, twice per partition. That was 63% of a features backfill over
    17,520 partitions (Performance). The rows written are the same (each event with its
    partition, which the UI's failed and in-progress partitions are read from); the asset's row
    (last run, last event time) is written once per asset with the values of its last event,
    as the per-event writes would leave it.
    """

    def store_event_batch(self, events: Sequence[EventLogEntry]) -> None:
        for planned, group in itertools.groupby(events, key=_is_planned_materialization):
            batch = list(group)
            if planned and len(batch) > 1:
                self._store_planned_batch(batch)
            else:
                super().store_event_batch(batch)

    def _store_planned_batch(self, events: list[EventLogEntry]) -> None:
        statement = self.prepare_insert_event_batch(events)
        with self._connect() as connection:
            result = connection.execute(statement.returning(SqlEventLogStorageTable.c.id))
            event_ids = [int(row[0]) for row in result.fetchall()]
        last_by_asset = {
            event.get_dagster_event().asset_key: (event, event_id)
            for event, event_id in zip(events, event_ids, strict=True)
        }
        with self.index_transaction() as connection:
            self._store_asset_event_tags(connection, events, event_ids)
            for event, event_id in last_by_asset.values():
                self._store_asset_event(connection, event, event_id)


class PostgresRunStorageTaggingProcesses(PostgresRunStorage):
    """dagster-postgres's run storage, tagging a run with the process that starts executing it.

    The run's start event is handled in the process that executes the run (the run worker,
    ``dagster asset materialize``, the bootstrap), whatever started it: the one place that
    sees every run's process. Dagster keeps the pid in the run's events, but not the machine.
    """

    def handle_run_event(
        self, run_id: str, event: DagsterEvent, update_timestamp: datetime | None = None
    ) -> None:
        super().handle_run_event(run_id, event, update_timestamp)
        # an event handed over from another process names a process this one cannot describe
        if event.event_type == DagsterEventType.RUN_START and event.pid == os.getpid():
            self.add_run_tags(run_id, {RUN_PROCESS_TAG: RunProcess.current().tag_value()})


def _is_planned_materialization(event: EventLogEntry) -> bool:
    return event.get_dagster_event().event_type == DagsterEventType.ASSET_MATERIALIZATION_PLANNED


class CryptifyPostgresStorage(DagsterPostgresStorage):
    """``DagsterPostgresStorage`` on the configured (or embedded) database."""

    def __init__(
        self,
        postgres_url: str,
        should_autocreate_tables: bool = True,
        inst_data: ConfigurableClassData | None = None,
    ):
        super().__init__(postgres_url, should_autocreate_tables, inst_data)
        # the parent created the tables; the replacements only connect when used
        self._run_storage.dispose()
        self._run_storage = PostgresRunStorageTaggingProcesses(
            postgres_url, should_autocreate_tables=False
        )
        self._event_log_storage.dispose()
        self._event_log_storage = PostgresEventLogBatchingPlans(
            postgres_url, should_autocreate_tables=False
        )

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
