"""The API's sessions: read-only, pooled, surviving a server's restart of their connections,
and the read-only role docs/data-api.md's GRANTs describe."""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

import psycopg2.errors
import pytest
from dagster import materialize

from cryptify_pipeline.api.queries import Database, DatabaseUnavailable
from cryptify_pipeline.postgres_url import DatabaseUrl
from cryptify_pipeline_tests.support import pipeline
from cryptify_pipeline_tests.support.database import run_sql, suite_database_url
from cryptify_pipeline_tests.support.pipeline import range_tags

FIRST, LAST = datetime(2025, 3, 1, tzinfo=UTC), datetime(2025, 3, 1, 2, tzinfo=UTC)
WINDOW = (FIRST, datetime(2025, 3, 2, tzinfo=UTC))


def write_candles(instance, schema: str) -> None:
    result = materialize(
        [pipeline.assets()["candles"]], instance=instance, resources=pipeline.resources(schema),
        tags=range_tags("2025-03-01-00:00", "2025-03-01-02:00"),
    )  # fmt: skip
    assert result.success


@pytest.fixture
def candles(instance, schema) -> str:
    write_candles(instance, schema)
    return schema


def test_sessions_are_read_only_whatever_the_role_may_do(candles):
    database = Database(suite_database_url(), candles)
    assert database.bars("BTC/USDT", *WINDOW).count == 3
    # the suite's role owns the tables, yet the API's session cannot write
    with pytest.raises(psycopg2.errors.ReadOnlySqlTransaction):
        database._rows(f'DELETE FROM "{candles}".candles', {})
    assert database.bars("BTC/USDT", *WINDOW).count == 3
    database.close()


def test_a_restarted_connection_is_replaced_without_an_error(candles):
    database = Database(suite_database_url(), candles, max_connections=2)
    assert database.bars("ETH/USDT", *WINDOW).count == 3
    killed = run_sql(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
        " WHERE application_name = 'cryptify-api' AND datname = current_database()"
        " AND query LIKE %s",
        (f'%"{candles}".%',),
    )
    assert killed and all(ok for (ok,) in killed)
    assert database.bars("ETH/USDT", *WINDOW).count == 3
    database.close()


def test_requests_wait_for_a_free_connection(candles):
    database = Database(suite_database_url(), candles, max_connections=1)
    with ThreadPoolExecutor(8) as threads:
        counts = list(threads.map(lambda _: database.bars("BTC/USDT", *WINDOW).count, range(40)))
    assert counts == [3] * 40
    database.close()


def test_an_unreachable_server_is_unavailable_not_an_error():
    database = Database(DatabaseUrl.parse("postgresql://postgres@127.0.0.1:1/cryptify"), "x")
    with pytest.raises(DatabaseUnavailable, match="127.0.0.1"):
        database.ping()


def test_missing_tables_read_as_empty(schema):
    database = Database(suite_database_url(), schema)
    assert database.bars("BTC/USDT", *WINDOW).count == 0
    assert database.latest_by_symbol("candles", ["BTC/USDT"]) == {"BTC/USDT": None}
    assert database.newest_models("BTC/USDT") == (None, database.bars("X", *WINDOW))


@pytest.fixture
def reader_role():
    """A login role, dropped afterwards (roles belong to the whole server)."""
    role, password = f"cryptify_api_{uuid.uuid4().hex[:8]}", uuid.uuid4().hex
    run_sql(f"CREATE ROLE {role} LOGIN PASSWORD %s", (password,))
    # the same server however it is reached (host and port, or a socket for the embedded one)
    reader = suite_database_url().with_credentials(role, password)
    yield role, reader
    run_sql(f"DROP OWNED BY {role}")
    run_sql(f"DROP ROLE {role}")


def test_the_documented_grants_give_a_read_only_role_every_table(instance, schema, reader_role):
    role, reader = reader_role
    owner = run_sql("SELECT current_user")[0][0]
    database = run_sql("SELECT current_database()")[0][0]
    # docs/data-api.md's statements, before the pipeline has created any table
    run_sql(f'CREATE SCHEMA "{schema}"')
    for grant in (
        f'GRANT CONNECT ON DATABASE "{database}" TO {role}',
        f'GRANT USAGE ON SCHEMA "{schema}" TO {role}',
        f'GRANT SELECT ON ALL TABLES IN SCHEMA "{schema}" TO {role}',
        f'ALTER DEFAULT PRIVILEGES FOR ROLE "{owner}" IN SCHEMA "{schema}"'
        f" GRANT SELECT ON TABLES TO {role}",
    ):
        run_sql(grant)
    write_candles(instance, schema)  # the IO manager creates the table now
    api = Database(reader, schema)
    assert api.bars("BTC/USDT", *WINDOW).count == 3
    api.close()


def test_a_role_without_the_grants_gets_a_503_naming_them(candles, reader_role):
    _, reader = reader_role
    api = Database(reader, candles)
    with pytest.raises(DatabaseUnavailable, match="grant it SELECT"):
        api.bars("BTC/USDT", *WINDOW)
    api.close()
