"""Sensors: forecasts after each collection, repairs of what was missed (candles and scores by
hand-written sensors, forecasts by their automation condition's own sensor), run-failure
records and their alerts, alerts on assets gone stale, failing the runs whose process is gone,
and the one that evaluates the other automation conditions."""

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from dagster import (
    AssetKey,
    AssetRecordsFilter,
    AssetSelection,
    AutomationConditionSensorDefinition,
    DagsterEventType,
    DagsterInstance,
    DagsterRun,
    DagsterRunStatus,
    DefaultSensorStatus,
    RunRequest,
    RunsFilter,
    RunStatusSensorContext,
    SensorDefinition,
    SensorEvaluationContext,
    SkipReason,
    run_status_sensor,
    sensor,
)

from cryptify_pipeline.automation import freshness
from cryptify_pipeline.automation.alerts import FRESHNESS, RUN_FAILURES, AlertQueue, FailureAlerts
from cryptify_pipeline.automation.conditions import REPAIRED_FORECASTS
from cryptify_pipeline.automation.failures import (
    DELIVERED,
    cursor_for,
    cursor_record_id,
    describe_failure,
    failure_events_after,
    latest_failure_record_id,
    record_run_failure,
)
from cryptify_pipeline.automation.jobs import Jobs
from cryptify_pipeline.automation.stale_runs import fail_stale_run, stale_runs
from cryptify_pipeline.hours import (
    DAY,
    HOUR,
    HOUR_KEY_FORMAT,
    consecutive_runs,
    day_key,
    describe_runs,
    floor_hour,
    hour_key,
    hours_between,
)
from cryptify_pipeline.market.context import (
    COLLECTED_TABLES,
    CONTEXT_TABLE_NAMES,
    RETRYABLE,
    STATUS_KEY,
)
from cryptify_pipeline.ml.targets import scored_against
from cryptify_pipeline.partitions import Partitions
from cryptify_pipeline.resources import MarketData, PostgresDatabase
from cryptify_pipeline.run_tags import (
    PARTITION_NAME_TAG,
    TRIGGER_TAG,
    range_tags,
    run_partition_range,
)
from cryptify_pipeline.storage import pg_tables

# The schedule fetches each hour at HH:02; leave it the hour before calling the hour a gap.
SCHEDULE_GRACE = timedelta(minutes=20)
# evaluate_schedule scores the day before yesterday at 00:15; leave it its run before calling
# the day unscored
SCORING_GRACE = timedelta(minutes=45)
IN_PROGRESS = [
    DagsterRunStatus.QUEUED, DagsterRunStatus.NOT_STARTED, DagsterRunStatus.STARTING,
    DagsterRunStatus.STARTED,
]  # fmt: skip
# How often the repairs look for what was missed.
REPAIR_INTERVAL_SECONDS = 600
# Failed runs recorded per tick of record_run_failures (more wait for the next tick).
FAILURES_PER_TICK = 25
# Freshness changes read per tick of freshness_alerts.
FRESHNESS_CHANGES_PER_TICK = 100


def hour_ranges(
    first: datetime, last: datetime, wanted: Callable[[datetime], bool]
) -> list[tuple[str, str]]:
    """Runs of consecutive hours in [first, last] for which ``wanted`` holds, as
    (first key, last key), oldest first."""
    runs = consecutive_runs(hour for hour in hours_between(first, last) if wanted(hour))
    return [(hour_key(a), hour_key(b)) for a, b in runs]


def gap_ranges(
    materialized: Iterable[str], now: datetime, days: int, first_hour: datetime
) -> list[tuple[str, str]]:
    """Runs of consecutive closed hours in the last ``days`` days that have no materialisation,
    as (first key, last key), oldest first."""
    newest = floor_hour(now - SCHEDULE_GRACE) - HOUR
    oldest = max(newest - timedelta(days=days) + HOUR, first_hour)
    done = set(materialized)
    return hour_ranges(oldest, newest, lambda hour: hour_key(hour) not in done)


def forecastable_ranges(
    first: str, last: str, modelled_days: Iterable[str]
) -> list[tuple[str, str]]:
    """Runs of hours in [first, last] whose previous day has models, as (first, last) keys."""
    days = set(modelled_days)
    return hour_ranges(
        datetime.strptime(first, HOUR_KEY_FORMAT),
        datetime.strptime(last, HOUR_KEY_FORMAT),
        lambda hour: day_key(hour - DAY) in days,
    )


