"""Partitioned Postgres tables over ADBC: DDL, slice delete, binary COPY and reads.

Every function runs inside the caller's transaction (ADBC connections do not autocommit), so a
slice's delete and its new rows commit together or not at all. Names are quoted, values bound.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime

import adbc_driver_postgresql.dbapi as adbc
import pandas as pd
from adbc_driver_postgresql import StatementOptions

from cryptify_pipeline.postgres_url import DatabaseUrl
from cryptify_pipeline.storage.pg_types import ColumnTypeError, infer_pg_type, to_arrow, to_pandas

log = logging.getLogger(__name__)

_MAX_IDENTIFIER_BYTES = 63  # Postgres silently truncates longer names; we refuse them
_DDL_LOCK_KEY = "cryptify-ddl"
_UNDEFINED_TABLE = "42P01"
# A slice replaced with the key and index built anew: at least this many rows and this share
# of the table (below, maintaining them row by row is cheaper than building them over all rows).
BULK_MIN_ROWS = 50_000
BULK_SHARE = 0.25
# A write analyses its table when it adds at least this many rows and this share of it.
ANALYZE_MIN_ROWS = 10_000
ANALYZE_SHARE = 0.1
# Reads bind their values to these transaction-local settings (see ``StreamedSelect``).
_BIND_SETTING = "cryptify.bind_"
# maintenance_work_mem for building keys and indexes (never lowered below the server's).
INDEX_BUILD_MEMORY = "256MB"
# Rows per Arrow batch streamed through COPY (~6 MB of wire data for candle-shaped rows).
COPY_BATCH_ROWS = 65_536


class TableError(ValueError):
    """A write or read that does not fit its table."""


@dataclass(frozen=True)
class TimeRange:
    """Rows whose ``column`` lies in [start, end)."""

    column: str
    start: datetime
    end: datetime


@dataclass(frozen=True)
class ValueSet:
    """Rows whose ``column`` is one of ``values``."""

    column: str
    values: tuple[str, ...]


Predicate = TimeRange | ValueSet


@dataclass(frozen=True)
class TableSpec:
    schema: str
    table: str
    primary_key: tuple[str, ...] = ()


def quote_ident(name: str) -> str:
    """``name`` as a quoted SQL identifier."""
    if not name or "\x00" in name:
        raise TableError(f"{name!r} is not a usable SQL name (empty or contains NUL)")
    if len(name.encode()) > _MAX_IDENTIFIER_BYTES:
        raise TableError(f"name {name!r} is longer than Postgres's {_MAX_IDENTIFIER_BYTES} bytes")
    return '"' + name.replace('"', '""') + '"'


def qualified_name(schema: str, table: str) -> str:
    return f"{quote_ident(schema)}.{quote_ident(table)}"


@contextmanager
def transaction(url: DatabaseUrl, application_name: str = "cryptify") -> Iterator[adbc.Connection]:
    """One connection, one transaction: committed on success, rolled back on any error."""
    separator = "&" if "?" in url.libpq else "?"
    with url.errors_redacted():
        connection = adbc.connect(f"{url.libpq}{separator}application_name={application_name}")
    try:
        with connection.cursor() as cursor:
            cursor.execute("SET TIME ZONE 'UTC'")
        yield connection
        connection.commit()
    except BaseException:
        connection.rollback()
        raise
    finally:
        connection.close()


def _parameter(number: int, pg_type: str) -> str:
    return f"${number}"


def _session_value(number: int, pg_type: str) -> str:
    # An uncorrelated sub-select is evaluated once per query, so the value is a constant to
    # the executor (an index bound), not a function called on every row.
    value = f"current_setting('{_BIND_SETTING}{number}')::{pg_type}"
    if pg_type.endswith("[]"):  # ANY((SELECT ...)) would compare with rows, not elements
        return f"ARRAY(SELECT unnest({value}))"
    return f"(SELECT {value})"


def where_clause(
    predicates: Sequence[Predicate], placeholder: Callable[[int, str], str] = _parameter
) -> tuple[str, list[object]]:
    """A WHERE condition with ``$n`` placeholders (or what ``placeholder`` makes of the n-th
    value and its type), and the values to bind to them."""
    parts: list[str] = []
    params: list[object] = []
    for predicate in predicates:
        column = quote_ident(predicate.column)
        if isinstance(predicate, TimeRange):
            params += [predicate.start, predicate.end]
            start = placeholder(len(params) - 1, "timestamptz")
            parts.append(
                f"{column} >= {start} AND {column} < {placeholder(len(params), 'timestamptz')}"
            )
        elif predicate.values:
            params.append(list(predicate.values))
            parts.append(f"{column} = ANY({placeholder(len(params), 'text[]')})")
        else:
            parts.append("FALSE")
    return " AND ".join(parts) or "TRUE", params


def table_columns(connection: adbc.Connection, schema: str, table: str) -> dict[str, str] | None:
    """The table's columns and their types in order, or None if there is no such table."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT a.attname, format_type(a.atttypid, a.atttypmod)"
            " FROM pg_attribute a"
            " JOIN pg_class c ON c.oid = a.attrelid"
            " JOIN pg_namespace n ON n.oid = c.relnamespace"
            " WHERE n.nspname = $1 AND c.relname = $2 AND c.relkind IN ('r', 'p')"
            " AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum",
            parameters=(schema, table),
        )
        rows = cursor.fetchall()
    return {name: pg_type for name, pg_type in rows} or None


