"""URLs shown in errors keep no secret: redaction, and drivers' errors with the password removed."""

import uuid
from collections.abc import Iterator

import psycopg2
import pytest
import sqlalchemy
from psycopg2.extensions import parse_dsn

from cryptify_pipeline.postgres_url import DatabaseConnectionError, DatabaseUrl
from cryptify_pipeline.redaction import redact_url, redact_url_in, redact_urls
from cryptify_pipeline.storage import pg_tables
from cryptify_pipeline_tests.support.database import run_sql, run_sql_on


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        ("https://hooks.slack.com/services/T0/B0/SEKRET", "https://hooks.slack.com/…"),
        (
            "https://key:SEKRET@proxy.example:8443/api?sig=SEKRET",
            "https://***@proxy.example:8443/…?…",
        ),
        ("https://key:SEK/RET@proxy.example/api", "https://***@proxy.example/…"),
        ("https://key:SEK?RET@proxy.example", "https://***@proxy.example"),
        ("redis://:SEKRET@broker:6379/0", "redis://***@broker:6379/…"),
        ("key:SEKRET@proxy.example/api#SEKRET", "***@proxy.example/…?…"),
        ("ftp://x", "ftp://x"),
        ("http://127.0.0.1:9000", "http://127.0.0.1:9000"),
    ],
)
def test_redact_url_keeps_scheme_host_and_port_only(raw, shown):
    assert redact_url(raw) == shown


def test_redact_urls_shows_every_url_in_a_text_by_scheme_host_and_port():
    text = (
        "binance GET http://127.0.0.1:9/api/SEKRET/exchangeInfo failed; "
        "retry http://k:SEKRET@proxy.example:8/?key=SEKRET or https://api.binance.com"
    )
    assert redact_urls(text) == (
        "binance GET http://127.0.0.1:9/… failed; "
        "retry http://***@proxy.example:8/…?… or https://api.binance.com"
    )


def test_redact_url_in_takes_out_the_urls_parts_wherever_they_are_echoed():
    url = "http://user:pa ss@127.0.0.1:9/api/SEKRET?key=K3YSEKRET"
    text = (
        f"GET {url}/exchangeInfo: no route /api/SEKRET/exchangeInfo (password pa ss, "
        "user user, key K3YSEKRET)"
    )
    shown = redact_url_in(text, url)
    assert shown.startswith("GET http://***@127.0.0.1:9/…?…")
    assert "SEKRET" not in shown and "pa ss" not in shown and "user user" not in shown


def test_redact_removes_the_password_in_every_form_a_driver_may_quote():
    url = DatabaseUrl.from_parts(
        host="db", port=5432, user="app", password="SEK@R/E:T%", database="prices"
    )
    encoded = url.libpq.split("app:")[1].split("@db")[0]
    assert encoded != "SEK@R/E:T%"  # the URL holds it percent-encoded
    message = url.redact(f"plain SEK@R/E:T% encoded {encoded} url {url.libpq}")
    assert "SEK" not in message and "E:T" not in message
    assert message.count("***") == 3


def nul_password_url(database_url: DatabaseUrl) -> DatabaseUrl:
    """The test server with a password libpq cannot decode: it quotes it in its error."""
    parts = database_url.parts()
    return DatabaseUrl.from_parts(
        host=parts["host"] or "127.0.0.1", port=parts["port"] or 5432, user=parts["user"],
        password="hunter2\x00x", database=database_url.database,
    )  # fmt: skip


def test_libpq_quotes_an_undecodable_password(database_url):
    # the reason for the wrapper below: the drivers' own message holds the password
    with pytest.raises(psycopg2.Error, match="hunter2"):
        psycopg2.connect(nul_password_url(database_url).libpq)


def test_connection_errors_lose_the_password(database_url):
    url = nul_password_url(database_url)
    with pytest.raises(DatabaseConnectionError) as adbc_error:
        with pg_tables.transaction(url):
            pass
    with pytest.raises(DatabaseConnectionError) as psycopg2_error, url.errors_redacted():
        psycopg2.connect(url.libpq)
    for error in (adbc_error.value, psycopg2_error.value):
        assert "percent-encoded value" in str(error)  # libpq's reason is kept
        assert "hunter2" not in str(error)
        assert error.__cause__ is None and error.__suppress_context__


def test_errors_without_the_password_pass_through_unchanged(database_url):
    url = database_url.with_database("no_such_database_here")
    with pytest.raises(Exception, match="no_such_database_here") as raised:
        with pg_tables.transaction(url):
            pass
    assert not isinstance(raised.value, DatabaseConnectionError)


@pytest.fixture
def spaced_password_role() -> Iterator[tuple[str, str]]:
    """A real login role whose password holds spaces and a '%' (which must be encoded)."""
    role, password = f"cryptify_spaced_{uuid.uuid4().hex[:8]}", "pass word 100%20 sure"
    run_sql(f'CREATE ROLE "{role}" LOGIN PASSWORD %s', (password,))
    yield role, password
    run_sql(f'DROP ROLE IF EXISTS "{role}"')


def test_a_password_with_spaces_and_percent_reaches_every_client(
    database_url, spaced_password_role
):
    role, password = spaced_password_role
    url = database_url.with_credentials(role, password)
    # libpq decodes the very password (this server may trust local logins without checking it)
    assert parse_dsn(url.libpq)["password"] == password
    assert sqlalchemy.make_url(url.sqlalchemy).password == password
    assert DatabaseUrl.parse(url.libpq).parts()["password"] == password
    with pg_tables.transaction(url) as connection, connection.cursor() as cursor:  # ADBC
        cursor.execute("SELECT current_user")
        assert cursor.fetchone()[0] == role
    assert run_sql_on(url, "SELECT current_user") == [(role,)]  # psycopg2
    engine = sqlalchemy.create_engine(url.sqlalchemy)  # SQLAlchemy, as dagster-postgres uses it
    try:
        with engine.connect() as connection:
            assert connection.exec_driver_sql("SELECT current_user").scalar() == role
    finally:
        engine.dispose()
