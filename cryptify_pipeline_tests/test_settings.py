import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from psycopg2.extensions import parse_dsn
from sqlalchemy.engine import make_url

from cryptify_pipeline.hours import floor_hour
from cryptify_pipeline.ml.signing import SigningKey
from cryptify_pipeline.postgres_url import DatabaseUrl
from cryptify_pipeline.settings import (
    DEFAULT_SCHEMA,
    DEFAULT_START,
    DEFAULT_SYMBOLS,
    SettingsError,
    load_settings,
    project_root,
)
from cryptify_pipeline_tests.support.database import DATABASE_VARIABLES


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


@pytest.mark.parametrize("parameter", ["password", "sslpassword"])
def test_a_password_given_as_a_query_parameter_is_hidden_too(parameter):
    raw = f"postgresql://app@db/prices?sslmode=require&{parameter}=hun%20ter2"
    settings = load_settings({"DATABASE_URL": raw})
    url = settings.database.url
    for shown in (repr(settings), str(settings), str(url), repr(url)):
        assert "hun" not in shown and "ter2" not in shown
        assert "sslmode=require" in shown  # the rest of the query is still shown
    assert f"{parameter}=hun%20ter2" in url.libpq  # still usable for connecting
    assert url.redact("libpq: hun ter2 / hun%20ter2 / hun+ter2") == "libpq: *** / *** / ***"


def test_urls_with_secrets_are_redacted_in_the_settings_repr():
    settings = load_settings(
        {
            "CRYPTIFY_EXCHANGE_API_URL": "http://trader:PW1@proxy.example:8080/api/TOKEN1",
            "CRYPTIFY_CONTEXT_API_URL": "https://proxy.example/v5?apikey=KEY1",
            "CRYPTIFY_ALERT_WEBHOOK_URL": "https://hooks.example/services/T0/HOOK1",
            "CRYPTIFY_CELERY_BROKER": "redis://:PW2@broker:6379/0",
        }
    )
    shown = f"{settings!r} {settings}"
    for secret in ("PW1", "TOKEN1", "KEY1", "HOOK1", "PW2", "trader"):
        assert secret not in shown
    assert "exchange_api_url='http://***@proxy.example:8080/…'" in shown
    assert settings.exchange_api_url == "http://trader:PW1@proxy.example:8080/api/TOKEN1"


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
    assert (defaults.price_jump_bound, defaults.alert_first_retry_seconds) == (0.2, 30)
    assert defaults.freshness_minutes == 80
    settings = load_settings(
        {
            "CRYPTIFY_SOURCE": "binance",
            "CRYPTIFY_EXCHANGE_API_URL": "http://127.0.0.1:9000/api/v3",
            "CRYPTIFY_AUTOMATION": "off",
            "CRYPTIFY_GAP_REPAIR_DAYS": "30",
            "CRYPTIFY_PRICE_JUMP_BOUND": "0.1",
            "CRYPTIFY_ALERT_FIRST_RETRY_SECONDS": "5",
            "CRYPTIFY_FRESHNESS_MINUTES": "5",
        }
    )
    assert settings.source == "binance" and not settings.automation
    assert settings.freshness_minutes == 5
    assert settings.exchange_api_url == "http://127.0.0.1:9000/api/v3"
    assert (settings.gap_repair_days, settings.price_jump_bound) == (30, 0.1)
    assert settings.alert_first_retry_seconds == 5
    assert load_settings({"CRYPTIFY_SOURCE": "file:~/klines/*.zip"}).source == "file:~/klines/*.zip"


def test_api_settings():
    defaults = load_settings({})
    assert (defaults.api_database_url, defaults.api_cors_origins) == (None, ())
    assert defaults.instance_schema == "dagster"
    assert (
        load_settings({"CRYPTIFY_INSTANCE_SCHEMA": "ops_dagster"}).instance_schema == "ops_dagster"
    )
    settings = load_settings(
        {
            "DATABASE_URL": "postgresql://pipeline:writer@db/prices",
            "CRYPTIFY_API_DATABASE_URL": "postgresql://reader:s3cret@db/prices",
            "CRYPTIFY_API_CORS_ORIGINS": "https://app.example.com, http://localhost:5173/",
        }
    )
    assert settings.api_database_url.libpq == "postgresql://reader:s3cret@db/prices"
    assert "s3cret" not in repr(settings)
    assert settings.api_cors_origins == ("https://app.example.com", "http://localhost:5173")
    assert load_settings({"CRYPTIFY_API_CORS_ORIGINS": "*"}).api_cors_origins == ("*",)