def _ddl_lock(connection: adbc.Connection) -> None:
    # Two first writes racing on CREATE ... IF NOT EXISTS can both pass the check and one then
    # fails on the catalog's unique index; a transaction-scoped advisory lock serialises them.
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(hashtext($1))", parameters=(_DDL_LOCK_KEY,))
        cursor.fetchall()


def ensure_schema(connection: adbc.Connection, schema: str) -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1 FROM pg_namespace WHERE nspname = $1", parameters=(schema,))
        if cursor.fetchall():
            return
    _ddl_lock(connection)
    with connection.cursor() as cursor:
        cursor.execute(f"CREATE SCHEMA IF NOT EXISTS {quote_ident(schema)}")


def delete_rows(
    connection: adbc.Connection, schema: str, table: str, predicates: Sequence[Predicate]
) -> int:
    """Delete the slice the predicates select; 0 when the table does not exist yet."""
    if table_columns(connection, schema, table) is None:
        return 0
    condition, params = where_clause(predicates)
    with connection.cursor() as cursor:
        # ADBC reports no rowcount for DELETE; counting in the same statement costs nothing.
        cursor.execute(
            f"WITH deleted AS (DELETE FROM {qualified_name(schema, table)} WHERE {condition}"
            " RETURNING 1) SELECT count(*) FROM deleted",
            parameters=params or None,
        )
        return int(cursor.fetchone()[0])


def write_frame(
    connection: adbc.Connection,
    spec: TableSpec,
    frame: pd.DataFrame,
    predicates: Sequence[Predicate],
    on_migration: Callable[[str], None] = log.warning,
) -> dict[str, str]:
    """COPY ``frame`` into the table, creating or extending it first; returns its column types.

    Every row must fall inside the slice ``predicates`` select, or re-materialising the slice
    would leave stray rows behind.
    """
    _check_frame(frame, predicates)
    columns, index_statements, created = _prepare_table(
        connection, spec, frame, predicates, on_migration
    )
    _copy(connection, spec, frame, columns)
    # A new table's key and index are built after its first COPY, in the same transaction:
    # one bulk build is faster than maintaining them row by row.
    _build(connection, index_statements)
    if created:
        _analyze_if_grown(connection, spec, len(frame), table_rows=0)
    return columns


