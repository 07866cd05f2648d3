"""No secret reaches the UI: the resource config and the launchpad's run config, read through the
webserver's own GraphQL schema, show the variables' names and never their values; the model
signing key reaches steps, never the UI."""

import json
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import pytest
from dagster import DagsterInstance, asset, materialize
from dagster._core.remote_representation.external_data import RepositorySnap
from dagster._core.test_utils import in_process_test_workspace
from dagster._core.types.loadable_target_origin import LoadableTargetOrigin
from dagster._serdes import serialize_value
from dagster_graphql.test.utils import execute_dagster_graphql, infer_repository_selector

from cryptify_pipeline.definitions import build_definitions, build_resources
from cryptify_pipeline.ml.signing import SigningKey
from cryptify_pipeline.resources import ModelSigning
from cryptify_pipeline.settings import load_settings

SECRETS = {
    "DATABASE_URL": "postgresql://app:DBSEKRET@db.example:5432/prices?sslmode=require",
    "CRYPTIFY_ALERT_WEBHOOK_URL": "https://hooks.example.com/services/T0/B0/HOOKSEKRET?t=HOOKSEKRET",
    "CRYPTIFY_EXCHANGE_API_URL": "https://key:APISEKRET@proxy.example/api/v3?apikey=APISEKRET",
}
MARKERS = ("DBSEKRET", "HOOKSEKRET", "APISEKRET")

RESOURCES = """
query Resources($repo: RepositorySelector!) {
  allTopLevelResourceDetailsOrError(repositorySelector: $repo) {
    __typename
    ... on ResourceDetailsList { results { ...details nestedResources { name resource {
      ...details nestedResources { name resource { ...details } } } } } }
    ... on PythonError { message }
  }
}
fragment details on ResourceDetails {
  name description
  configFields { name description defaultValueAsJson configType { key } }
  configuredValues { key value type }
}
"""

LAUNCHPAD = """
query Launchpad($job: PipelineSelector!) {
  runConfigSchemaOrError(selector: $job) {
    __typename
    ... on RunConfigSchema { rootDefaultYaml }
    ... on PythonError { message }
  }
}
"""

REPOSITORY = """
query Repository($repo: RepositorySelector!) {
  repositoryOrError(repositorySelector: $repo) {
    ... on Repository {
      jobs { name description tags { key value } }
      sensors { name description }
      schedules { name description }
    }
  }
}
"""


@contextmanager
def ui_of(definitions_code: str, tmp_path: Path, instance: DagsterInstance) -> Iterator:
    """The GraphQL context of a code location loaded in process, as the webserver's."""
    module = tmp_path / "location.py"
    module.write_text(definitions_code)
    origin = LoadableTargetOrigin(python_file=str(module), attribute="defs")
    with in_process_test_workspace(instance, origin) as context:
        yield context


def everything_the_ui_shows(context) -> str:
    """Resource config, each job's launchpad YAML, and the repository's descriptions."""
    repo = infer_repository_selector(context)
    shown = [execute_dagster_graphql(context, RESOURCES, {"repo": repo}).data]
    shown.append(execute_dagster_graphql(context, REPOSITORY, {"repo": repo}).data)
    assert shown[0]["allTopLevelResourceDetailsOrError"]["__typename"] == "ResourceDetailsList"
    for job in shown[1]["repositoryOrError"]["jobs"]:
        selector = {**repo, "pipelineName": job["name"]}
        launchpad = execute_dagster_graphql(context, LAUNCHPAD, {"job": selector}).data
        assert launchpad["runConfigSchemaOrError"]["__typename"] == "RunConfigSchema"
        shown.append(launchpad)
    return json.dumps(shown)


def configured(shown: str) -> Mapping[tuple[str, str], tuple[str, str]]:
    """(resource, field) -> (type, value) of every configured value, nested ones included."""
    values = {}

    def walk(details: dict) -> None:
        for value in details["configuredValues"]:
            values[details["name"], value["key"]] = (value["type"], value["value"])
        for nested in details.get("nestedResources") or []:
            walk(nested["resource"])

    for details in json.loads(shown)[0]["allTopLevelResourceDetailsOrError"]["results"]:
        walk(details)
    return values


DEFINITIONS = """
from cryptify_pipeline.definitions import build_definitions
from cryptify_pipeline.settings import load_settings
defs = build_definitions(load_settings())
"""


def test_the_ui_shows_the_variables_names_never_their_secret_values(
    monkeypatch, tmp_path, instance
):
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("CRYPTIFY_SOURCE", "binance")
    with ui_of(DEFINITIONS, tmp_path, instance) as context:
        shown = everything_the_ui_shows(context)
    assert not [marker for marker in MARKERS if marker in shown]
    values = configured(shown)
    assert values["database", "url"] == ("ENV_VAR", "DATABASE_URL")
    assert values["alerts", "webhook_url"] == ("ENV_VAR", "CRYPTIFY_ALERT_WEBHOOK_URL")
    assert values["market", "exchange_api_url"] == ("ENV_VAR", "CRYPTIFY_EXCHANGE_API_URL")


