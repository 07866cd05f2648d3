"""Failed runs: what went wrong, read from the instance, and the ``run_failures`` table.

Dagster keeps every run's events; this table is the short list an operator (or a dashboard
outside Dagster) reads: which job, which partitions, which steps, what went wrong, and whether
the alert about it reached the webhook (``alerts.py`` delivers it; the table is its queue).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import adbc_driver_postgresql.dbapi as adbc
from dagster import (
    DagsterEvent,
    DagsterEventType,
    DagsterInstance,
    DagsterRun,
    RunStatusChangeRecordsFilter,
)

from cryptify_pipeline.redaction import redact_urls
from cryptify_pipeline.run_tags import describe_partitions
from cryptify_pipeline.storage.pg_tables import ensure_schema, qualified_name, table_columns

if TYPE_CHECKING:
    from dagster._utils.error import SerializableErrorInfo

TABLE = "run_failures"

# alert_state: where the alert about a failure stands.
PENDING = "pending"  # to be posted at alert_next_attempt_at
DELIVERED = "delivered"  # the webhook answered 2xx
GAVE_UP = "gave_up"  # attempts exhausted, or the webhook refused it for good (4xx)
NOT_CONFIGURED = "not_configured"  # no webhook when the failure was recorded
UNTRACKED = "untracked"  # recorded before delivery was tracked: never posted again
ALERT_STATES = (PENDING, DELIVERED, GAVE_UP, NOT_CONFIGURED, UNTRACKED)


@dataclass(frozen=True)
class RunFailure:
    run_id: str
    job_name: str
    partitions: str | None  # a key, "first...last", or None when unpartitioned
    failed_steps: tuple[str, ...]
    message: str
    failed_at: datetime


@dataclass(frozen=True)
class FailureEvent:
    """A run's failure event in the instance's event log, with the run it belongs to (None
    when the run has since been deleted)."""

    record_id: int
    run: DagsterRun | None
    event: DagsterEvent


@dataclass(frozen=True)
class PendingAlert:
    failure: RunFailure
    attempts: int  # made so far


def failure_events_after(
    instance: DagsterInstance, record_id: int, limit: int
) -> list[FailureEvent]:
    """Run failures stored after event ``record_id``, oldest first."""
    records = instance.fetch_run_status_changes(
        RunStatusChangeRecordsFilter(DagsterEventType.RUN_FAILURE, after_storage_id=record_id),
        limit=limit,
        ascending=True,
    ).records
    return [
        FailureEvent(record.storage_id, instance.get_run_by_id(entry.run_id), entry.dagster_event)
        for record in records
        if (entry := record.event_log_entry).dagster_event is not None
    ]


def latest_failure_record_id(instance: DagsterInstance) -> int:
    """The newest run failure's event id, or -1 when no run has failed yet."""
    records = instance.fetch_run_status_changes(DagsterEventType.RUN_FAILURE, limit=1).records
    return records[0].storage_id if records else -1


def cursor_record_id(cursor: str | None) -> int | None:
    """The last failure event a sensor cursor has seen, or None for a new sensor.

    The cursor is ``{"record_id": N}``, the field Dagster's own run-status sensor cursors
    carry, so a deployment upgraded from a ``run_failure_sensor`` resumes where it was.
    """
    try:
        record_id = json.loads(cursor or "null")["record_id"]
    except (ValueError, TypeError, KeyError):
        return None
    return record_id if isinstance(record_id, int) else None


def cursor_for(record_id: int) -> str:
    return json.dumps({"record_id": record_id})


def describe_failure(
    instance: DagsterInstance, run: DagsterRun, failure_event: DagsterEvent
) -> RunFailure:
    """The failed run: its partitions, failed steps and the first step error, with any URL
    holding credentials or a query redacted (it is stored, logged and posted)."""
    steps = [
        record.event_log_entry.dagster_event
        for record in instance.get_records_for_run(
            run.run_id, of_type=DagsterEventType.STEP_FAILURE
        ).records
        if record.event_log_entry.dagster_event is not None
    ]
    errors = [
        _own_error(step.event_specific_data.error)
        for step in steps
        if step.event_specific_data is not None and step.event_specific_data.error is not None
    ]
    record = instance.get_run_record_by_id(run.run_id)
    ended = record.end_time if record is not None and record.end_time else None
    return RunFailure(
        run_id=run.run_id,
        job_name=run.job_name,
        partitions=describe_partitions(run.tags),
        failed_steps=tuple(step.step_key for step in steps if step.step_key),
        message=redact_urls(errors[0] if errors else (failure_event.message or "run failed")),
        failed_at=datetime.fromtimestamp(ended, UTC) if ended else datetime.now(UTC),
    )