def replace_slice(
    connection: adbc.Connection,
    spec: TableSpec,
    frame: pd.DataFrame,
    predicates: Sequence[Predicate],
    on_migration: Callable[[str], None] = log.warning,
) -> tuple[dict[str, str], int]:
    """Put ``frame``'s rows in place of the slice ``predicates`` select, creating or extending
    the table first; returns its column types and the number of rows deleted.

    A slice that holds a large share of the table is replaced with the table's primary key
    and partition index dropped and built again after the COPY, in the same transaction: a
    key maintained row by row checks every new row against the deleted row it replaces, which
    made a rewrite of the whole table 3x slower than its first write. That path holds the
    table exclusively until commit (readers wait); smaller slices lock only their rows.
    """
    _check_frame(frame, predicates)
    columns, index_statements, created = _prepare_table(
        connection, spec, frame, predicates, on_migration
    )
    deleted, table_rows = 0, 0.0
    if not created:
        _claim_rewrite(connection, spec)
        slice_rows, table_rows = _estimated_rows(connection, spec, predicates)
        if slice_rows >= BULK_MIN_ROWS and slice_rows >= BULK_SHARE * table_rows:
            index_statements = _drop_own_indexes(connection, spec, predicates)
        deleted = delete_rows(connection, spec.schema, spec.table, predicates)
    _copy(connection, spec, frame, columns)
    _build(connection, index_statements)
    _analyze_if_grown(connection, spec, len(frame) - deleted, table_rows)
    return columns, deleted


def _prepare_table(
    connection: adbc.Connection,
    spec: TableSpec,
    frame: pd.DataFrame,
    predicates: Sequence[Predicate],
    on_migration: Callable[[str], None],
) -> tuple[dict[str, str], list[str], bool]:
    """The table's columns, after creating or extending it for ``frame``; for a new table,
    the statements that build its key and index once its rows are in; and whether it is new."""
    frame_types = {str(name): infer_pg_type(str(name), frame[name]) for name in frame.columns}
    columns = table_columns(connection, spec.schema, spec.table)
    if columns is None:
        _ddl_lock(connection)
        columns = table_columns(connection, spec.schema, spec.table)
    if columns is None:
        return *_create_table(connection, spec, frame_types, predicates), True
    return _reconcile(connection, spec, columns, frame_types, on_migration), [], False


def _copy(
    connection: adbc.Connection, spec: TableSpec, frame: pd.DataFrame, columns: dict[str, str]
) -> None:
    if not len(frame):
        return
    # Batches stream through one COPY, so the driver never holds the whole frame's wire form.
    batches = to_arrow(frame, columns).to_reader(max_chunksize=COPY_BATCH_ROWS)
    with connection.cursor() as cursor:
        cursor.adbc_ingest(spec.table, batches, mode="append", db_schema_name=spec.schema)


def _build(connection: adbc.Connection, statements: Sequence[str]) -> None:
    """Build keys and indexes with room to sort: at Postgres's default 64 MB of
    maintenance_work_mem, a million-row key sorted on disk and took 1.4x as long."""
    if statements:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT set_config('maintenance_work_mem', $1, true) WHERE"
                " pg_size_bytes(current_setting('maintenance_work_mem')) < pg_size_bytes($1)",
                parameters=(INDEX_BUILD_MEMORY,),
            )
            cursor.fetchall()
    _execute(connection, statements)


def _execute(connection: adbc.Connection, statements: Sequence[str]) -> None:
    with connection.cursor() as cursor:
        for statement in statements:
            cursor.execute(statement)


def _claim_rewrite(connection: adbc.Connection, spec: TableSpec) -> None:
    """Queue behind any other transaction replacing a slice of the table. The estimate below
    holds a shared lock until commit and the bulk path then asks for an exclusive one: two
    rewrites that both held the shared lock would wait on each other (a deadlock). This lock
    lets readers and row writes through; it conflicts with itself, VACUUM, ANALYZE and DDL."""
    with connection.cursor() as cursor:
        table = qualified_name(spec.schema, spec.table)
        cursor.execute(f"LOCK TABLE {table} IN SHARE UPDATE EXCLUSIVE MODE")


