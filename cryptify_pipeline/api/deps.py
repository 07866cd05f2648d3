"""The API's typed dependencies: the database, the symbol and model asked for, the clock and the
response cache, as ``Annotated`` types the routes declare.

``create_app`` puts one ``ApiState`` on the app; every dependency reads it from there, so a
route names what it needs and nothing else (tests pass their own database and clock).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from enum import IntEnum
from typing import Annotated

from fastapi import Depends, Query, Request

from cryptify_pipeline.api.cache import ResponseCache
from cryptify_pipeline.api.metrics import ApiMetrics
from cryptify_pipeline.api.names import MODEL_ALIASES, ModelChoice, Symbols, resolve_model
from cryptify_pipeline.api.queries import Database
from cryptify_pipeline.ml.models import ZOO
from cryptify_pipeline.ml.targets import HORIZONS

Horizon = IntEnum("Horizon", {f"h{hours}": hours for hours in HORIZONS})


@dataclass(frozen=True)
class ApiState:
    """What every request shares: set once by ``create_app``."""

    database: Database
    symbols: Symbols
    clock: Callable[[], datetime]
    history_cache: ResponseCache
    interval_level: float  # CRYPTIFY_INTERVAL_LEVEL: the level the forecasts' intervals have
    metrics: ApiMetrics


def api_state(request: Request) -> ApiState:
    return request.app.state.api


def _database(request: Request) -> Database:
    return api_state(request).database


def _symbols(request: Request) -> Symbols:
    return api_state(request).symbols


def _now(request: Request) -> datetime:
    return api_state(request).clock()


def _history_cache(request: Request) -> ResponseCache:
    return api_state(request).history_cache


def _interval_level(request: Request) -> float:
    return api_state(request).interval_level


SymbolParam = Annotated[
    str | None,
    Query(
        description="BTC/USDT, BTCUSDT or BTC-USDT; default: the first configured symbol",
        examples=["BTC/USDT"],
    ),
]
ModelParam = Annotated[
    str | None,
    Query(
        description=f"A zoo model ({', '.join(ZOO)}; + may be sent as is) or an old "
        "frontend's name "
        f"({', '.join(f'{a} = {m}' for a, m in MODEL_ALIASES.items())}); default: all",
        examples=["ridge"],
    ),
]
HorizonParam = Annotated[Horizon | None, Query(description="Hours ahead; default: all")]
FromParam = Annotated[datetime | None, Query(description="Window start, ISO 8601 (UTC if naive)")]
ToParam = Annotated[
    datetime | None, Query(description="Window end (excluded); default: the end of this hour")
]


def _symbol(request: Request, symbol: SymbolParam = None) -> str:
    return api_state(request).symbols.resolve(symbol)


def _model(model: ModelParam = None) -> ModelChoice | None:
    return resolve_model(model)


DatabaseDep = Annotated[Database, Depends(_database)]
SymbolsDep = Annotated[Symbols, Depends(_symbols)]
NowDep = Annotated[datetime, Depends(_now)]
HistoryCacheDep = Annotated[ResponseCache, Depends(_history_cache)]
IntervalLevelDep = Annotated[float, Depends(_interval_level)]
# the configured symbol the request names (its first when none): an unknown one is a 404
SymbolDep = Annotated[str, Depends(_symbol)]
# the zoo model the request names, by name or alias; None for every model
ModelDep = Annotated[ModelChoice | None, Depends(_model)]