def test_a_refused_api_database_url_does_not_echo_its_password():
    with pytest.raises(SettingsError) as refused:
        load_settings({"CRYPTIFY_API_DATABASE_URL": "mysql://reader:hunter2@db/prices"})
    assert "CRYPTIFY_API_DATABASE_URL" in str(refused.value)
    assert "hunter2" not in str(refused.value)


def test_interval_level():
    assert load_settings({}).interval_level == 0.9
    assert load_settings({"CRYPTIFY_INTERVAL_LEVEL": "0.8"}).interval_level == 0.8
    for refused in ("90%", "1", "0.2", "nan"):
        with pytest.raises(SettingsError, match="CRYPTIFY_INTERVAL_LEVEL is .*between 0.5 and"):
            load_settings({"CRYPTIFY_INTERVAL_LEVEL": refused})


def test_training_jobs():
    assert load_settings({}).training_jobs is None  # the run's machine decides
    assert load_settings({"CRYPTIFY_TRAINING_JOBS": "3"}).training_jobs == 3
    for refused in ("0", "-1", "all", "1.5", "257"):
        with pytest.raises(SettingsError, match="CRYPTIFY_TRAINING_JOBS is .*from 1 to 256"):
            load_settings({"CRYPTIFY_TRAINING_JOBS": refused})


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
        ({"CRYPTIFY_START": "2009-01-02T23:00Z"}, "CRYPTIFY_START", "before 2009-01-03"),
        ({"CRYPTIFY_START": "1970-01-01"}, "CRYPTIFY_START", "before 2009-01-03"),
        ({"CRYPTIFY_START": "2999-01-01"}, "CRYPTIFY_START", "in the future"),
        ({"DATABASE_URL": "postgresql://u@h:0/d"}, "DATABASE_URL", "1 to 65535"),
        ({"DATABASE_URL": "postgresql://u@h:65536/d"}, "DATABASE_URL", "1 to 65535"),
        ({"DATABASE_URL": "postgresql://u@h:port/d"}, "DATABASE_URL", "1 to 65535"),
        ({"DATABASE_URL": "postgresql://u@h1:5432,h2:5432/d"}, "DATABASE_URL", "several hosts"),
        ({"DATABASE_URL": "postgresql://u@h/d?sslmode=on"}, "DATABASE_URL", "verify-full"),
        ({"DB_HOST": "h", "DB_PORT": "0"}, "DB_PORT", "1-65535"),
        ({"CRYPTIFY_DEPLOYMENT": "prod"}, "CRYPTIFY_DEPLOYMENT", "development or production"),
        ({"CRYPTIFY_DEPLOYMENT": "production"}, "CRYPTIFY_DEPLOYMENT", "set DATABASE_URL"),
        ({"CRYPTIFY_ALERT_WEBHOOK_URL": "https://h:99999/x"}, "CRYPTIFY_ALERT_WEBHOOK_URL", "URL"),
        ({"CRYPTIFY_ALERT_WEBHOOK_URL": "https:///x"}, "CRYPTIFY_ALERT_WEBHOOK_URL", "URL"),
        ({"CRYPTIFY_SCHEMA": 'x"; drop schema public'}, "CRYPTIFY_SCHEMA", "lower-case SQL name"),
        ({"CRYPTIFY_SCHEMA": "Prices"}, "CRYPTIFY_SCHEMA", "lower-case SQL name"),
        ({"CRYPTIFY_SCHEMA": "pg_temp"}, "CRYPTIFY_SCHEMA", "'pg_temp', a schema Postgres rese"),
        ({"CRYPTIFY_SCHEMA": "pg_catalog"}, "CRYPTIFY_SCHEMA", "reserves for itself (pg_*"),
        ({"CRYPTIFY_SCHEMA": "pg_toast"}, "CRYPTIFY_SCHEMA", "reserves for itself (pg_*"),
        ({"CRYPTIFY_SCHEMA": "pg_mine"}, "CRYPTIFY_SCHEMA", "reserves for itself (pg_*"),
        ({"CRYPTIFY_SCHEMA": "information_schema"}, "CRYPTIFY_SCHEMA", "reserves for itself"),
        ({"CRYPTIFY_SOURCE": "nasdaq"}, "CRYPTIFY_SOURCE", "a ccxt exchange id"),
        ({"CRYPTIFY_SOURCE": "file:"}, "CRYPTIFY_SOURCE", "no path after file:"),
        ({"CRYPTIFY_EXCHANGE_API_URL": "ftp://x"}, "CRYPTIFY_EXCHANGE_API_URL", "http(s) URL"),
        ({"CRYPTIFY_AUTOMATION": "maybe"}, "CRYPTIFY_AUTOMATION", "on or off"),
        ({"CRYPTIFY_CONTEXT_SOURCE": "nasdaq"}, "CRYPTIFY_CONTEXT_SOURCE", "such as bybit"),
        (
            {"CRYPTIFY_CONTEXT_SOURCE": "kraken"},
            "CRYPTIFY_CONTEXT_SOURCE",
            "kraken has no fetchOpenInterestHistory or fetchFundingRateHistory",
        ),
        ({"CRYPTIFY_CONTEXT_API_URL": "ftp://x"}, "CRYPTIFY_CONTEXT_API_URL", "http(s) URL"),
        (
            {"CRYPTIFY_EQUITY_INDEX_SOURCE": "google"},
            "CRYPTIFY_EQUITY_INDEX_SOURCE",
            "sample, none, yfinance, or file:<dir>",
        ),
        ({"CRYPTIFY_EQUITY_INDEX_SOURCE": "file:"}, "CRYPTIFY_EQUITY_INDEX_SOURCE", "file:<dir>"),
        ({"CRYPTIFY_EQUITY_INDEXES": "ES=F;NQ=F"}, "CRYPTIFY_EQUITY_INDEXES", "ES=F,NQ=F"),
        ({"CRYPTIFY_EQUITY_INDEXES": "ES=F,es=f"}, "CRYPTIFY_EQUITY_INDEXES", "more than once"),
        ({"CRYPTIFY_EQUITY_INDEXES": "ES=F,^GSPC"}, "CRYPTIFY_EQUITY_INDEXES", "^GSPC is not"),
        ({"CRYPTIFY_EQUITY_INDEXES": "SPY"}, "CRYPTIFY_EQUITY_INDEXES", "SPY is not an index fut"),
        ({"CRYPTIFY_GAP_REPAIR_DAYS": "0"}, "CRYPTIFY_GAP_REPAIR_DAYS", "1 to 365"),
        (
            {"CRYPTIFY_ALERT_FIRST_RETRY_SECONDS": "0.5"},
            "CRYPTIFY_ALERT_FIRST_RETRY_SECONDS",
            "1 to 3600",
        ),
        ({"CRYPTIFY_FRESHNESS_MINUTES": "0"}, "CRYPTIFY_FRESHNESS_MINUTES", "1 to 1440"),
        ({"CRYPTIFY_INSTANCE_SCHEMA": "Dagster"}, "CRYPTIFY_INSTANCE_SCHEMA", "such as dagster"),
        ({"CRYPTIFY_PRICE_JUMP_BOUND": "-1"}, "CRYPTIFY_PRICE_JUMP_BOUND", "between 0 and 10"),
        ({"CRYPTIFY_API_DATABASE_URL": "mysql://u@h/d"}, "CRYPTIFY_API_DATABASE_URL", "postgresql"),
        ({"CRYPTIFY_API_DATABASE_URL": "postgresql://u@h"}, "CRYPTIFY_API_DATABASE_URL", "DBNAME"),
        ({"CRYPTIFY_API_CORS_ORIGINS": "app.example.com"}, "CRYPTIFY_API_CORS_ORIGINS", "origins"),
        ({"CRYPTIFY_API_CORS_ORIGINS": "https://a.example/x"}, "CRYPTIFY_API_CORS_ORIGINS", "*"),
        ({"CRYPTIFY_API_CORS_ORIGINS": "*,https://a.example"}, "CRYPTIFY_API_CORS_ORIGINS", "*"),
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