def _estimated_rows(
    connection: adbc.Connection, spec: TableSpec, predicates: Sequence[Predicate]
) -> tuple[float, float]:
    """The planner's estimates of the rows in the slice and in the whole table (free, unlike
    counting; good enough to choose how to replace the slice)."""
    table = qualified_name(spec.schema, spec.table)
    condition, params = where_clause(predicates)
    estimates = []
    with connection.cursor() as cursor:
        # The driver runs a query without parameters as COPY (...) TO STDOUT, which EXPLAIN
        # cannot be part of.
        cursor.adbc_statement.set_options(**{StatementOptions.USE_COPY.value: "false"})
        for query, bound in (
            (f"SELECT 1 FROM {table} WHERE {condition}", params),
            (f"SELECT 1 FROM {table}", []),
        ):
            cursor.execute(f"EXPLAIN (FORMAT JSON) {query}", parameters=bound or None)
            estimates.append(float(json.loads(cursor.fetchone()[0])[0]["Plan"]["Plan Rows"]))
    return estimates[0], estimates[1]


def _drop_own_indexes(
    connection: adbc.Connection, spec: TableSpec, predicates: Sequence[Predicate]
) -> list[str]:
    """Lock the table, drop the primary key and partition indexes this module made for it,
    and return the statements that build them again. A key that differs from ``spec``'s, or
    that another table's foreign key references, is kept (maintained row by row)."""
    table = qualified_name(spec.schema, spec.table)
    with connection.cursor() as cursor:
        cursor.execute(f"LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE")
        cursor.execute(
            "SELECT con.conname, array_agg(a.attname::text ORDER BY k.ord),"
            " EXISTS (SELECT 1 FROM pg_constraint f WHERE f.confrelid = con.conrelid)"
            " FROM pg_constraint con"
            " CROSS JOIN unnest(con.conkey) WITH ORDINALITY AS k(attnum, ord)"
            " JOIN pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = k.attnum"
            " WHERE con.conrelid = to_regclass($1) AND con.contype = 'p' GROUP BY con.oid",
            parameters=(table,),
        )
        key = cursor.fetchall()
        cursor.execute(
            "SELECT c.relname FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid"
            " WHERE i.indrelid = to_regclass($1)",
            parameters=(table,),
        )
        indexes = {name for (name,) in cursor.fetchall()}
    drops, builds = [], []
    if key and spec.primary_key and tuple(key[0][1]) == spec.primary_key and not key[0][2]:
        drops.append(f"ALTER TABLE {table} DROP CONSTRAINT {quote_ident(key[0][0])}")
        builds.append(
            f"ALTER TABLE {table} ADD PRIMARY KEY ({', '.join(map(quote_ident, spec.primary_key))})"
        )
    for column in dict.fromkeys(p.column for p in predicates):
        name = _index_name(spec, column)
        if name in indexes:
            drops.append(f"DROP INDEX {qualified_name(spec.schema, name)}")
            builds.append(_index_statement(spec, column))
    _execute(connection, drops)
    return builds


def _analyze_if_grown(
    connection: adbc.Connection, spec: TableSpec, added: int, table_rows: float
) -> None:
    # Autovacuum analyses a table only a minute or so after a big change; until then the
    # planner, with no statistics, sorted a million rows on disk (1.5 s) where an index scan
    # returns them in order (0.4 s). A write that grows the table a lot analyses it at once
    # (a sample), in the same transaction; a rewrite of the same rows changes little.
    if added >= ANALYZE_MIN_ROWS and added >= ANALYZE_SHARE * table_rows:
        with connection.cursor() as cursor:
            cursor.execute(f"ANALYZE {qualified_name(spec.schema, spec.table)}")


