"""Symbols and model names as clients write them, resolved to what the tables hold."""

import pytest

from cryptify_pipeline.api.errors import ApiError
from cryptify_pipeline.api.names import (
    MODEL_ALIASES,
    ModelChoice,
    Symbols,
    resolve_model,
    valid_model_names,
)
from cryptify_pipeline.ml.models import MODEL_ZOO, ZOO

SYMBOLS = Symbols(["BTC/USDT", "ETH/USDT", "SOL/BTC"])


@pytest.mark.parametrize(
    ("asked", "symbol"),
    [
        (None, "BTC/USDT"),  # the first configured symbol
        ("BTC/USDT", "BTC/USDT"),
        ("BTCUSDT", "BTC/USDT"),
        ("BTC-USDT", "BTC/USDT"),
        ("eth/usdt", "ETH/USDT"),
        (" ethusdt ", "ETH/USDT"),
        ("sol-btc", "SOL/BTC"),
    ],
)
def test_symbol_spellings(asked, symbol):
    assert SYMBOLS.resolve(asked) == symbol


@pytest.mark.parametrize("asked", ["DOGE/USDT", "BTC", "BTC/USD", "BTCUSDTX", "BTC/US-DT", "", "'"])
def test_unknown_symbols_are_404_listing_the_configured_ones(asked):
    with pytest.raises(ApiError) as refused:
        SYMBOLS.resolve(asked)
    assert (refused.value.status, refused.value.code) == (404, "unknown_symbol")
    assert refused.value.details == {"symbol": asked, "valid": ["BTC/USDT", "ETH/USDT", "SOL/BTC"]}


def test_a_compact_name_two_symbols_share_needs_its_slash():
    symbols = Symbols(["AB/CUSDT", "ABC/USDT"])
    assert symbols.resolve("ABC/USDT") == "ABC/USDT"
    with pytest.raises(ApiError):
        symbols.resolve("ABCUSDT")


def test_no_configured_symbol_is_refused():
    with pytest.raises(ValueError, match="at least one configured symbol"):
        Symbols([])


def test_zoo_names_and_the_old_frontends_aliases():
    assert resolve_model(None) is None
    for name in MODEL_ZOO:
        assert resolve_model(name) == ModelChoice(name, name)
        assert resolve_model(name.upper()) == ModelChoice(name, name)
    assert resolve_model("linear_regression") == ModelChoice("linear_regression", "linear")
    assert resolve_model("xgboost") == ModelChoice("xgboost", "xgboost")  # the zoo has it
    # the old web app's lstm is the zoo's own now, not the mlp it used to stand for
    assert resolve_model("LSTM") == ModelChoice("lstm", "lstm")
    assert "lstm" not in MODEL_ALIASES
    assert set(MODEL_ALIASES.values()) <= set(MODEL_ZOO)


@pytest.mark.parametrize(
    "asked", ["ridge+context", "RIDGE+Context", "ridge context", " ridge  context"]
)
def test_context_entries_are_found_with_their_plus_or_the_space_a_query_makes_of_it(asked):
    assert resolve_model(asked) == ModelChoice("ridge+context", "ridge+context")


@pytest.mark.parametrize("asked", ["gpt", "BTCUSDT_xgboost", "xgboost_v2", "", "ridge;drop"])
def test_unknown_models_are_404_listing_the_valid_names(asked):
    with pytest.raises(ApiError) as refused:
        resolve_model(asked)
    assert (refused.value.status, refused.value.code) == (404, "unknown_model")
    assert refused.value.details["valid"] == valid_model_names()
    assert valid_model_names() == [*ZOO, "linear_regression"]
    assert "lstm" in ZOO and "lstm+context" in ZOO
    assert "hist_gbm+context" in valid_model_names()