def test_start_from_bitcoins_first_day_to_the_current_hour_is_accepted():
    assert load_settings({"CRYPTIFY_START": "2009-01-03"}).start == datetime(2009, 1, 3, tzinfo=UTC)
    this_hour = floor_hour(datetime.now(UTC))
    assert load_settings({"CRYPTIFY_START": f"{this_hour:%Y-%m-%dT%H:00Z}"}).start == this_hour
    next_hour = this_hour + timedelta(hours=1)
    with pytest.raises(SettingsError, match="CRYPTIFY_START .* in the future"):
        load_settings({"CRYPTIFY_START": f"{next_hour:%Y-%m-%dT%H:00Z}"})


# Each password would be read differently by libpq, SQLAlchemy and urllib: libpq connected to
# host "ss@db" for "p@ss", and printed that host in its error.
@pytest.mark.parametrize(
    "password", ["SEK@RET", "SEK/RET", "SEK#RET", "SEK?RET", "SEK/R#E@T", "SEK@@RET", "SEK@RET:/"]
)
def test_database_url_with_unencoded_password_characters_is_refused_unechoed(password):
    raw = f"postgresql://app:{password}@db.example:5432/prices"
    with pytest.raises(SettingsError) as raised:
        load_settings({"DATABASE_URL": raw})
    message = str(raised.value)
    assert message.startswith("DATABASE_URL: its password (or user) holds an unencoded")
    assert "percent-encode" in message
    assert "SEK" not in message and "RET" not in message and "db.example" not in message