def transiently_failed_hours(instance: DagsterInstance, since: datetime) -> set[str]:
    """Hour keys whose latest context materialisation (recorded after ``since``) says its
    source failed for a transient reason (network, 5xx, 429): the asset kept what was stored
    and succeeded, so the partition is materialised but its rows may be missing."""
    failed: set[str] = set()
    for name in CONTEXT_TABLE_NAMES:
        latest: dict[str, object] = {}
        cursor = None
        while True:
            found = instance.fetch_materializations(
                AssetRecordsFilter(asset_key=AssetKey(name), after_timestamp=since.timestamp()),
                limit=1000, cursor=cursor, ascending=True,
            )  # fmt: skip
            for record in found.records:
                event = record.asset_materialization
                if event is not None and event.partition is not None:
                    status = event.metadata.get(STATUS_KEY)
                    latest[event.partition] = None if status is None else status.value
            if not found.has_more:
                break
            cursor = found.cursor
        failed |= {hour for hour, status in latest.items() if status == RETRYABLE}
    return failed


def newest_closed_hour(now: datetime) -> datetime:
    """The newest hour the collect schedule has had time to collect by ``now``."""
    return floor_hour(now - SCHEDULE_GRACE) - HOUR


@dataclass(frozen=True)
class ScoringState:
    """Of the recent days with forecasts: those to score now (day key -> the newest storage id
    of their inputs, which keys the request) and those waiting for candles (day key -> the
    target hours not collected yet)."""

    to_score: dict[str, int]
    waiting: dict[str, list[datetime]]


def scoring_state(
    made: Mapping[str, int], collected: Mapping[str, int], scored: Mapping[str, int],
    now: datetime, days: int, first_day: datetime,
) -> ScoringState:  # fmt: skip
    """Which of the last ``days`` scorable days to score, from the latest storage ids of the
    materialisations of ``predictions`` (by hour), ``candles`` (by hour) and
    ``forecast_metrics`` (by day).

    A day is scorable once its last target candle has closed and the evaluate schedule has had
    its turn. It is scored when it has forecasts, every candle hour they are scored against has
    been collected, and it was never scored or its scores are older than one of those inputs
    (late candles, repaired forecasts).
    """
    newest_day = floor_hour(now - SCORING_GRACE - 2 * DAY).replace(hour=0)
    to_score, waiting = {}, {}
    day = max(newest_day - timedelta(days=days - 1), first_day)
    while day <= newest_day:
        inputs = [made[key] for key in map(hour_key, hours_between(day, day + DAY - HOUR))
                  if key in made]  # fmt: skip
        first, last = scored_against(day)
        absent = [hour for hour in hours_between(first, last) if hour_key(hour) not in collected]
        if inputs and absent:
            waiting[day_key(day)] = absent
        elif inputs:
            newest = max(inputs + [collected[hour_key(h)] for h in hours_between(first, last)])
            if scored.get(day_key(day), -1) < newest:
                to_score[day_key(day)] = newest
        day += DAY
    return ScoringState(to_score, waiting)


def latest_storage_ids(
    instance: DagsterInstance, asset: str, partitions: Iterable[str]
) -> Mapping[str, int]:
    """Partition -> storage id of its latest materialisation, for those of ``partitions`` that
    have one."""
    return instance.get_latest_storage_id_by_partition(
        AssetKey(asset), DagsterEventType.ASSET_MATERIALIZATION, set(partitions)
    )


def partition_request(run_key: str, first: str, last: str, **tags: str) -> RunRequest:
    """A run of the partitions ``first``..``last``: one key, or one run over the range."""
    if first == last:
        return RunRequest(run_key=run_key, partition_key=first, tags=tags)
    return RunRequest(run_key=run_key, tags={**range_tags(first, last), **tags})


def in_code_location(context: SensorEvaluationContext, run: DagsterRun) -> bool:
    """Whether ``run`` belongs to the sensor's code location and repository (both None for a
    run executed in process and a sensor evaluated directly, as Dagster's own run-status
    sensors match them)."""
    origin = run.remote_job_origin
    location = context.code_location_origin
    return (
        origin.repository_origin.code_location_origin.location_name if origin else None,
        origin.repository_origin.repository_name if origin else None,
    ) == (location.location_name if location else None, context.repository_name)


