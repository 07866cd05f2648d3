"""``open_interest``, ``funding_rates`` and ``equity_index``: the market context beside the
candles, on the same hourly partitions.

Context never blocks a collection: a source that fails (or is not configured) is a warning with
the reason, and the step still succeeds, writing the rows the partitions already held (nothing
is lost) with ``source_status`` saying why in the materialisation's metadata. The completeness
checks then show the hours that are missing, and gap repair asks again for the hours whose
latest materialisation failed for a transient reason (``RETRYABLE``). A source that returns
fewer rows than are stored keeps the stored rows it lacks, with a warning and
``kept_stored_rows``.
"""

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import pandas as pd
from dagster import (
    AssetExecutionContext,
    AssetsDefinition,
    BackfillPolicy,
    Failure,
    MetadataValue,
    Output,
    asset,
)

from cryptify_pipeline.assets.columns import EQUITY_INDEX, FUNDING_RATES, OPEN_INTEREST, described
from cryptify_pipeline.assets.run_metadata import output_once_per_run
from cryptify_pipeline.market.candles import describe_missing
from cryptify_pipeline.market.context import (
    CONTEXT_TABLE_NAMES,
    DISABLED,
    EQUITY_INDEX_COLUMNS,
    FAILED,
    FUNDING_COLUMNS,
    FUNDING_EVERY_HOURS,
    OK,
    OPEN_INTEREST_COLUMNS,
    RETRYABLE,
    STATUS_KEY,
    empty_equity_index,
    empty_funding_rates,
    empty_open_interest,
    funding_gaps,
    lost_rows,
    missing_hours,
    typed_equity_index,
    typed_funding_rates,
    typed_open_interest,
    validate_context,
)
from cryptify_pipeline.market.errors import RetryableSourceError, SourceError
from cryptify_pipeline.partitions import Partitions
from cryptify_pipeline.resources import MarketData, PostgresDatabase


@dataclass(frozen=True)
class ContextTable:
    """How one context table is fetched, typed and keyed."""

    name: str
    key: str  # symbol or index_symbol
    columns: tuple[str, ...]
    typed: Callable[[pd.DataFrame], pd.DataFrame]
    empty: Callable[[], pd.DataFrame]
    description: str
    column_descriptions: dict[str, str]


OPEN_INTEREST_TABLE = ContextTable(
    "open_interest", "symbol", OPEN_INTEREST_COLUMNS, typed_open_interest, empty_open_interest,
    "Open interest of each configured symbol's perpetual swap (BTC/USDT:USDT) measured at the "
    "start of the partition's hour, known then. From CRYPTIFY_CONTEXT_SOURCE (bybit by default "
    "with a real market, the sample market's with CRYPTIFY_SOURCE=sample).",
    OPEN_INTEREST,
)  # fmt: skip
FUNDING_TABLE = ContextTable(
    "funding_rates", "symbol", FUNDING_COLUMNS, typed_funding_rates, empty_funding_rates,
    "Funding rates of each configured symbol's perpetual swap, with the exchange's own funding "
    "time (8-hourly): most hours hold none.",
    FUNDING_RATES,
)  # fmt: skip
EQUITY_INDEX_TABLE = ContextTable(
    "equity_index", "index_symbol", EQUITY_INDEX_COLUMNS, typed_equity_index,
    empty_equity_index,
    "Hourly bars of the equity index futures in CRYPTIFY_EQUITY_INDEXES (ES=F, the S&P 500 "
    "E-mini, by default); an hour the market is shut is a row with market_open = false and no "
    "prices. The bar of ts closes at ts + 1 h.",
    EQUITY_INDEX,
)  # fmt: skip
CONTEXT_TABLES = (OPEN_INTEREST_TABLE, FUNDING_TABLE, EQUITY_INDEX_TABLE)
assert tuple(table.name for table in CONTEXT_TABLES) == CONTEXT_TABLE_NAMES


def context_assets(partitions: Partitions) -> list[AssetsDefinition]:
    """The three context assets on ``partitions``' hours."""
    return [_context_asset(partitions, table) for table in CONTEXT_TABLES]


