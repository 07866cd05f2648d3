"""What a client may call a symbol or a model, and what the tables call it.

Only names resolved here reach a query, and only as bound values: a name that is not a
configured symbol or a model of the zoo is a 404 listing the valid ones.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from cryptify_pipeline.api.errors import ApiError
from cryptify_pipeline.ml.models import ZOO

# The old frontend's model names that the zoo does not have, each mapped to the closest model of
# the zoo (its ``xgboost`` and ``lstm`` are zoo models). A zoo model of the same name, should
# one be added, wins over its alias.
MODEL_ALIASES = {
    "linear_regression": "linear",  # the same ordinary least squares
}
_SEPARATORS = re.compile(r"[/\-]")
# ``?model=ridge+context`` reaches the API as "ridge context": a query string's + is a space
_SPACES = re.compile(r"\s+")


@dataclass(frozen=True)
class ModelChoice:
    """A model as asked for (``label``, echoed in responses) and as stored (``model_id``)."""

    label: str
    model_id: str


class Symbols:
    """The configured symbols, found by ``BTC/USDT``, ``BTCUSDT`` or ``BTC-USDT`` in any case."""

    def __init__(self, configured: Sequence[str]):
        if not configured:
            raise ValueError("the API needs at least one configured symbol")
        self.configured = tuple(configured)
        compact: dict[str, list[str]] = {}
        for symbol in self.configured:
            compact.setdefault(_SEPARATORS.sub("", symbol), []).append(symbol)
        self._compact = compact

    @property
    def default(self) -> str:
        return self.configured[0]

    def resolve(self, raw: str | None) -> str:
        """The configured symbol ``raw`` names; the first configured one when ``raw`` is None."""
        if raw is None:
            return self.default
        wanted = raw.strip().upper()
        if wanted in self.configured:
            return wanted
        if "/" not in wanted:
            matches = self._compact.get(_SEPARATORS.sub("", wanted), [])
            if len(matches) == 1:
                return matches[0]
        raise ApiError(
            404,
            "unknown_symbol",
            f"symbol {raw!r} is not one of the configured symbols: {', '.join(self.configured)} "
            "(written BTC/USDT, BTCUSDT or BTC-USDT)",
            {"symbol": raw, "valid": list(self.configured)},
        )


def valid_model_names() -> list[str]:
    return [*ZOO, *(alias for alias in MODEL_ALIASES if alias not in ZOO)]


def resolve_model(raw: str | None) -> ModelChoice | None:
    """The zoo model ``raw`` names (a zoo name or an alias; ``ridge context`` is
    ``ridge+context``); None when ``raw`` is None."""
    if raw is None:
        return None
    name = _SPACES.sub("+", raw.strip().lower())
    if name in ZOO:
        return ModelChoice(name, name)
    if name in MODEL_ALIASES and MODEL_ALIASES[name] in ZOO:
        return ModelChoice(name, MODEL_ALIASES[name])
    raise ApiError(
        404,
        "unknown_model",
        f"model {raw!r} is not a model of the zoo ({', '.join(ZOO)}) nor an alias "
        f"({', '.join(f'{a} = {m}' for a, m in MODEL_ALIASES.items())})",
        {"model": raw, "valid": valid_model_names(), "aliases": dict(MODEL_ALIASES)},
    )
