"""Freshness changes worth an alert, read from the instance, and the ``freshness_alerts`` table
(the queue of their alerts, delivered and retried as the failed runs' are).

Dagster's freshness daemon records an event each time an asset's freshness state changes. An
asset turning ``FAIL`` is announced as stale once; turning fresh again after that, as
recovered once. The other changes (a first evaluation, ``UNKNOWN`` before any materialisation)
are not news.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import adbc_driver_postgresql.dbapi as adbc
from dagster import AssetKey, DagsterEventType, DagsterInstance, EventRecordsFilter
from dagster._core.definitions.freshness import FreshnessState, FreshnessStateChange

from cryptify_pipeline.automation.failures import ALERT_STATES, PENDING
from cryptify_pipeline.storage.pg_tables import ensure_schema, qualified_name, table_columns

TABLE = "freshness_alerts"
STALE = "stale"
RECOVERED = "recovered"
_FRESH = (FreshnessState.PASS, FreshnessState.WARN)


@dataclass(frozen=True)
class FreshnessChange:
    """An asset gone stale or fresh again; ``record_id`` is its event's id in the instance."""

    record_id: int
    asset: str
    change: str  # STALE or RECOVERED
    changed_at: datetime
    last_materialized_at: datetime | None

    @property
    def key(self) -> str:
        """The alert's key in the queue: one alert per change event."""
        return f"{self.asset}:{self.record_id}"

    def text(self) -> str:
        last = self.last_materialized_at
        when = f"{last:%Y-%m-%d %H:%M} UTC" if last else "never"
        if self.change == STALE:
            return f"cryptify: {self.asset} is stale: last materialised {when}"
        return f"cryptify: {self.asset} is fresh again: materialised {when}"

    def body(self) -> dict[str, object]:
        """The JSON posted: the change, plus a Slack-compatible ``text``."""
        last = self.last_materialized_at
        return {
            "kind": "freshness",
            "asset": self.asset,
            "state": self.change,
            "changed_at": self.changed_at.isoformat(),
            "last_materialized_at": last.isoformat() if last else None,
            "text": self.text(),
        }


@dataclass(frozen=True)
class StateEvent:
    """A freshness state change event of the instance."""

    record_id: int
    change: FreshnessStateChange


# get_event_records is deprecated (to go in Dagster 2.0), but the only public reader of events
# other than materialisations, observations and run status changes.
def freshness_events_after(
    instance: DagsterInstance, record_id: int, limit: int
) -> list[StateEvent]:
    """Freshness state changes stored after event ``record_id``, oldest first."""
    records = instance.get_event_records(
        EventRecordsFilter(DagsterEventType.FRESHNESS_STATE_CHANGE, after_cursor=record_id),
        limit=limit,
        ascending=True,
    )
    return [
        StateEvent(record.storage_id, data)
        for record in records
        if record.event_log_entry.dagster_event is not None
        and isinstance(data := record.event_log_entry.dagster_event.event_specific_data,
                       FreshnessStateChange)
    ]  # fmt: skip


def latest_freshness_record_id(instance: DagsterInstance) -> int:
    """The newest freshness change's event id, or -1 when there is none yet."""
    records = instance.get_event_records(
        EventRecordsFilter(DagsterEventType.FRESHNESS_STATE_CHANGE), limit=1
    )
    return records[0].storage_id if records else -1


def alert_kind(change: FreshnessStateChange) -> str | None:
    """STALE, RECOVERED, or None for a change that is not news."""
    if change.new_state == FreshnessState.FAIL and change.previous_state != FreshnessState.FAIL:
        return STALE
    if change.new_state in _FRESH and change.previous_state == FreshnessState.FAIL:
        return RECOVERED
    return None


def describe_change(instance: DagsterInstance, event: StateEvent, kind: str) -> FreshnessChange:
    """The change as alerted: with the asset's newest materialisation time."""
    latest = instance.get_latest_materialization_event(event.change.key)
    return FreshnessChange(
        record_id=event.record_id,
        asset=event.change.key.to_user_string(),
        change=kind,
        changed_at=datetime.fromtimestamp(event.change.state_change_timestamp, UTC),
        last_materialized_at=datetime.fromtimestamp(latest.timestamp, UTC) if latest else None,
    )


