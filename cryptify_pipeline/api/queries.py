"""Every read of the API: one small module of fixed SQL over a pool of read-only sessions.

Values are bound (symbols and models are also resolved against the configured and zoo names
before they get here); the only names in the SQL are the quoted schema and table names. Rows
leave Postgres as JSON built by ``json_build_object``: a month of candles and forecasts is one
round trip and no per-row Python, which is what keeps ``/history`` fast (docs/performance.md).
Doubles are written in their shortest exact form (``extra_float_digits=1``); NaN is never
stored (the IO manager writes NULL), so every number is valid JSON.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg2
import psycopg2.errors
import psycopg2.extensions

from cryptify_pipeline.postgres_url import DatabaseUrl

DEFAULT_MAX_CONNECTIONS = 8
CONNECT_TIMEOUT_SECONDS = 3
STATEMENT_TIMEOUT_MS = 10_000
POOL_WAIT_SECONDS = 10.0
# Every session is read-only whatever its role may do, in UTC, with exact floats.
_SESSION_OPTIONS = (
    "-c default_transaction_read_only=on "
    f"-c statement_timeout={STATEMENT_TIMEOUT_MS} "
    "-c TimeZone=UTC -c extra_float_digits=1"
)
DEFAULT_INSTANCE_SCHEMA = "dagster"  # as dagster.yaml's storage config names it
TABLES = (
    "candles", "features", "predictions", "models", "forecast_metrics", "leaderboard",
    "backtest", "backtest_summary",
)  # fmt: skip


class DatabaseUnavailable(RuntimeError):
    """The database cannot be reached or read; the message says why (no secrets)."""


class _BrokenConnection(DatabaseUnavailable):
    """A pooled connection that died (a server restart): worth one retry on a new one."""


class _Session(psycopg2.extensions.connection):
    """A pooled connection; ``reused`` once it has served a request (so its death is a
    server restart, worth one retry on a new connection)."""

    reused = False


@dataclass(frozen=True)
class JsonRows:
    """``count`` rows as one JSON array, text as Postgres wrote it."""

    count: int
    json: str


NO_ROWS = JsonRows(0, "[]")


def _identifier(name: str) -> str:
    if not name or "\x00" in name or len(name.encode()) > 63:
        raise ValueError(f"{name!r} is not a usable SQL name")
    return '"' + name.replace('"', '""') + '"'


def _filters(model: str | None, horizon: int | None) -> str:
    """The optional conditions, each on a bound value."""
    return ("" if model is None else " AND model = %(model)s") + (
        "" if horizon is None else " AND horizon_h = %(horizon)s"
    )


_BAR = (
    "json_build_object('timestamp', ts, 'symbol', symbol, 'open', open, 'high', high,"
    " 'low', low, 'close', close, 'volume', volume)"
)
# pred_price, lower and upper are close * exp(...), computed by ml/forecasting.py
_PREDICTION_FIELDS = (
    "'timestamp', ts, 'symbol', symbol, 'prediction_horizon', horizon_h,"
    " 'predicted_time', target_ts, 'predicted_value', pred_price,"
    " 'predicted_log_return', pred_log_return,"
    " 'model', coalesce(%(label)s, model), 'model_id', model"
)
# A forecast without an interval has no ci_low/ci_high at all: the old web app tests
# `ci_low !== undefined` and reads a null bound as its highest confidence.
_PREDICTION = (
    f"CASE WHEN lower IS NULL OR upper IS NULL THEN json_build_object({_PREDICTION_FIELDS})"
    f" ELSE json_build_object({_PREDICTION_FIELDS}, 'ci_low', lower, 'ci_high', upper) END"
)
_FEATURES = (
    "json_build_object('timestamp', f.ts, 'symbol', f.symbol, 'close', f.close,"
    " 'features', to_jsonb(f) - 'ts' - 'symbol' - 'close' - '_row')"
)
_INTERVAL_FIGURES = (
    "width_share", "interval_score", "pinball_lower", "pinball_upper", "coverage_low_vol",
    "coverage_mid_vol", "coverage_high_vol",
)  # fmt: skip
# read from the row as JSON (its alias s): a table written before these columns existed has
# none until its asset writes again, and reads them as null rather than failing
_SCORE_FIGURES = (
    "'n', n, 'mae', mae, 'rmse', rmse, 'r2_vs_zero', r2_vs_zero,"
    " 'directional_accuracy', directional_accuracy, 'coverage', coverage, "
    + ", ".join(f"'{name}', to_jsonb(s) -> '{name}'" for name in _INTERVAL_FIGURES)
)
_LEADERBOARD = (
    "json_build_object('symbol', symbol, 'horizon_h', horizon_h,"
    " 'model', coalesce(%(label)s, model), 'model_id', model, 'window', \"window\","
    f" {_SCORE_FIGURES}, 'skill_vs_zero', skill_vs_zero, 'rank', \"rank\")"
)
_DAY_SCORE = (
    "json_build_object('day', day, 'symbol', symbol, 'model', coalesce(%(label)s, model),"
    f" 'model_id', model, 'horizon_h', horizon_h, {_SCORE_FIGURES})"
)
_BACKTEST_FIELDS = (
    "rule", "sides", "fee_bps", "slippage_bps", "window", "first_hour", "last_hour", "hours",
    "total_return", "sharpe", "sortino", "max_drawdown", "turnover_per_day", "hit_rate",
    "exposure", "bh_total_return", "bh_sharpe", "bh_sortino", "bh_max_drawdown",
    "sharpe_p_vs_zero", "sharpe_p_vs_hold", "beats_zero", "beats_buy_and_hold", "test_note",
)  # fmt: skip
_BACKTEST = (
    "json_build_object('symbol', symbol, 'model', coalesce(%(label)s, model), 'model_id', model,"
    " 'horizon_h', horizon_h, "
    + ", ".join(f"'{name}', \"{name}\"" for name in _BACKTEST_FIELDS)
    + ")"
)
# a model's record: provenance and figures, never its bytes (`pipeline`) nor its signature
_MODEL_RECORD = (
    "json_build_object('day', day, 'symbol', symbol, 'model', model, 'horizon_h', horizon_h,"
    " 'cutoff', cutoff, 'fit_start', fit_start, 'fit_end', fit_end,"
    " 'validation_start', validation_start, 'validation_end', validation_end,"
    " 'fit_rows', fit_rows, 'validation_rows', validation_rows, 'features', features,"
    " 'val_mae', val_mae, 'val_rmse', val_rmse, 'val_r2_vs_zero', val_r2_vs_zero,"
    " 'val_directional_accuracy', val_directional_accuracy, 'interval_low', interval_low,"
    " 'interval_high', interval_high, 'interval_scale_median', interval_scale_median,"
    " 'artifact_format', artifact_format, 'sha256', sha256, 'library_versions', library_versions,"
    " 'sklearn_version', sklearn_version, 'python_version', python_version,"
    " 'signing_key_id', signing_key_id, 'trained_at', trained_at)"
)


class Database:
    """The asset tables in ``schema``, read through at most ``max_connections`` sessions.

    Connections are opened on first use, so the API starts (and answers ``/health`` with 503)
    while the database is down, and reconnects when it is back.
    """

    def __init__(
        self, url: DatabaseUrl, schema: str, max_connections: int = DEFAULT_MAX_CONNECTIONS,
        instance_schema: str = DEFAULT_INSTANCE_SCHEMA,
    ):  # fmt: skip
        self.url = url
        self.schema = schema
        self.max_connections = max_connections
        self._table = {name: f"{_identifier(schema)}.{_identifier(name)}" for name in TABLES}
        # the Dagster instance's run table, read for the run counts of /metrics
        self._runs = f"{_identifier(instance_schema)}.runs"
        # psycopg2's own pools keep only `minconn` idle connections and refuse rather than wait
        # when all are out; this one keeps every connection it opened and makes requests wait
        self._slots = threading.BoundedSemaphore(max_connections)
        self._idle: list[_Session] = []
        self._idle_lock = threading.Lock()

    # -- sessions --------------------------------------------------------------------------

    def close(self) -> None:
        with self._idle_lock:
            idle, self._idle = self._idle, []
        for connection in idle:
            connection.close()

    def _checkout(self) -> _Session:
        with self._idle_lock:
            if self._idle:
                return self._idle.pop()
        try:
            connection = psycopg2.connect(
                self.url.libpq, connect_timeout=CONNECT_TIMEOUT_SECONDS,
                options=_SESSION_OPTIONS, application_name="cryptify-api",
                connection_factory=_Session,
            )  # fmt: skip
        except psycopg2.Error as error:
            raise DatabaseUnavailable(_first_line(error)) from None
        connection.autocommit = True  # each SELECT its own (read-only) transaction
        return connection

    def _checkin(self, connection: _Session, broken: bool) -> None:
        if broken or connection.closed:
            connection.close()
            return
        connection.reused = True
        with self._idle_lock:
            self._idle.append(connection)

    @contextmanager
    def _connection(self) -> Iterator[_Session]:
        """A session from the pool: at most ``max_connections`` are open, idle ones are kept
        (newest first), dead ones dropped."""
        if not self._slots.acquire(timeout=POOL_WAIT_SECONDS):
            raise DatabaseUnavailable(
                f"all {self.max_connections} database connections stayed busy for "
                f"{POOL_WAIT_SECONDS:.0f} s"
            )
        try:
            connection = self._checkout()
            broken = False
            try:
                yield connection
            except psycopg2.errors.QueryCanceled:
                raise DatabaseUnavailable(
                    f"a query ran past the API's {STATEMENT_TIMEOUT_MS // 1000} s limit"
                ) from None
            except (psycopg2.OperationalError, psycopg2.InterfaceError) as error:
                broken = True
                unavailable = _BrokenConnection if connection.reused else DatabaseUnavailable
                raise unavailable(_first_line(error)) from None
            except psycopg2.errors.InsufficientPrivilege as error:
                raise DatabaseUnavailable(
                    f"the API's database role may not read the tables ({_first_line(error)}); "
                    "grant it SELECT on them (docs/data-api.md)"
                ) from None
            finally:
                self._checkin(connection, broken)
        finally:
            self._slots.release()

    def _rows(self, query: str, params: dict[str, Any]) -> list[tuple] | None:
        """The rows of one read; None when its table does not exist yet (nothing collected)."""
        for attempt in (1, 2):
            try:
                with self._connection() as connection, connection.cursor() as cursor:
                    cursor.execute(query, params)
                    return cursor.fetchall()
            except psycopg2.errors.UndefinedTable:
                return None
            except _BrokenConnection:
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def _json_rows(self, query: str, params: dict[str, Any]) -> JsonRows:
        rows = self._rows(query, params)
        if not rows:
            return NO_ROWS
        count, text = rows[0][:2]
        return JsonRows(int(count), text)

    # -- reads -----------------------------------------------------------------------------

    def ping(self) -> None:
        """Raises DatabaseUnavailable unless a query can run."""
        self._rows("SELECT 1", {})

    def latest_by_symbol(self, table: str, symbols: Sequence[str]) -> dict[str, datetime | None]:
        """The newest ``ts`` of each symbol in ``table`` (None where it has none)."""
        rows = self._rows(
            f"SELECT s.symbol, (SELECT max(t.ts) FROM {self._table[table]} t"
            " WHERE t.symbol = s.symbol) FROM unnest(%(symbols)s::text[]) AS s(symbol)",
            {"symbols": list(symbols)},
        )
        latest = dict(rows or [])
        return {symbol: latest.get(symbol) for symbol in symbols}

    def bars(self, symbol: str, start: datetime, end: datetime) -> JsonRows:
        """The stored candles of ``symbol`` with open time in [start, end), oldest first."""
        return self._json_rows(
            f"SELECT count(*), coalesce(json_agg({_BAR} ORDER BY ts), '[]')::text"
            f" FROM {self._table['candles']}"
            " WHERE symbol = %(symbol)s AND ts >= %(start)s AND ts < %(end)s",
            {"symbol": symbol, "start": start, "end": end},
        )

    def _chosen_forecasts(self, columns: str, filters: str) -> str:
        """``chosen``: the forecasts made in [start, end), plus those of the newest forecast
        hour before ``end`` when it precedes the window (the look ahead)."""
        table = self._table["predictions"]
        return (
            f"WITH newest AS (SELECT max(ts) AS ts FROM {table}"
            f"  WHERE symbol = %(symbol)s AND ts < %(end)s{filters}),"
            f" chosen AS (SELECT {columns} FROM {table}"
            f"  WHERE symbol = %(symbol)s AND ts >= %(start)s AND ts < %(end)s{filters}"
            f"  UNION ALL SELECT {columns} FROM {table} WHERE symbol = %(symbol)s"
            f"  AND ts = (SELECT ts FROM newest) AND ts < %(start)s{filters})"
        )

    def history_predictions(
        self,
        symbol: str,
        start: datetime,
        end: datetime,
        model: str | None,
        label: str | None,
        newest_only: bool,
    ) -> JsonRows:
        """The forecasts of ``_chosen_forecasts`` (made in [start, end), plus the look ahead):
        every one, oldest first; or with ``newest_only`` the newest per model and horizon,
        by horizon then model (the old backend's contract)."""
        if newest_only:
            shown = "SELECT DISTINCT ON (model, horizon_h) * FROM chosen"
            shown += " ORDER BY model, horizon_h, ts DESC"
            order = "horizon_h, model"
        else:
            shown, order = "SELECT * FROM chosen", "ts, model, horizon_h"
        return self._json_rows(
            f"{self._chosen_forecasts('*', _filters(model, None))}, shown AS ({shown})"
            f" SELECT count(*), coalesce(json_agg({_PREDICTION} ORDER BY {order}), '[]')::text"
            " FROM shown",
            {"symbol": symbol, "start": start, "end": end, "model": model, "label": label},
        )

    def history_fingerprint(
        self, symbol: str, start: datetime, end: datetime, model: str | None
    ) -> tuple | None:
        """What changes whenever the rows of ``bars`` and ``history_predictions`` change: their
        counts and the sums of their ``xmin`` (cache.py); None before the tables exist."""
        version = "sum(xmin::text::bigint)"
        rows = self._rows(
            f"{self._chosen_forecasts('xmin', _filters(model, None))},"
            f" bars AS (SELECT xmin FROM {self._table['candles']}"
            "  WHERE symbol = %(symbol)s AND ts >= %(start)s AND ts < %(end)s)"
            f" SELECT (SELECT count(*) FROM bars), (SELECT {version} FROM bars),"
            f" (SELECT count(*) FROM chosen), (SELECT {version} FROM chosen)",
            {"symbol": symbol, "start": start, "end": end, "model": model},
        )
        return tuple(rows[0]) if rows else None

    def latest_predictions(
        self, symbol: str, model: str | None, label: str | None, horizon: int | None, limit: int
    ) -> JsonRows:
        """The ``limit`` newest forecasts of ``symbol``, newest first."""
        return self._json_rows(
            f"SELECT count(*), coalesce(json_agg({_PREDICTION}"
            " ORDER BY ts DESC, horizon_h, model), '[]')::text"
            f" FROM (SELECT * FROM {self._table['predictions']}"
            f"  WHERE symbol = %(symbol)s{_filters(model, horizon)}"
            "  ORDER BY ts DESC, horizon_h, model LIMIT %(limit)s) p",
            {"symbol": symbol, "model": model, "label": label, "horizon": horizon,
             "limit": limit},
        )  # fmt: skip

    def newest_prediction(self, symbol: str, model: str, label: str, horizon: int) -> str | None:
        """The newest forecast of ``model`` ``horizon`` hours ahead as one JSON object; None
        before there is one."""
        rows = self._rows(
            f"SELECT ({_PREDICTION})::text FROM {self._table['predictions']}"
            f" WHERE symbol = %(symbol)s{_filters(model, horizon)} ORDER BY ts DESC LIMIT 1",
            {"symbol": symbol, "model": model, "label": label, "horizon": horizon},
        )
        return rows[0][0] if rows else None

    def latest_features(self, symbol: str, limit: int) -> JsonRows:
        """The ``limit`` newest feature rows of ``symbol``, newest first."""
        return self._json_rows(
            f"SELECT count(*), coalesce(json_agg({_FEATURES} ORDER BY f.ts DESC), '[]')::text"
            f" FROM (SELECT * FROM {self._table['features']} WHERE symbol = %(symbol)s"
            "  ORDER BY ts DESC LIMIT %(limit)s) f",
            {"symbol": symbol, "limit": limit},
        )

    def features(
        self, symbol: str, start: datetime, end: datetime, limit: int
    ) -> tuple[JsonRows, bool]:
        """The first ``limit`` feature rows in [start, end), oldest first, and whether more
        rows were there."""
        rows = self._rows(
            "SELECT count(*) FILTER (WHERE f._row <= %(limit)s), count(*) > %(limit)s,"
            f" coalesce(json_agg({_FEATURES} ORDER BY f.ts)"
            "  FILTER (WHERE f._row <= %(limit)s), '[]')::text"
            " FROM (SELECT *, row_number() OVER (ORDER BY ts) AS _row"
            f"  FROM {self._table['features']}"
            "  WHERE symbol = %(symbol)s AND ts >= %(start)s AND ts < %(end)s"
            "  ORDER BY ts LIMIT %(limit)s + 1) f",
            {"symbol": symbol, "start": start, "end": end, "limit": limit},
        )
        if not rows:
            return NO_ROWS, False
        count, truncated, text = rows[0]
        return JsonRows(int(count), text), bool(truncated)

    def leaderboard(
        self, symbol: str, model: str | None, label: str | None, horizon: int | None
    ) -> JsonRows:
        """The leaderboard's rows of ``symbol``: every window, ranked per horizon."""
        return self._json_rows(
            f"SELECT count(*), coalesce(json_agg({_LEADERBOARD}"
            ' ORDER BY horizon_h, "window", "rank", model), \'[]\')::text'
            f" FROM {self._table['leaderboard']} AS s"
            f" WHERE symbol = %(symbol)s{_filters(model, horizon)}",
            {"symbol": symbol, "model": model, "label": label, "horizon": horizon},
        )

    def backtest(
        self,
        symbol: str,
        model: str | None,
        label: str | None,
        horizon: int | None,
        window: str | None,
        rule: str | None,
    ) -> JsonRows:
        """The backtest summary's rows of ``symbol``, by horizon, rule, window and model."""
        conditions = _filters(model, horizon)
        conditions += "" if window is None else ' AND "window" = %(window)s'
        conditions += "" if rule is None else " AND rule = %(rule)s"
        return self._json_rows(
            f"SELECT count(*), coalesce(json_agg({_BACKTEST}"
            ' ORDER BY horizon_h, rule, "window", model, sides, fee_bps, slippage_bps),'
            f" '[]')::text FROM {self._table['backtest_summary']}"
            f" WHERE symbol = %(symbol)s{conditions}",
            {"symbol": symbol, "model": model, "label": label, "horizon": horizon,
             "window": window, "rule": rule},
        )  # fmt: skip

    def backtest_choices(self, symbol: str) -> tuple[list[str], list[str]]:
        """The windows and the rules the backtest summary holds for ``symbol``."""
        table = self._table["backtest_summary"]
        rows = self._rows(
            f'SELECT ARRAY(SELECT DISTINCT "window" FROM {table} WHERE symbol = %(symbol)s'
            ' ORDER BY "window"),'
            f" ARRAY(SELECT DISTINCT rule FROM {table} WHERE symbol = %(symbol)s ORDER BY rule)",
            {"symbol": symbol},
        )
        return (list(rows[0][0]), list(rows[0][1])) if rows else ([], [])

    def backtest_hours(
        self, symbol: str, row: dict[str, Any]
    ) -> list[tuple[datetime, list, list, list]]:
        """The backtested days behind one summary ``row`` (its model, horizon, rule, sides and
        costs, from its first to its last hour), oldest first: each day and its 24 hourly
        strategy, buy-and-hold and flat returns (None where a candle is missing)."""
        return (
            self._rows(
                "SELECT day, strategy_return, buy_and_hold_return, flat_return"
                f" FROM {self._table['backtest']}"
                " WHERE symbol = %(symbol)s AND model = %(model)s AND horizon_h = %(horizon)s"
                " AND rule = %(rule)s AND sides = %(sides)s AND fee_bps = %(fee_bps)s"
                " AND slippage_bps = %(slippage_bps)s AND day >= %(first)s AND day <= %(last)s"
                " ORDER BY day",
                {
                    "symbol": symbol,
                    "model": row["model_id"],
                    "horizon": row["horizon_h"],
                    "rule": row["rule"],
                    "sides": row["sides"],
                    "fee_bps": row["fee_bps"],
                    "slippage_bps": row["slippage_bps"],
                    "first": row["first_hour"],
                    "last": row["last_hour"],
                },
            )  # fmt: skip
            or []
        )

    def latest_scores(
        self, symbol: str, model: str | None, label: str | None, horizon: int | None
    ) -> tuple[datetime | None, JsonRows]:
        """The newest scored day of ``symbol`` and its scores."""
        table = self._table["forecast_metrics"]
        rows = self._rows(
            f"WITH newest AS (SELECT max(day) AS day FROM {table} WHERE symbol = %(symbol)s)"
            f" SELECT (SELECT day FROM newest), count(*), coalesce(json_agg({_DAY_SCORE}"
            " ORDER BY horizon_h, model), '[]')::text"
            f" FROM {table} AS s WHERE symbol = %(symbol)s AND day = (SELECT day FROM newest)"
            f"{_filters(model, horizon)}",
            {"symbol": symbol, "model": model, "label": label, "horizon": horizon},
        )
        if not rows:
            return None, NO_ROWS
        day, count, text = rows[0]
        return day, JsonRows(int(count), text)

    def newest_models(self, symbol: str) -> tuple[datetime | None, JsonRows]:
        """The newest training day of ``symbol`` and its model records, without the bytes."""
        table = self._table["models"]
        rows = self._rows(
            f"WITH newest AS (SELECT max(day) AS day FROM {table} WHERE symbol = %(symbol)s)"
            f" SELECT (SELECT day FROM newest), count(*), coalesce(json_agg({_MODEL_RECORD}"
            " ORDER BY horizon_h, model), '[]')::text"
            f" FROM {table} WHERE symbol = %(symbol)s AND day = (SELECT day FROM newest)",
            {"symbol": symbol},
        )
        if not rows:
            return None, NO_ROWS
        day, count, text = rows[0]
        return day, JsonRows(int(count), text)

    # -- monitoring (/metrics) --------------------------------------------------------------

    def recent_scores(self, days: int) -> list[tuple]:
        """Per symbol, model and horizon, the scores pooled over the symbol's last ``days``
        scored days: (symbol, model, horizon, n, sse, sum_abs_error, sum_y2, covered,
        interval_n, days)."""
        table = self._table["forecast_metrics"]
        return (
            self._rows(
                f"WITH newest AS (SELECT symbol, max(day) AS day FROM {table} GROUP BY symbol)"
                " SELECT f.symbol, f.model, f.horizon_h, sum(f.n)::float8, sum(f.sse)::float8,"
                " sum(f.sum_abs_error)::float8, sum(f.sum_y2)::float8, sum(f.covered)::float8,"
                " sum(f.interval_n)::float8, count(DISTINCT f.day)"
                f" FROM {table} f JOIN newest USING (symbol)"
                " WHERE f.day > newest.day - make_interval(days => %(days)s)"
                " GROUP BY 1, 2, 3 ORDER BY 1, 2, 3",
                {"days": days},
            )
            or []
        )

    def run_counts(self) -> list[tuple[str, str, int]]:
        """(job, status, runs) of the runs in the Dagster instance's storage."""
        rows = self._rows(
            f"SELECT pipeline_name, status, count(*) FROM {self._runs} GROUP BY 1, 2 ORDER BY 1, 2",
            {},
        )
        if rows is None:  # unlike an asset table, it exists once the instance has started
            raise DatabaseUnavailable(
                f"there is no Dagster run table {self._runs}: CRYPTIFY_INSTANCE_SCHEMA must name "
                "the storage schema of dagster.yaml"
            )
        return rows


def _first_line(error: Exception) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__
