"""Failed runs: what went wrong, the ``run_failures`` table and the alert webhook.

Dagster keeps every run's events; this table is the short list an operator (or a dashboard
outside Dagster) reads: which job, which partitions, which steps, what went wrong.
"""

import json
import urllib.request
from dataclasses import asdict, dataclass
from datetime import UTC, datetime

import adbc_driver_postgresql.dbapi as adbc
from dagster import RunFailureSensorContext

from cryptify_pipeline.automation.run_tags import describe_partitions
from cryptify_pipeline.storage.pg_tables import ensure_schema, qualified_name

TABLE = "run_failures"


@dataclass(frozen=True)
class RunFailure:
    run_id: str
    job_name: str
    partitions: str | None  # a key, "first...last", or None when unpartitioned
    failed_steps: tuple[str, ...]
    message: str
    failed_at: datetime


def describe_failure(context: RunFailureSensorContext) -> RunFailure:
    """The failed run of ``context``: its partitions, failed steps and the first step error."""
    run = context.dagster_run
    steps = context.get_step_failure_events()
    errors = [
        step.event_specific_data.error.message.strip()
        for step in steps
        if step.event_specific_data is not None and step.event_specific_data.error is not None
    ]
    record = context.instance.get_run_record_by_id(run.run_id)
    ended = record.end_time if record is not None and record.end_time else None
    return RunFailure(
        run_id=run.run_id,
        job_name=run.job_name,
        partitions=describe_partitions(run.tags),
        failed_steps=tuple(step.step_key for step in steps if step.step_key),
        message=errors[0] if errors else (context.failure_event.message or "run failed"),
        failed_at=datetime.fromtimestamp(ended, UTC) if ended else datetime.now(UTC),
    )


def record_run_failure(connection: adbc.Connection, schema: str, failure: RunFailure) -> None:
    """Insert ``failure``; recording the same run again replaces its row."""
    ensure_schema(connection, schema)
    table = qualified_name(schema, TABLE)
    with connection.cursor() as cursor:
        cursor.execute(
            f"CREATE TABLE IF NOT EXISTS {table} (run_id text PRIMARY KEY, job_name text NOT NULL,"
            " partitions text, failed_steps text NOT NULL, message text NOT NULL,"
            " failed_at timestamptz NOT NULL)"
        )
        cursor.execute(
            f"INSERT INTO {table} VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (run_id) DO UPDATE"
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
            ),
        )


def post_alert(webhook_url: str, failure: RunFailure, timeout_seconds: float = 10) -> None:
    """POST ``failure`` as JSON to ``webhook_url`` (Slack-compatible: it has a ``text``)."""
    partitions = f" [{failure.partitions}]" if failure.partitions else ""
    body = {
        **asdict(failure),
        "failed_at": failure.failed_at.isoformat(),
        "text": f"cryptify: {failure.job_name}{partitions} failed: {failure.message}",
    }
    request = urllib.request.Request(
        webhook_url,
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=timeout_seconds) as response:
        response.read()