def build_sensors(
    jobs: Jobs, partitions: Partitions, status: DefaultSensorStatus
) -> list[SensorDefinition]:
    first_hour = partitions.first_hour.astimezone(UTC)

    @sensor(
        job=jobs.collect,
        minimum_interval_seconds=REPAIR_INTERVAL_SECONDS,
        default_status=status,
        description=(
            "Requests collect_job for hours never materialised for candles or market context "
            "(open interest, funding, equity index), or whose context source last failed "
            "transiently, in the last CRYPTIFY_GAP_REPAIR_DAYS days. Hours written with rows "
            "missing are left to the completeness checks (the tables are not read)."
        ),
    )
    def candle_gap_repair(context: SensorEvaluationContext, market: MarketData):
        """A sensor, not an automation condition, because a condition cannot: count an hour
        missing when any one of the four collected tables lacks it and re-run all of
        ``collect_job`` for it (a condition requests the missing assets alone, without
        ``features``); count as missing an hour whose context was stored after a transient
        source failure (that is a metadata value of the materialisation, and conditions see
        only materialised or not); leave the newest hour 20 minutes' grace (condition windows
        are whole partitions); and retry a range at most once an hour while the exchange is
        down (the hour in the run key: ``missing() & ~in_progress()`` would re-request a range
        whose run failed on every tick, and ``.since_last_handled()`` never again)."""
        now = datetime.now(UTC)
        # an hour is done once every collected asset has it: the context came later, and a
        # deployment that had candles before gets its context filled the same way
        materialized = set.intersection(
            *(
                set(context.instance.get_materialized_partitions(AssetKey(name)))
                for name in COLLECTED_TABLES
            )
        )
        # hours whose context was written after a transient source failure count as missing
        since = now - timedelta(days=market.gap_repair_days + 1)
        materialized -= transiently_failed_hours(context.instance, since)
        gaps = gap_ranges(materialized, now, market.gap_repair_days, first_hour)
        if not gaps:
            return SkipReason(
                f"no missing candle or context hours in the last {market.gap_repair_days} days"
            )
        context.log.info(f"requesting {len(gaps)} missing range(s): {gaps}")
        # one single-run backfill per range; the run key lets each range go out once an hour
        return [
            partition_request(
                f"candle-gap:{first}:{last}:{now:%Y-%m-%dT%H}",
                first,
                last,
                **{TRIGGER_TAG: "gap_repair"},
            )
            for first, last in gaps
        ]

    first_day = first_hour.replace(hour=0)

    @sensor(
        job=jobs.evaluate,
        minimum_interval_seconds=REPAIR_INTERVAL_SECONDS,
        default_status=status,
        description=(
            "Scores days of the last CRYPTIFY_GAP_REPAIR_DAYS days once every candle their "
            "forecasts are scored against is collected: days never scored, and days scored "
            "before late candles or repaired forecasts arrived."
        ),
    )
    def missing_scores(context: SensorEvaluationContext, market: MarketData):
        """A sensor, not an automation condition, because a condition cannot: request the whole
        ``evaluate_job`` for the day (scores, backtest, leaderboard, summary; a condition on
        ``forecast_metrics`` requests that asset alone); score a day once the candles its
        forecasts are scored against are in even if some of its hours have no forecasts (the
        day's partition mapping makes ``any_deps_missing()`` wait for all 24 forecast hours,
        for ever if one cannot be made); leave ``evaluate_schedule`` its turn, 45 minutes into
        the day (condition windows are whole days: the day would be requested at 00:02 beside
        the schedule's run, or a repair would wait a day); and log which candle hours a day
        waits for. Re-scoring on newer inputs compares the storage ids of the latest
        materialisations, as ``any_deps_updated().since_last_handled()`` would."""
        now = datetime.now(UTC)
        instance = context.instance
        oldest = max(first_day, now.replace(minute=0, second=0, microsecond=0)
                     - timedelta(days=market.gap_repair_days + 3))  # fmt: skip
        hours = [hour_key(hour) for hour in hours_between(oldest, newest_closed_hour(now))]
        state = scoring_state(
            latest_storage_ids(instance, "predictions", hours),
            latest_storage_ids(instance, "candles", hours),
            latest_storage_ids(instance, "forecast_metrics", {key[:10] for key in hours}),
            now, market.gap_repair_days, first_day,
        )  # fmt: skip
        for day, absent in state.waiting.items():
            context.log.info(f"{day} waits for candles {describe_runs(absent)}")
        requests = [
            RunRequest(run_key=f"scores:{day}:{newest}", partition_key=day,
                       tags={TRIGGER_TAG: "scoring_repair"})
            for day, newest in state.to_score.items()
            if not _evaluating(instance, jobs.evaluate.name, day)
        ]  # fmt: skip
        if requests:
            return requests
        waiting = "; ".join(f"{day} waits for candles {describe_runs(absent)}"
                            for day, absent in state.waiting.items())  # fmt: skip
        return SkipReason(waiting or "every recent day with forecasts is scored on all its inputs")

    # A run-status sensor rather than declarative automation: it fires on the collect run's
    # success within seconds (automation ticks every 30 s and looks only at the newest
    # partition) and forecasts exactly the hours that run wrote, backfills and gap repairs too.
    @run_status_sensor(
        run_status=DagsterRunStatus.SUCCESS,
        monitored_jobs=[jobs.collect],
        request_job=jobs.predict,
        minimum_interval_seconds=2,
        default_status=status,
        description="Forecasts the hours a successful collect_job run wrote, where models exist.",
    )
    def forecast_after_collect(context: RunStatusSensorContext):
        run = context.dagster_run
        covered = run_partition_range(run.tags)
        if covered is None:
            return SkipReason(f"collect run {run.run_id} has no partition")
        modelled = context.instance.get_materialized_partitions(AssetKey("models"))
        ranges = forecastable_ranges(*covered, modelled)
        if not ranges:
            return SkipReason(
                f"no models trained through the day before {covered[0]}..{covered[1]} yet; "
                "train_job makes them at 00:30 UTC"
            )
        return [
            partition_request(f"forecast:{run.run_id}:{first}", first, last)
            for first, last in ranges
        ]

    # A plain sensor with its own cursor, not run_failure_sensor: that one calls its function
    # only for new failures and moves its cursor past a failure even when the function
    # raised, so an alert whose POST failed was lost. Here the cursor moves only once the
    # failures are committed to run_failures, and every tick retries the pending alerts.
    @sensor(
        minimum_interval_seconds=10,
        default_status=status,
        description=(
            "Logs every failed run and records it in the run_failures table; with "
            "CRYPTIFY_ALERT_WEBHOOK_URL set, also posts it there as JSON, retrying with "
            "backoff until delivered (alert_state in run_failures)."
        ),
    )
    def record_run_failures(
        context: SensorEvaluationContext, database: PostgresDatabase, alerts: FailureAlerts
    ) -> SkipReason:
        after = cursor_record_id(context.cursor)
        if after is None:  # a new sensor starts from now, as Dagster's run-status sensors do
            context.update_cursor(cursor_for(latest_failure_record_id(context.instance)))
            return SkipReason("started: runs that fail from now on are recorded")
        events = failure_events_after(context.instance, after, FAILURES_PER_TICK)
        failures = [
            describe_failure(context.instance, event.run, event.event)
            for event in events
            if event.run is not None and in_code_location(context, event.run)
        ]
        if failures:
            with pg_tables.transaction(database.connection_url()) as connection:
                for failure in failures:
                    record_run_failure(
                        connection, database.schema_name, failure, alerts.state_of_new_alerts()
                    )
        for failure in failures:
            context.log.error(
                f"run {failure.run_id} of {failure.job_name} failed"
                f"{f' [{failure.partitions}]' if failure.partitions else ''}: {failure.message}"
            )
        if events:
            context.update_cursor(cursor_for(events[-1].record_id))
        delivered = _deliver_due(context, alerts, database, RUN_FAILURES)
        return SkipReason(f"{len(failures)} failed run(s) recorded; {delivered}")

    # The freshness daemon evaluates the assets' freshness policies outside any run; this
    # announces what it found, so a collection that stopped is noticed without a run.
    @sensor(
        minimum_interval_seconds=30,
        default_status=status,
        description=(
            "Records each asset that turned stale (its freshness policy failed) or fresh again "
            "in the freshness_alerts table; with CRYPTIFY_ALERT_WEBHOOK_URL set, also posts it "
            "there, retried as failed runs' alerts are."
        ),
    )
    def freshness_alerts(
        context: SensorEvaluationContext, database: PostgresDatabase, alerts: FailureAlerts
    ) -> SkipReason:
        instance = context.instance
        # the failure sensor's cursor shape: the last event record seen
        after = cursor_record_id(context.cursor)
        if after is None:  # a new sensor: what is stale now is announced, then changes from now
            events = freshness.stale_now(instance, list(instance.all_asset_keys()))
            newest = freshness.latest_freshness_record_id(instance)
            kinds = [(event, freshness.STALE) for event in events]
        else:
            events = freshness.freshness_events_after(instance, after, FRESHNESS_CHANGES_PER_TICK)
            newest = events[-1].record_id if events else after
            kinds = [(event, kind) for event in events
                     if (kind := freshness.alert_kind(event.change))]  # fmt: skip
        changes = [freshness.describe_change(instance, event, kind) for event, kind in kinds]
        if changes:
            with pg_tables.transaction(database.connection_url()) as connection:
                for change in changes:
                    freshness.record_freshness_change(
                        connection, database.schema_name, change, alerts.state_of_new_alerts()
                    )
        for change in changes:
            (context.log.warning if change.change == freshness.STALE else context.log.info)(
                change.text()
            )
        context.update_cursor(cursor_for(newest))
        delivered = _deliver_due(context, alerts, database, FRESHNESS)
        return SkipReason(f"{len(changes)} freshness change(s) recorded; {delivered}")

    # Dagster's run monitoring checks only the run workers its run launcher started; this
    # checks the runs executed in a command's own process (dagster asset materialize, the
    # bootstrap), on the machine the sensor runs on.
    @sensor(
        minimum_interval_seconds=30,
        default_status=status,
        description=(
            "Marks failed the STARTED runs whose process, on this machine, is gone (killed) "
            "and frees their pool slots, which would otherwise block those pools for ever."
        ),
    )
    def fail_stale_runs(context: SensorEvaluationContext) -> SkipReason:
        failed = [
            stale for stale in stale_runs(context.instance)
            if fail_stale_run(context.instance, stale)
        ]  # fmt: skip
        for stale in failed:
            context.log.error(f"{stale}: marked failed, its pool slots freed")
        return SkipReason(f"{len(failed)} run(s) whose process is gone marked failed")

    # Dagster's own automation sensor starts stopped; this one runs by default, so assets with
    # an automation condition (the leaderboard, after new scores) update themselves.
    automation_conditions = AutomationConditionSensorDefinition(
        "automation_conditions",
        target=AssetSelection.all() - AssetSelection.assets(REPAIRED_FORECASTS),
        default_status=status,
        description="Evaluates the assets' automation conditions (e.g. leaderboard after scores).",
    )
    return [
        forecast_after_collect,
        candle_gap_repair,
        forecast_repair_sensor(jobs, status),
        missing_scores,
        record_run_failures,
        freshness_alerts,
        fail_stale_runs,
        automation_conditions,
    ]