def _own_error(error: SerializableErrorInfo) -> str:
    """The error the step itself raised: the innermost cause of Dagster's wrappers (such as
    "Error occurred while executing op ...")."""
    while error.cause is not None:
        error = error.cause
    return error.message.strip()


def ensure_failures_table(connection: adbc.Connection, schema: str) -> None:
    """Create the table, or add the alert columns to one made before alerts were tracked."""
    ensure_schema(connection, schema)
    table = qualified_name(schema, TABLE)
    columns = table_columns(connection, schema, TABLE)
    with connection.cursor() as cursor:
        if columns is None:
            cursor.execute(
                f"CREATE TABLE IF NOT EXISTS {table} (run_id text PRIMARY KEY,"
                " job_name text NOT NULL, partitions text, failed_steps text NOT NULL,"
                " message text NOT NULL, failed_at timestamptz NOT NULL)"
            )
        if columns is None or "alert_state" not in columns:
            states = ", ".join(f"'{state}'" for state in ALERT_STATES)
            cursor.execute(
                f"ALTER TABLE {table}"
                f" ADD COLUMN IF NOT EXISTS alert_state text NOT NULL DEFAULT '{UNTRACKED}'"
                f" CHECK (alert_state IN ({states})),"
                " ADD COLUMN IF NOT EXISTS alert_attempts integer NOT NULL DEFAULT 0,"
                " ADD COLUMN IF NOT EXISTS alert_last_error text,"
                " ADD COLUMN IF NOT EXISTS alert_next_attempt_at timestamptz"
            )


def record_run_failure(
    connection: adbc.Connection, schema: str, failure: RunFailure, alert_state: str
) -> None:
    """Insert ``failure`` with its alert ``PENDING`` (due now) or ``NOT_CONFIGURED``.

    Recording the same run again replaces its description but keeps its alert's state, so a
    tick repeated after a crash neither resends a delivered alert nor forgets a pending one.
    """
    ensure_failures_table(connection, schema)
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {qualified_name(schema, TABLE)} (run_id, job_name, partitions,"
            " failed_steps, message, failed_at, alert_state, alert_attempts,"
            " alert_next_attempt_at) VALUES ($1, $2, $3, $4, $5, $6, $7, 0, $8)"
            " ON CONFLICT (run_id) DO UPDATE"
            " SET job_name = EXCLUDED.job_name, partitions = EXCLUDED.partitions,"
            " failed_steps = EXCLUDED.failed_steps, message = EXCLUDED.message,"
            " failed_at = EXCLUDED.failed_at",
            parameters=(
                failure.run_id,
                failure.job_name,
                failure.partitions,
                ",".join(failure.failed_steps),
                failure.message,
                failure.failed_at,
                alert_state,
                datetime.now(UTC) if alert_state == PENDING else None,
            ),
        )


def due_alerts(
    connection: adbc.Connection, schema: str, now: datetime, limit: int
) -> list[PendingAlert]:
    """Pending alerts whose next attempt is due at ``now``, the longest-waiting first."""
    if table_columns(connection, schema, TABLE) is None:
        return []
    ensure_failures_table(connection, schema)
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT run_id, job_name, partitions, failed_steps, message, failed_at,"
            f" alert_attempts FROM {qualified_name(schema, TABLE)}"
            " WHERE alert_state = 'pending' AND alert_next_attempt_at <= $1"
            " ORDER BY alert_next_attempt_at, failed_at LIMIT $2",
            parameters=(now, limit),
        )
        rows = cursor.fetchall()
    return [_pending_alert(*row) for row in rows]


def _pending_alert(
    run_id: str, job_name: str, partitions: str | None, failed_steps: str, message: str,
    failed_at: datetime, attempts: int,
) -> PendingAlert:  # fmt: skip
    steps = tuple(step for step in failed_steps.split(",") if step)
    return PendingAlert(
        RunFailure(run_id, job_name, partitions, steps, message, failed_at), attempts
    )


def record_alert_attempt(
    connection: adbc.Connection,
    schema: str,
    run_id: str,
    state: str,
    attempts: int,
    error: str | None,
    next_attempt_at: datetime | None,
) -> None:
    """Store the outcome of an attempt to post the alert of ``run_id`` (if still pending)."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {qualified_name(schema, TABLE)} SET alert_state = $2, alert_attempts = $3,"
            " alert_last_error = COALESCE($4, alert_last_error), alert_next_attempt_at = $5"
            " WHERE run_id = $1 AND alert_state = 'pending'",
            parameters=(run_id, state, attempts, error, next_attempt_at),
        )