def _context_asset(partitions: Partitions, table: ContextTable) -> AssetsDefinition:
    @asset(
        name=table.name,
        partitions_def=partitions.hourly,
        backfill_policy=BackfillPolicy.single_run(),
        metadata={
            "partition_expr": "ts",
            "primary_key": [table.key, "ts"],
            **described(table.column_descriptions),
        },
        group_name="market",
        kinds={"postgres"},
        description=table.description,
        pool=table.name,  # one writer per table: see dagster.yaml's pools
    )
    def _asset(
        context: AssetExecutionContext, market: MarketData, database: PostgresDatabase
    ) -> Output[pd.DataFrame]:
        window = context.partition_time_window
        now = datetime.now(UTC)
        if window.end > now:
            raise Failure(
                f"hours up to {window.end:%Y-%m-%d %H:%M} UTC have not all closed yet",
                allow_retries=False,
            )
        keys = market.equity_indexes if table is EQUITY_INDEX_TABLE else market.symbols
        stored = _stored(database, table, window.start, window.end)
        status, reason, source_name = OK, "", "none"
        try:
            fetched, source_name = _fetch(market, table, keys, window.start, window.end)
            if fetched is None:
                status, reason, fetched = DISABLED, _disabled_reason(table), table.empty()
            fetched = table.typed(fetched[fetched[table.key].isin(keys)])
            validate_context(fetched, table.name, window.start, window.end)
        except RetryableSourceError as error:
            status, reason, fetched = RETRYABLE, str(error), table.empty()
        except (SourceError, ValueError, ImportError) as error:
            status, reason, fetched = FAILED, str(error), table.empty()
        if status in (RETRYABLE, FAILED):
            context.log.warning(
                f"{table.name}: the source failed ({status}); keeping the {len(stored)} stored "
                f"row(s) of these hours, the collection goes on: {reason}"
            )
        if status == OK:
            lost = lost_rows(stored, fetched, table.key)
            frame = _keeping(stored, fetched, lost, table)
        else:  # nothing fetched: the partitions keep every row they had
            lost, frame = stored, stored
        if status == OK and not lost.empty:
            context.log.warning(
                f"{table.name}: {source_name} returned no row for {len(lost)} stored row(s); "
                "keeping them"
            )
        missing = missing_context(frame, table, keys, window.start, window.end)
        summary = {
            STATUS_KEY: status,
            "reason": reason or "none",
            "source": source_name,
            "rows": len(frame),
            "fetched_rows": len(fetched),
            "kept_stored_rows": len(lost),
            "missing_hours": len(missing),
        }
        details = {
            "missing": MetadataValue.md(describe_missing(missing, key=table.key, what="hours")),
            "preview": MetadataValue.md(frame.tail(10).to_markdown(index=False, floatfmt=".6g")),
        }
        return output_once_per_run(context, frame, summary, details)

    return _asset


def _fetch(
    market: MarketData, table: ContextTable, keys: Sequence[str], start: datetime, end: datetime
) -> tuple[pd.DataFrame | None, str]:
    if table is EQUITY_INDEX_TABLE:
        source = market.equity_index_source()
        return (None, "none") if source is None else (source.fetch(keys, start, end), source.name)
    source = market.derivatives_source()
    if source is None:
        return None, "none"
    if table is OPEN_INTEREST_TABLE:
        return source.fetch_open_interest(keys, start, end), source.name
    return source.fetch_funding_rates(keys, start, end), source.name


def _disabled_reason(table: ContextTable) -> str:
    variable = (
        "CRYPTIFY_EQUITY_INDEX_SOURCE" if table is EQUITY_INDEX_TABLE else "CRYPTIFY_CONTEXT_SOURCE"
    )
    return f"{variable}=none"


def _stored(
    database: PostgresDatabase, table: ContextTable, start: datetime, end: datetime
) -> pd.DataFrame:
    """The rows stored in [start, end); none when the table is empty or absent."""
    latest = database.latest_ts(table.name)
    if latest is None or latest < start:  # the hourly run's usual case: a new hour
        return table.empty()
    return table.typed(database.read_time_range(table.name, start, end, list(table.columns)))


def _keeping(
    stored: pd.DataFrame, fetched: pd.DataFrame, lost: pd.DataFrame, table: ContextTable
) -> pd.DataFrame:
    """``fetched``, with the stored rows of the keys in ``lost`` instead of anything fetched
    for them."""
    if lost.empty:
        return fetched
    lost_keys = pd.MultiIndex.from_frame(lost)

    def keyed(frame: pd.DataFrame) -> pd.MultiIndex:
        return pd.MultiIndex.from_arrays([frame[table.key].astype("str"), frame["ts"]])

    kept = stored[keyed(stored).isin(lost_keys)]
    fresh = fetched[~keyed(fetched).isin(lost_keys)]
    parts = [part for part in (fresh, kept) if not part.empty]
    return table.typed(pd.concat(parts)) if parts else table.empty()


def missing_context(
    frame: pd.DataFrame, table: ContextTable, keys: Sequence[str], start: datetime, end: datetime
) -> pd.DataFrame:
    """Hours without a row; for funding, the 8-hourly funding times without a rate."""
    if table is FUNDING_TABLE:
        return funding_gaps(frame, keys, start, end, FUNDING_EVERY_HOURS)
    return missing_hours(frame, keys, table.key, start, end)
