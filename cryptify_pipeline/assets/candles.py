"""``candles``: one closed hourly OHLCV candle per configured symbol and hour."""

from datetime import UTC, datetime

import pandas as pd
from dagster import (
    AssetExecutionContext,
    AssetsDefinition,
    BackfillPolicy,
    Backoff,
    Failure,
    Jitter,
    MetadataValue,
    Output,
    RetryPolicy,
    RetryRequested,
    asset,
)

from cryptify_pipeline.assets.columns import CANDLES, described
from cryptify_pipeline.market.candles import (
    describe_missing,
    drop_forming,
    missing_candles,
    validate_candles,
)
from cryptify_pipeline.market.sources import RetryableSourceError, SourceError
from cryptify_pipeline.partitions import Partitions
from cryptify_pipeline.resources import MarketData

# Transient exchange trouble (network, 5xx, 429) that outlasts the in-call retries gets the
# whole step retried later with this policy's backoff; everything else fails once.
# The step raises RetryRequested itself instead of declaring retry_policy= on the asset:
# Dagster also retries a step with a retry_policy when it is *interrupted*, so cancelling or
# timing out a run in the run's process (the in-process executor) would start a retry and
# leave the run CANCELING instead of stopping it.
EXCHANGE_RETRY_POLICY = RetryPolicy(
    max_retries=3, delay=10, backoff=Backoff.EXPONENTIAL, jitter=Jitter.PLUS_MINUS
)


def candles_asset(partitions: Partitions) -> AssetsDefinition:
    """The ``candles`` asset on ``partitions``' hours."""

    @asset(
        partitions_def=partitions.hourly,
        backfill_policy=BackfillPolicy.single_run(),
        pool="candles",
        metadata={"partition_expr": "ts", "primary_key": ["symbol", "ts"], **described(CANDLES)},
        group_name="market",
        kinds={"postgres"},
        description=(
            "Closed hourly OHLCV candles, one per configured symbol and hour; partition H holds "
            "the candle that opened at H, written once it closed at H+1h. The source column says "
            "where each came from ('sample' is the synthetic market, not real prices)."
        ),
    )
    def candles(context: AssetExecutionContext, market: MarketData) -> Output[pd.DataFrame]:
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
            raise RetryRequested(
                max_retries=EXCHANGE_RETRY_POLICY.max_retries,
                seconds_to_wait=EXCHANGE_RETRY_POLICY.calculate_delay(context.retry_number + 1),
            ) from error
        except (SourceError, ValueError) as error:  # bad symbol, malformed data, invalid candles
            raise Failure(str(error), allow_retries=False) from error

        missing = missing_candles(frame, market.symbols, window.start, window.end)
        if not missing.empty:
            context.log.warning(
                f"{len(missing)} candle(s) missing from {source.name}:\n{describe_missing(missing)}"
            )
        frame = frame.assign(source=source.name, ingested_at=pd.Timestamp(now))
        return Output(frame, metadata=_metadata(frame, market.symbols, source.name, missing))

    return candles


def _metadata(
    frame: pd.DataFrame, symbols: list[str], source: str, missing: pd.DataFrame
) -> dict[str, object]:
    shown_source = f"{source} (synthetic market, not real prices)" if source == "sample" else source
    preview = frame.drop(columns=["ingested_at"]).tail(10)
    return {
        "source": shown_source,
        "symbols": ", ".join(symbols),
        "rows": len(frame),
        "first_ts": str(frame["ts"].min()) if len(frame) else "none",
        "last_ts": str(frame["ts"].max()) if len(frame) else "none",
        "missing_candles": len(missing),
        "missing": MetadataValue.md(describe_missing(missing)),
        "preview": MetadataValue.md(preview.to_markdown(index=False, floatfmt=".6g")),
    }