def forecast_repair_sensor(jobs: Jobs, status: DefaultSensorStatus) -> SensorDefinition:
    """Launches the runs ``predictions``' ``forecast_repair`` condition asks for, tagged as
    ``predict_job``'s own runs: its queue (one run at a time), its time limit, and
    ``cryptify/trigger=forecast_repair``. A range of hours is one single-run backfill."""
    return AutomationConditionSensorDefinition(
        "forecast_repair",
        target=AssetSelection.assets(REPAIRED_FORECASTS),
        run_tags={**jobs.predict.tags, TRIGGER_TAG: "forecast_repair"},
        minimum_interval_seconds=REPAIR_INTERVAL_SECONDS,
        default_status=status,
        description=(
            "Forecasts closed hours of the last CRYPTIFY_GAP_REPAIR_DAYS days (but the newest) "
            "that have features and models of the previous day but no forecasts (e.g. collected "
            "before training ended): predictions' forecast_repair automation condition."
        ),
    )


def _evaluating(instance: DagsterInstance, job_name: str, day: str) -> bool:
    """Whether a run of ``job_name`` for ``day`` is queued or running."""
    running = RunsFilter(job_name=job_name, statuses=IN_PROGRESS, tags={PARTITION_NAME_TAG: day})
    return instance.get_runs_count(running) > 0


def _deliver_due(
    context: SensorEvaluationContext,
    alerts: FailureAlerts,
    database: PostgresDatabase,
    queue: AlertQueue,
) -> str:
    """Post ``queue``'s due alerts, log each attempt, and say how many got through."""
    attempts = alerts.deliver_due(database, queue)
    for attempt in attempts:
        (context.log.info if attempt.state == DELIVERED else context.log.warning)(str(attempt))
    delivered = sum(attempt.state == DELIVERED for attempt in attempts)
    return f"{delivered} of {len(attempts)} alert post(s) delivered"
