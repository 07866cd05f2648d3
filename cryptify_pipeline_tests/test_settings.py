from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from cryptify_pipeline.settings import (
    DEFAULT_SCHEMA,
    DEFAULT_START,
    DEFAULT_SYMBOLS,
    SettingsError,
    load_settings,
)
from cryptify_pipeline.storage.urls import DatabaseUrl


def test_defaults_use_embedded_server():
    settings = load_settings({})
    assert settings.database.is_embedded
    assert settings.database.embedded_dir.parts[-2:] == (".cryptify", "pg")
    assert settings.symbols == DEFAULT_SYMBOLS == ("BTC/USDT", "ETH/USDT")
    assert settings.start == DEFAULT_START
    assert settings.schema == DEFAULT_SCHEMA == "cryptify"


def test_database_url_wins_over_parts_and_is_normalised_to_psycopg2():
    settings = load_settings(
        {"DATABASE_URL": "postgresql://app:s3cret@db.example:6543/prices", "DB_HOST": "other"}
    )
    url = settings.database.url
    assert url.sqlalchemy == "postgresql+psycopg2://app:s3cret@db.example:6543/prices"
    assert url.libpq == "postgresql://app:s3cret@db.example:6543/prices"


@pytest.mark.parametrize("scheme", ["postgres", "postgresql", "postgresql+psycopg2"])
def test_accepted_schemes_all_normalise(scheme):
    url = load_settings({"DATABASE_URL": f"{scheme}://u@h/d"}).database.url
    assert url.sqlalchemy == "postgresql+psycopg2://u@h/d"


def test_db_parts_used_when_db_host_set():
    url = load_settings(
        {"DB_HOST": "pg", "DB_PORT": "5433", "DB_USER": "me", "DB_PASSWORD": "pw", "DB_NAME": "x"}
    ).database.url
    assert url.sqlalchemy == "postgresql+psycopg2://me:pw@pg:5433/x"


def test_db_parts_defaults():
    url = load_settings({"DB_HOST": "pg"}).database.url
    assert url.sqlalchemy == "postgresql+psycopg2://postgres@pg:5432/cryptify"


def test_password_never_in_repr_or_str():
    settings = load_settings({"DATABASE_URL": "postgresql://app:hunter2@db/prices"})
    assert "hunter2" not in repr(settings)
    assert "hunter2" not in str(settings.database.url)
    assert "hunter2" not in repr(settings.database.url)
    assert "hunter2" in settings.database.url.libpq  # still usable for connecting


def test_symbols_start_schema_parsed():
    settings = load_settings(
        {
            "CRYPTIFY_SYMBOLS": " btc/usdt , SOL/USDT ",
            "CRYPTIFY_START": "2024-03-01T13:00Z",
            "CRYPTIFY_SCHEMA": "prices_v2",
            "CRYPTIFY_EMBEDDED_PG_DIR": "/tmp/somewhere",
        }
    )
    assert settings.symbols == ("BTC/USDT", "SOL/USDT")
    assert settings.start == datetime(2024, 3, 1, 13, tzinfo=UTC)
    assert settings.schema == "prices_v2"
    assert settings.database.embedded_dir == Path("/tmp/somewhere")


def test_market_and_automation_settings():
    defaults = load_settings({})
    assert (defaults.source, defaults.automation, defaults.gap_repair_days) == ("sample", True, 7)
    assert defaults.price_jump_bound == 0.2
    settings = load_settings(
        {
            "CRYPTIFY_SOURCE": "binance",
            "CRYPTIFY_EXCHANGE_API_URL": "http://127.0.0.1:9000/api/v3",
            "CRYPTIFY_AUTOMATION": "off",
            "CRYPTIFY_GAP_REPAIR_DAYS": "30",
            "CRYPTIFY_PRICE_JUMP_BOUND": "0.1",
        }
    )
    assert settings.source == "binance" and not settings.automation
    assert settings.exchange_api_url == "http://127.0.0.1:9000/api/v3"
    assert (settings.gap_repair_days, settings.price_jump_bound) == (30, 0.1)
    assert load_settings({"CRYPTIFY_SOURCE": "file:~/klines/*.zip"}).source == "file:~/klines/*.zip"