@pytest.mark.parametrize("password", ["se@cret", "se/cret", "se#cret", "se?cret", "a:b:c", "%"])
def test_percent_encoded_passwords_reach_libpq_intact(password):
    from urllib.parse import quote

    url = load_settings(
        {"DATABASE_URL": f"postgresql://app:{quote(password, safe=':')}@db:5432/prices"}
    ).database.url
    assert parse_dsn(url.libpq)["password"] == password
    assert parse_dsn(url.libpq)["host"] == "db"
    assert make_url(url.sqlalchemy).password == password


def test_colon_in_a_password_is_accepted_as_every_parser_reads_it_alike():
    url = load_settings({"DATABASE_URL": "postgresql://app:pa:ss@db:6543/prices"}).database.url
    assert parse_dsn(url.libpq) == {
        "user": "app", "password": "pa:ss", "host": "db", "port": "6543", "dbname": "prices",
    }  # fmt: skip


@pytest.mark.parametrize(
    "raw",
    [
        "postgresql://app:hunter2@db:99999/prices",
        "postgresql://app:hunter2@db:hunter2/prices",
        "postgresql://app:hunter2/prices",  # no host: what looks like a port is the password
        "postgresql://app:hunter2@db/prices?sslmode=nope&token=hunter2",
        "postgresql://app:hunter2@db/prices\x00",
        "postgresql://app:hun%00ter2@db/prices",
        "mysql://app:hunter2@db/prices",
        "not a url hunter2",
    ],
)
def test_refused_database_urls_never_echo_the_password(raw):
    with pytest.raises(SettingsError) as raised:
        load_settings({"DATABASE_URL": raw})
    assert str(raised.value).startswith("DATABASE_URL")
    assert "hunter2" not in str(raised.value) and "hun" not in str(raised.value)


def test_valid_sslmodes_are_accepted():
    for mode in ("disable", "allow", "prefer", "require", "verify-ca", "verify-full"):
        url = load_settings({"DATABASE_URL": f"postgresql://u@h/d?sslmode={mode}"}).database.url
        assert parse_dsn(url.libpq)["sslmode"] == mode


@pytest.mark.parametrize(
    ("variable", "raw"),
    [
        ("CRYPTIFY_ALERT_WEBHOOK_URL", "https://hooks.example.com:99999/services/T0/B0/SEKRET"),
        ("CRYPTIFY_ALERT_WEBHOOK_URL", "https://hooks.example.com/services/T0/B0/SEKRET x"),
        ("CRYPTIFY_ALERT_WEBHOOK_URL", "ftp://bot:SEKRET@hooks.example.com/?token=SEKRET"),
        ("CRYPTIFY_EXCHANGE_API_URL", "https://key:SEKRET@proxy.example:0/api?sig=SEKRET"),
        ("CRYPTIFY_EXCHANGE_API_URL", "https://key:SEK@RET@proxy.example/api/v3"),
        ("CRYPTIFY_EXCHANGE_API_URL", "https://key:SEK/RET@proxy.example/api/v3"),
        ("CRYPTIFY_CELERY_BROKER", "redis//:SEKRET@broker:6379/0"),
    ],
)
def test_refused_urls_are_echoed_without_credentials_path_or_query(variable, raw):
    with pytest.raises(SettingsError) as raised:
        load_settings({variable: raw})
    message = str(raised.value)
    assert message.startswith(f"{variable} is '")
    assert "SEK" not in message and "RET" not in message and "token" not in message
    assert "T0" not in message  # a webhook's path is its token