def _check_frame(frame: pd.DataFrame, predicates: Sequence[Predicate]) -> None:
    names = [str(name) for name in frame.columns]
    duplicated = sorted({name for name in names if names.count(name) > 1})
    if duplicated:
        raise TableError(f"frame has duplicate column names: {', '.join(duplicated)}")
    for predicate in predicates:
        if predicate.column not in frame.columns:
            raise TableError(
                f"frame has no column {predicate.column!r}, the partition column "
                f"(partition_expr); columns: {', '.join(names)}"
            )
        values = frame[predicate.column]
        if isinstance(predicate, TimeRange):
            if not isinstance(values.dtype, pd.DatetimeTZDtype):
                raise TableError(
                    f"partition column {predicate.column!r} must hold tz-aware timestamps, "
                    f"not {values.dtype}"
                )
            inside = (values >= predicate.start) & (values < predicate.end)
            bounds = f"[{predicate.start.isoformat()}, {predicate.end.isoformat()})"
        else:
            inside = values.isin(predicate.values)
            bounds = f"{{{', '.join(predicate.values)}}}"
        if not inside.all():
            outside = values[~inside]
            raise TableError(
                f"{len(outside)} row(s) have {predicate.column!r} outside the partition "
                f"{bounds}, e.g. {outside.iloc[0]!r}"
            )


def _create_table(
    connection: adbc.Connection,
    spec: TableSpec,
    frame_types: dict[str, str | None],
    predicates: Sequence[Predicate],
) -> tuple[dict[str, str], list[str]]:
    """Create the bare table; returns its columns and the key and index statements to run."""
    untyped = [name for name, pg_type in frame_types.items() if pg_type is None]
    if untyped:
        raise ColumnTypeError(
            f"cannot create {spec.schema}.{spec.table}: column(s) {', '.join(untyped)} hold only "
            "nulls in an object column, so their type is unknown; give them a dtype"
        )
    missing_key = [name for name in spec.primary_key if name not in frame_types]
    if missing_key:
        raise TableError(f"primary key column(s) {', '.join(missing_key)} are not in the frame")
    columns = {name: str(pg_type) for name, pg_type in frame_types.items()}
    table = qualified_name(spec.schema, spec.table)
    definitions = ", ".join(f"{quote_ident(name)} {t}" for name, t in columns.items())
    with connection.cursor() as cursor:
        cursor.execute(f"CREATE TABLE {table} ({definitions})")
    index_statements = []
    if spec.primary_key:
        key = ", ".join(map(quote_ident, spec.primary_key))
        index_statements.append(f"ALTER TABLE {table} ADD PRIMARY KEY ({key})")
    for column in dict.fromkeys(p.column for p in predicates):
        if spec.primary_key[:1] != (column,):  # else the key's index already leads with it
            index_statements.append(_index_statement(spec, column))
    log.info("created table %s.%s with columns %s", spec.schema, spec.table, columns)
    return columns, index_statements


def _index_statement(spec: TableSpec, column: str) -> str:
    return (
        f"CREATE INDEX {quote_ident(_index_name(spec, column))} "
        f"ON {qualified_name(spec.schema, spec.table)} ({quote_ident(column)})"
    )


def _index_name(spec: TableSpec, column: str) -> str:
    # Derived names must stay within 63 bytes whatever the table and column names are.
    digest = hashlib.sha1(f"{spec.schema}.{spec.table}.{column}".encode()).hexdigest()[:10]
    return f"{spec.table[:40]}_{column[:10]}_{digest}_idx"


def _reconcile(
    connection: adbc.Connection,
    spec: TableSpec,
    columns: dict[str, str],
    frame_types: dict[str, str | None],
    on_migration: Callable[[str], None],
) -> dict[str, str]:
    name = f"{spec.schema}.{spec.table}"
    missing = [column for column in columns if column not in frame_types]
    if missing:
        raise TableError(
            f"frame lacks column(s) {', '.join(missing)} of table {name}; "
            f"the frame has {', '.join(frame_types)}"
        )
    mismatched = [
        f"{column} (table: {columns[column]}, frame: {pg_type})"
        for column, pg_type in frame_types.items()
        if column in columns and pg_type is not None and pg_type != columns[column]
    ]
    if mismatched:
        raise ColumnTypeError(f"column types differ from table {name}: {'; '.join(mismatched)}")
    added = {column: t for column, t in frame_types.items() if column not in columns}
    untyped = [column for column, pg_type in added.items() if pg_type is None]
    if untyped:
        raise ColumnTypeError(
            f"cannot add column(s) {', '.join(untyped)} to {name}: they hold only nulls in an "
            "object column, so their type is unknown; give them a dtype"
        )
    if added:
        with connection.cursor() as cursor:
            for column, pg_type in added.items():
                cursor.execute(
                    f"ALTER TABLE {qualified_name(spec.schema, spec.table)} "
                    f"ADD COLUMN {quote_ident(column)} {pg_type}"
                )
        on_migration(
            f"schema migration: added nullable column(s) "
            f"{', '.join(f'{c} {t}' for c, t in added.items())} to {name}; "
            "earlier rows hold NULL there"
        )
    return {**columns, **{column: str(t) for column, t in added.items()}}


