"""Resources from settings: the model signing key reaches steps, never the UI."""

from dagster import asset, materialize
from dagster._core.remote_representation.external_data import RepositorySnap
from dagster._serdes import serialize_value

from cryptify_pipeline.definitions import build_definitions
from cryptify_pipeline.ml.signing import SigningKey
from cryptify_pipeline.resources import ModelSigning, build_resources
from cryptify_pipeline.settings import load_settings

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