def test_url_settings_keep_their_credentials_when_valid():
    raw = "https://key:SEK%40RET@proxy.example/api/v3?sig=1"
    assert load_settings({"CRYPTIFY_EXCHANGE_API_URL": raw}).exchange_api_url == raw


def test_production_needs_a_configured_database():
    assert load_settings({}).deployment == "development"
    with pytest.raises(SettingsError) as raised:
        load_settings({"CRYPTIFY_DEPLOYMENT": "production"})
    assert "CRYPTIFY_DEPLOYMENT is 'production' but no database is configured" in str(raised.value)
    url = "postgresql://app:pw@db/prices"
    settings = load_settings({"CRYPTIFY_DEPLOYMENT": "production", "DATABASE_URL": url})
    assert settings.deployment == "production" and not settings.database.is_embedded
    parts = load_settings({"CRYPTIFY_DEPLOYMENT": "production", "DB_HOST": "db"})
    assert parts.database.configured_by == "DB_HOST"


def test_production_code_location_fails_to_load_without_starting_a_database(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in DATABASE_VARIABLES}
    env |= {"CRYPTIFY_DEPLOYMENT": "production", "CRYPTIFY_EMBEDDED_PG_DIR": str(tmp_path / "pg")}
    result = subprocess.run(
        [str(Path(sys.executable).with_name("dagster")), "definitions", "validate",
         "-m", "cryptify_pipeline.definitions"],
        cwd=project_root(), env=env, capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    assert result.returncode != 0
    assert "CRYPTIFY_DEPLOYMENT is 'production' but no database is configured" in (
        result.stdout + result.stderr
    )
    assert not (tmp_path / "pg").exists()  # no embedded server was initialised


def test_model_signing_key_from_the_variable_or_a_file_beside_the_embedded_server():
    unset = load_settings({"CRYPTIFY_EMBEDDED_PG_DIR": "/srv/cryptify/pg"})
    assert unset.model_signing_key is None
    assert unset.model_signing_key_file == Path("/srv/cryptify/model-signing.key")
    assert load_settings({}).model_signing_key_file.parts[-2:] == (".cryptify", "model-signing.key")
    key = "a1" * 32
    settings = load_settings({"CRYPTIFY_MODEL_SIGNING_KEY": key})
    assert settings.model_signing_key.key_id == SigningKey.parse(key).key_id
    assert key not in repr(settings) and key not in str(settings)


@pytest.mark.parametrize("value", ["a1" * 16, "hunter2-is-not-a-key!"])
def test_an_unusable_model_signing_key_is_named_and_never_shown(value):
    with pytest.raises(SettingsError) as refusal:
        load_settings({"CRYPTIFY_MODEL_SIGNING_KEY": value})
    message = str(refusal.value)
    assert message.startswith("CRYPTIFY_MODEL_SIGNING_KEY is set (its value is not shown)")
    assert "at least 32 random bytes as hex" in message
    assert value not in message and "hunter2" not in message
    assert refusal.value.__cause__ is None and refusal.value.__context__ is None


def test_context_sources_follow_the_candle_source_unless_set():
    sample = load_settings({})
    assert (sample.context_source, sample.equity_index_source) == ("sample", "sample")
    assert sample.equity_indexes == ("ES=F",)
    real = load_settings({"CRYPTIFY_SOURCE": "binance"})
    assert (real.context_source, real.equity_index_source) == ("bybit", "yfinance")
    chosen = load_settings({
        "CRYPTIFY_SOURCE": "binance", "CRYPTIFY_CONTEXT_SOURCE": "okx",
        "CRYPTIFY_EQUITY_INDEX_SOURCE": "file:/data/indexes",
        "CRYPTIFY_EQUITY_INDEXES": "es=f, NQ=F",
        "CRYPTIFY_CONTEXT_API_URL": "http://127.0.0.1:9000",
    })  # fmt: skip
    assert (chosen.context_source, chosen.equity_index_source) == ("okx", "file:/data/indexes")
    assert chosen.equity_indexes == ("ES=F", "NQ=F")
    assert chosen.context_api_url == "http://127.0.0.1:9000"
    off = load_settings({"CRYPTIFY_CONTEXT_SOURCE": "none", "CRYPTIFY_EQUITY_INDEX_SOURCE": "none"})
    assert (off.context_source, off.equity_index_source) == ("none", "none")