def test_the_database_password_of_db_parts_is_shown_as_its_variable(
    monkeypatch, tmp_path, instance
):
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.setenv("DB_HOST", "db.example")
    monkeypatch.setenv("DB_PASSWORD", "DBSEKRET")
    with ui_of(DEFINITIONS, tmp_path, instance) as context:
        shown = everything_the_ui_shows(context)
    assert "DBSEKRET" not in shown
    assert configured(shown)["database", "password"] == ("ENV_VAR", "DB_PASSWORD")


def definitions_with(resource: str, constructor: str) -> str:
    """DEFINITIONS with ``resource`` built by ``constructor`` (Python source) instead."""
    return (
        "from cryptify_pipeline.automation.alerts import FailureAlerts\n"
        "from cryptify_pipeline.definitions import build_definitions, build_resources\n"
        "from cryptify_pipeline.resources import MarketData\n"
        "from cryptify_pipeline.settings import load_settings\n"
        "settings = load_settings()\n"
        f"resources = {{**build_resources(settings), {resource!r}: {constructor}}}\n"
        "defs = build_definitions(settings, resources=resources)\n"
    )


def test_the_check_sees_a_secret_passed_as_a_plain_value(tmp_path, instance):
    """The control: were a URL passed as its value, these queries would show it."""
    url = SECRETS["CRYPTIFY_EXCHANGE_API_URL"]
    code = definitions_with(
        "market", f"MarketData(source='binance', symbols=['BTC/USDT'], exchange_api_url={url!r})"
    )
    with ui_of(code, tmp_path, instance) as context:
        assert "APISEKRET" in everything_the_ui_shows(context)


def test_a_webhook_url_given_as_a_value_is_masked(tmp_path, instance):
    url = SECRETS["CRYPTIFY_ALERT_WEBHOOK_URL"]
    with ui_of(definitions_with("alerts", f"FailureAlerts(webhook_url={url!r})"), tmp_path,
               instance) as context:  # fmt: skip
        shown = everything_the_ui_shows(context)
    assert "HOOKSEKRET" not in shown
    assert configured(shown)["alerts", "webhook_url"][0] == "SECRET"


@pytest.mark.parametrize("broker", ["redis://:BROKERSEKRET@redis:6379/0"])
def test_the_celery_broker_password_is_not_shown(monkeypatch, tmp_path, instance, broker):
    monkeypatch.setenv("CRYPTIFY_EXECUTOR", "celery")
    monkeypatch.setenv("CRYPTIFY_CELERY_BROKER", broker)
    with ui_of(DEFINITIONS, tmp_path, instance) as context:
        assert "BROKERSEKRET" not in everything_the_ui_shows(context)


KEY = "c0ffee" * 11  # 33 bytes


@asset
def signing_key_id(model_signing: ModelSigning) -> str:
    return model_signing.signing_key().key_id


def key_id_in_a_step(signing: ModelSigning) -> str:
    result = materialize([signing_key_id], resources={"model_signing": signing})
    return result.output_for_node("signing_key_id")


def test_a_key_from_the_environment_reaches_steps_as_an_env_var(monkeypatch):
    settings = load_settings({"CRYPTIFY_MODEL_SIGNING_KEY": KEY, "CRYPTIFY_AUTOMATION": "off"})
    monkeypatch.setenv("CRYPTIFY_MODEL_SIGNING_KEY", KEY)  # what a step's process would see
    signing = build_resources(settings)["model_signing"]
    assert key_id_in_a_step(signing) == SigningKey.parse(KEY).key_id
    # what the code location sends the webserver (and its GraphQL API) names the variable only
    repository = build_definitions(settings).get_repository_def()
    snapshot = RepositorySnap.from_def(repository)
    shown = next(r for r in snapshot.resources if r.name == "model_signing")
    assert "CRYPTIFY_MODEL_SIGNING_KEY" in serialize_value(shown.configured_values["key"])
    assert KEY not in serialize_value(snapshot)


def test_without_the_variable_every_step_uses_the_instance_key_file(tmp_path):
    settings = load_settings({"CRYPTIFY_EMBEDDED_PG_DIR": str(tmp_path / "pg")})
    signing = build_resources(settings)["model_signing"]
    assert signing.key is None and signing.key_file == str(tmp_path / "model-signing.key")
    first = key_id_in_a_step(signing)
    assert (tmp_path / "model-signing.key").exists()
    assert key_id_in_a_step(signing) == first  # created once, then shared


def test_the_alerts_first_retry_is_the_setting_and_doubles_from_there():
    default = build_resources(load_settings({}))["alerts"].policy()
    assert [default.retry_delay(n).total_seconds() for n in (1, 2, 3)] == [30, 60, 120]
    settings = load_settings({"CRYPTIFY_ALERT_FIRST_RETRY_SECONDS": "2"})
    policy = build_resources(settings)["alerts"].policy()
    assert [policy.retry_delay(n).total_seconds() for n in (1, 2, 3)] == [2, 4, 8]
