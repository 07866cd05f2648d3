"""``candles``: one closed hourly OHLCV candle per configured symbol and hour."""

from datetime import UTC, datetime

import pandas as pd
from dagster import (
    AssetExecutionContext,
    AssetsDefinition,
    BackfillPolicy,
    Backoff,
    Config,
    Failure,
    Jitter,
    MetadataValue,
    Output,
    RetryPolicy,
    RetryRequested,
    asset,
)
from pydantic import Field

from cryptify_pipeline.assets.columns import CANDLES, described
from cryptify_pipeline.assets.run_metadata import output_once_per_run
from cryptify_pipeline.market.candles import (
    describe_hours,
    describe_missing,
    drop_forming,
    lost_candles,
    missing_candles,
    validate_candles,
)
from cryptify_pipeline.market.errors import RetryableSourceError, SourceError
from cryptify_pipeline.partitions import Partitions
from cryptify_pipeline.resources import MarketData, PostgresDatabase
from cryptify_pipeline.run_config import config_of, constrained_config


# Transient exchange trouble (network, 5xx, 429) that outlasts the in-call retries gets the
# whole step retried later with this policy's backoff (its first delay the market resource's
# step_retry_seconds, 10 s by default); everything else fails once.
# The step raises RetryRequested itself instead of declaring retry_policy= on the asset:
# Dagster also retries a step with a retry_policy when it is *interrupted*, so cancelling or
# timing out a run in the run's process (the in-process executor) would start a retry and
# leave the run CANCELING instead of stopping it.
def exchange_retry_policy(first_delay_seconds: float) -> RetryPolicy:
    return RetryPolicy(
        max_retries=3,
        delay=first_delay_seconds,
        backoff=Backoff.EXPONENTIAL,
        jitter=Jitter.PLUS_MINUS,
    )


class CandlesConfig(Config):
    """Knob of collect_job's candles step: whether a source may shrink what is stored."""

    delete_candles_the_source_lacks: bool = Field(
        default=False,
        description=(
            "Replace the partitions even where the source returns fewer candles than are "
            "stored, deleting the stored candles it lacks (a delisted market, a symbol removed "
            "from CRYPTIFY_SYMBOLS). Off: such a run fails and writes nothing."
        ),
    )


def candles_asset(partitions: Partitions) -> AssetsDefinition:
    """The ``candles`` asset on ``partitions``' hours."""

    @asset(
        partitions_def=partitions.hourly,
        backfill_policy=BackfillPolicy.single_run(),
        pool="candles",
        config_schema=constrained_config(CandlesConfig),
        metadata={"partition_expr": "ts", "primary_key": ["symbol", "ts"], **described(CANDLES)},
        group_name="market",
        kinds={"postgres"},
        description=(
            "Closed hourly OHLCV candles, one per configured symbol and hour; partition H holds "
            "the candle that opened at H, written once it closed at H+1h. The source column says "
            "where each came from ('sample' is the synthetic market, not real prices)."
        ),
    )
    def candles(
        context: AssetExecutionContext, market: MarketData, database: PostgresDatabase
    ) -> Output[pd.DataFrame]:
        config = config_of(context, CandlesConfig)
        window = context.partition_time_window
        now = datetime.now(UTC)
        if window.end > now:
            raise Failure(
                f"hours up to {window.end:%Y-%m-%d %H:%M} UTC have not all closed yet",
                allow_retries=False,
            )
        source = market.candle_source()
        try:
            frame = drop_forming(source.fetch(market.symbols, window.start, window.end), now)
            validate_candles(frame, market.symbols, window.start, window.end)
        except RetryableSourceError as error:
            policy = exchange_retry_policy(market.step_retry_seconds)
            raise RetryRequested(
                max_retries=policy.max_retries,
                seconds_to_wait=policy.calculate_delay(context.retry_number + 1),
            ) from error
        except (SourceError, ValueError) as error:  # bad symbol, malformed data, invalid candles
            raise Failure(str(error), allow_retries=False) from error

        # Writing replaces the partitions' rows: decide before anything is written whether
        # that would delete stored candles. Steps writing candles run one at a time (the
        # `candles` pool), so nothing changes the rows between this read and the write.
        lost = lost_candles(_stored(database, window.start, window.end), frame)
        if not lost.empty:
            described = _describe_lost(lost, market.symbols, source.name)
            if not config.delete_candles_the_source_lacks:
                raise Failure(
                    f"{described}; refusing to delete them, nothing was written. If the source "
                    "really has no such candles (a delisted market), rerun with run config "
                    "ops: {candles: {config: {delete_candles_the_source_lacks: true}}}",
                    allow_retries=False,
                )
            context.log.warning(f"{described}; deleting them (delete_candles_the_source_lacks)")

        missing = missing_candles(frame, market.symbols, window.start, window.end)
        if not missing.empty:
            context.log.warning(
                f"{len(missing)} candle(s) missing from {source.name}:\n{describe_missing(missing)}"
            )
        frame = frame.assign(source=source.name, ingested_at=pd.Timestamp(now))
        summary = {
            **_summary(frame, market.symbols, source.name, missing),
            "deleted_candles": len(lost),
        }
        return output_once_per_run(context, frame, summary, _details(frame, missing))

    return candles


def _stored(database: PostgresDatabase, start: datetime, end: datetime) -> pd.DataFrame:
    """The (symbol, ts) stored in [start, end); none when the table is empty or absent."""
    latest = database.latest_ts("candles")
    if latest is None or latest < start:  # the hourly run's usual case: a new hour
        return pd.DataFrame({"symbol": pd.Series(dtype="str"), "ts": pd.Series(dtype="object")})
    return database.read_time_range("candles", start, end, ["symbol", "ts"])


def _describe_lost(lost: pd.DataFrame, symbols: list[str], source: str) -> str:
    dropped = sorted(set(lost["symbol"]) - set(symbols))
    unconfigured = f" ({', '.join(dropped)} no longer configured)" if dropped else ""
    return (
        f"{source} returned no candle for {len(lost)} stored candle(s): "
        f"{describe_hours(lost)}{unconfigured}"
    )


def _summary(
    frame: pd.DataFrame, symbols: list[str], source: str, missing: pd.DataFrame
) -> dict[str, object]:
    shown_source = f"{source} (synthetic market, not real prices)" if source == "sample" else source
    return {
        "source": shown_source,
        "symbols": ", ".join(symbols),
        "rows": len(frame),
        "first_ts": str(frame["ts"].min()) if len(frame) else "none",
        "last_ts": str(frame["ts"].max()) if len(frame) else "none",
        "missing_candles": len(missing),
    }


def _details(frame: pd.DataFrame, missing: pd.DataFrame) -> dict[str, object]:
    preview = frame.tail(10).drop(columns=["ingested_at"])  # dropped first, it copied every row
    return {
        "missing": MetadataValue.md(describe_missing(missing)),
        "preview": MetadataValue.md(preview.to_markdown(index=False, floatfmt=".6g")),
    }