def latest(connection: adbc.Connection, schema: str, table: str, column: str) -> object | None:
    """The largest value of ``column``; None when the table is empty or does not exist."""
    if table_columns(connection, schema, table) is None:
        return None
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT max({quote_ident(column)}) FROM {qualified_name(schema, table)}")
        return cursor.fetchone()[0]


def select_statement(
    schema: str,
    table: str,
    columns: Sequence[str] | None,
    predicates: Sequence[Predicate],
    placeholder: Callable[[int, str], str] = _parameter,
) -> tuple[str, list[object]]:
    """The query that reads a slice, ordered by its partition columns, with its bind values."""
    selected = ", ".join(map(quote_ident, columns)) if columns else "*"
    condition, params = where_clause(predicates, placeholder)
    query = f"SELECT {selected} FROM {qualified_name(schema, table)} WHERE {condition}"
    order = ", ".join(dict.fromkeys(quote_ident(p.column) for p in predicates))
    return (f"{query} ORDER BY {order}" if order else query), params


@dataclass(frozen=True)
class StreamedSelect:
    """A slice's query in the form the driver streams: without parameters.

    ADBC runs a query that has none as ``COPY (...) TO STDOUT`` and converts its rows batch
    by batch; one with parameters is fetched whole into a libpq result first, which held
    ~290 MB for a million candle rows (4x the frame). So ``bind`` (with ``values`` as its
    parameters) first puts the values into transaction-local settings, and ``query`` reads
    them there: values are still bound, never pasted into SQL.
    """

    bind: str
    values: list[str]
    query: str


def streamed_select(
    schema: str,
    table: str,
    columns: Sequence[str] | None,
    predicates: Sequence[Predicate],
) -> StreamedSelect:
    query, params = select_statement(schema, table, columns, predicates, _session_value)
    settings = ", ".join(
        f"set_config('{_BIND_SETTING}{number}', ${number}, true)"
        for number in range(1, len(params) + 1)
    )
    return StreamedSelect(f"SELECT {settings}", [_setting_text(v) for v in params], query)


def _setting_text(value: object) -> str:
    if isinstance(value, datetime):
        return value.isoformat()  # read in the session's time zone (UTC) when naive
    if isinstance(value, list):  # an array literal: every element quoted, quotes escaped
        return "{" + ",".join(_array_element(str(v)) for v in value) + "}"
    raise TypeError(f"no setting text for {type(value).__name__}")


def _array_element(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def read_frame(
    connection: adbc.Connection,
    schema: str,
    table: str,
    columns: Sequence[str] | None,
    predicates: Sequence[Predicate],
) -> pd.DataFrame:
    """The slice as a frame, in one query, streamed."""
    select = streamed_select(schema, table, columns, predicates)
    with connection.cursor() as cursor:
        if select.values:
            cursor.execute(select.bind, parameters=select.values)
            cursor.fetchall()
        try:
            cursor.execute(select.query)
        except adbc.ProgrammingError as error:
            if getattr(error, "sqlstate", None) == _UNDEFINED_TABLE:
                raise TableError(
                    f"table {schema}.{table} does not exist; materialise its asset first"
                ) from None
            raise
        return to_pandas(cursor.fetch_record_batch())