def test_interval_level():
    assert load_settings({}).interval_level == 0.9
    assert load_settings({"CRYPTIFY_INTERVAL_LEVEL": "0.8"}).interval_level == 0.8
    for refused in ("90%", "1", "0.2", "nan"):
        with pytest.raises(SettingsError, match="CRYPTIFY_INTERVAL_LEVEL is .*between 0.5 and"):
            load_settings({"CRYPTIFY_INTERVAL_LEVEL": refused})


def test_start_date_only_means_midnight_utc():
    assert load_settings({"CRYPTIFY_START": "2024-03-01"}).start == datetime(2024, 3, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    ("env", "variable", "hint"),
    [
        ({"DATABASE_URL": "mysql://u@h/d"}, "DATABASE_URL", "postgresql://"),
        ({"DATABASE_URL": "not a url"}, "DATABASE_URL", "postgresql://USER"),
        ({"DATABASE_URL": "postgresql://u@h"}, "DATABASE_URL", "DBNAME"),
        ({"DB_HOST": "h", "DB_PORT": "http"}, "DB_PORT", "1-65535"),
        ({"DB_HOST": "h", "DB_PORT": "70000"}, "DB_PORT", "1-65535"),
        ({"CRYPTIFY_SYMBOLS": "BTC-USDT"}, "CRYPTIFY_SYMBOLS", "BASE/QUOTE"),
        ({"CRYPTIFY_SYMBOLS": "BTC/USDT;DROP"}, "CRYPTIFY_SYMBOLS", "BASE/QUOTE"),
        ({"CRYPTIFY_SYMBOLS": "BTC/USDT,btc/usdt"}, "CRYPTIFY_SYMBOLS", "more than once"),
        ({"CRYPTIFY_START": "yesterday"}, "CRYPTIFY_START", "2025-01-01T13:00Z"),
        ({"CRYPTIFY_START": "2025-01-01T13:30Z"}, "CRYPTIFY_START", "not on the hour"),
        ({"CRYPTIFY_START": "2025-01-01T13:00+02:00"}, "CRYPTIFY_START", "not UTC"),
        ({"CRYPTIFY_SCHEMA": 'x"; drop schema public'}, "CRYPTIFY_SCHEMA", "lower-case SQL name"),
        ({"CRYPTIFY_SCHEMA": "Prices"}, "CRYPTIFY_SCHEMA", "lower-case SQL name"),
        ({"CRYPTIFY_SOURCE": "nasdaq"}, "CRYPTIFY_SOURCE", "a ccxt exchange id"),
        ({"CRYPTIFY_SOURCE": "file:"}, "CRYPTIFY_SOURCE", "no path after file:"),
        ({"CRYPTIFY_EXCHANGE_API_URL": "ftp://x"}, "CRYPTIFY_EXCHANGE_API_URL", "http(s) URL"),
        ({"CRYPTIFY_AUTOMATION": "maybe"}, "CRYPTIFY_AUTOMATION", "on or off"),
        ({"CRYPTIFY_GAP_REPAIR_DAYS": "0"}, "CRYPTIFY_GAP_REPAIR_DAYS", "1 to 365"),
        ({"CRYPTIFY_PRICE_JUMP_BOUND": "-1"}, "CRYPTIFY_PRICE_JUMP_BOUND", "between 0 and 10"),
    ],
)
def test_invalid_values_name_the_variable_and_accepted_form(env, variable, hint):
    with pytest.raises(SettingsError) as raised:
        load_settings(env)
    assert variable in str(raised.value)
    assert hint in str(raised.value)


def test_url_with_socket_host_keeps_query():
    url = DatabaseUrl.parse("postgresql://postgres:@/postgres?host=/tmp/pg")
    assert url.libpq.startswith("postgresql://postgres:@/postgres?")
    assert make_url(url.libpq).query["host"] == "/tmp/pg"
    assert url.with_database("cryptify").database == "cryptify"
    assert "options=-csearch_path%3Ddagster" in url.with_search_path("dagster").sqlalchemy