def stale_now(instance: DagsterInstance, keys: list[AssetKey]) -> list[StateEvent]:
    """The changes that left ``keys`` stale, for those stale now (a new sensor's first tick:
    an asset already stale is announced once)."""
    records = instance.get_freshness_state_records(keys)
    stale = [
        key for key, record in records.items() if record.freshness_state == FreshnessState.FAIL
    ]
    found = []
    for key in stale:
        [record] = instance.get_event_records(
            EventRecordsFilter(DagsterEventType.FRESHNESS_STATE_CHANGE, asset_key=key), limit=1
        )
        data = record.event_log_entry.dagster_event.event_specific_data  # type: ignore[union-attr]
        found.append(StateEvent(record.storage_id, data))
    return found


def ensure_freshness_table(connection: adbc.Connection, schema: str) -> None:
    ensure_schema(connection, schema)
    states = ", ".join(f"'{state}'" for state in ALERT_STATES)
    with connection.cursor() as cursor:
        cursor.execute(
            f"CREATE TABLE IF NOT EXISTS {qualified_name(schema, TABLE)} (key text PRIMARY KEY,"
            " asset text NOT NULL, change text NOT NULL"
            f" CHECK (change IN ('{STALE}', '{RECOVERED}')),"
            " changed_at timestamptz NOT NULL, last_materialized_at timestamptz,"
            f" alert_state text NOT NULL CHECK (alert_state IN ({states})),"
            " alert_attempts integer NOT NULL DEFAULT 0, alert_last_error text,"
            " alert_next_attempt_at timestamptz)"
        )


def record_freshness_change(
    connection: adbc.Connection, schema: str, change: FreshnessChange, alert_state: str
) -> None:
    """Insert ``change`` with its alert ``PENDING`` (due now) or ``NOT_CONFIGURED``; recording
    it again (a tick repeated after a crash) changes nothing."""
    ensure_freshness_table(connection, schema)
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {qualified_name(schema, TABLE)} (key, asset, change, changed_at,"
            " last_materialized_at, alert_state, alert_next_attempt_at)"
            " VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (key) DO NOTHING",
            parameters=(
                change.key, change.asset, change.change, change.changed_at,
                change.last_materialized_at, alert_state,
                datetime.now(UTC) if alert_state == PENDING else None,
            ),
        )  # fmt: skip


def due_freshness_alerts(
    connection: adbc.Connection, schema: str, now: datetime, limit: int
) -> list[tuple[FreshnessChange, int]]:
    """Pending alerts due at ``now`` with the attempts made so far, the longest-waiting first."""
    if table_columns(connection, schema, TABLE) is None:
        return []
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT key, asset, change, changed_at, last_materialized_at, alert_attempts"
            f" FROM {qualified_name(schema, TABLE)}"
            " WHERE alert_state = 'pending' AND alert_next_attempt_at <= $1"
            " ORDER BY alert_next_attempt_at, changed_at LIMIT $2",
            parameters=(now, limit),
        )
        rows = cursor.fetchall()
    return [
        (FreshnessChange(int(key.rpartition(":")[2]), asset, change, changed, last), attempts)
        for key, asset, change, changed, last, attempts in rows
    ]


def record_freshness_attempt(
    connection: adbc.Connection, schema: str, key: str, state: str, attempts: int,
    error: str | None, next_attempt_at: datetime | None,
) -> None:  # fmt: skip
    """Store the outcome of an attempt to post the alert ``key`` (if still pending)."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {qualified_name(schema, TABLE)} SET alert_state = $2, alert_attempts = $3,"
            " alert_last_error = COALESCE($4, alert_last_error), alert_next_attempt_at = $5"
            " WHERE key = $1 AND alert_state = 'pending'",
            parameters=(key, state, attempts, error, next_attempt_at),
        )
