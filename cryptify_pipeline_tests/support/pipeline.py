"""The pipeline's own assets and resources on the test database, in a schema of the test's."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from dagster import AssetsDefinition, Definitions

from cryptify_pipeline.assets import build_asset_checks, build_assets
from cryptify_pipeline.automation.alerts import FailureAlerts
from cryptify_pipeline.definitions import build_definitions
from cryptify_pipeline.ml.signing import SigningKey
from cryptify_pipeline.partitions import Partitions
from cryptify_pipeline.resources import Forecasting, MarketData, ModelSigning, PostgresDatabase
from cryptify_pipeline.run_tags import range_tags
from cryptify_pipeline.settings import DEFAULT_START, load_settings
from cryptify_pipeline.storage.io_manager import PostgresPandasIOManager
from cryptify_pipeline_tests.support.database import suite_database_url

__all__ = [
    "MODEL_SIGNING_KEY", "SYMBOLS", "assets", "checks", "database", "definitions", "range_tags",
    "resources",
]  # fmt: skip

SYMBOLS = ["BTC/USDT", "ETH/USDT"]
# The tests' model signing key: fixed, so that every process of a test deployment shares it.
MODEL_SIGNING_KEY = SigningKey.parse("7e57" * 16)


def database(schema: str) -> PostgresDatabase:
    return PostgresDatabase(url=suite_database_url().libpq, schema=schema)


def io_manager_on(schema: str) -> PostgresPandasIOManager:
    return PostgresPandasIOManager(database=database(schema))


def sample_market(symbols: list[str] | None = None, **options) -> MarketData:
    return MarketData(source="sample", symbols=symbols or SYMBOLS, **options)


def model_signing(key: SigningKey = MODEL_SIGNING_KEY) -> ModelSigning:
    return ModelSigning(key=key.hex())


def resources(
    schema: str,
    market: MarketData | None = None,
    alerts: FailureAlerts | None = None,
    signing: ModelSigning | None = None,
    forecasting: Forecasting | None = None,
) -> dict[str, object]:
    """The resources of ``build_resources``, on ``schema`` of the test database."""
    return {
        "io_manager": io_manager_on(schema),
        "database": database(schema),
        "market": market or sample_market(),
        "alerts": alerts or FailureAlerts(),
        "model_signing": signing or model_signing(),
        "forecasting": forecasting or Forecasting(),
    }


def assets(start: datetime = DEFAULT_START) -> dict[str, AssetsDefinition]:
    """Every asset by name, on partitions from ``start``."""
    return {a.key.to_user_string(): a for a in build_assets(Partitions.starting(start))}


def checks(start: datetime = DEFAULT_START, asset: str = "candles") -> list:
    """The checks on ``asset``."""
    return [
        check
        for check in build_asset_checks(Partitions.starting(start))
        if all(key.asset_key.to_user_string() == asset for key in check.check_keys)
    ]


def definitions(
    schema: str, env: Mapping[str, str] | None = None, **resource_overrides
) -> Definitions:
    """The code location as ``env``'s settings build it (automation off unless ``env`` says
    otherwise), with its resources on ``schema`` of the test database and its market and
    forecasting those of the settings."""
    settings = load_settings({"CRYPTIFY_AUTOMATION": "off", **(env or {})})
    market = MarketData(source=settings.source, symbols=list(settings.symbols))
    resource_overrides.setdefault("market", market)
    resource_overrides.setdefault(
        "forecasting",
        Forecasting(interval_level=settings.interval_level, training_jobs=settings.training_jobs),
    )
    return build_definitions(settings, resources=resources(schema, **resource_overrides))
