"""Run config constraints are enforced when Dagster builds the plan, before a run exists."""

import re

import pytest
import yaml
from dagster import DagsterInvalidConfigError
from dagster._core.execution.api import create_execution_plan

from cryptify_pipeline.assets.evaluation import LeaderboardConfig
from cryptify_pipeline.assets.models import TrainConfig
from cryptify_pipeline.definitions import build_definitions
from cryptify_pipeline.run_config import allowed_values
from cryptify_pipeline.settings import load_settings, project_root

defs = build_definitions(load_settings({}))


def plan(job: str, op: str, config: dict) -> None:
    create_execution_plan(defs.resolve_job_def(job), run_config={"ops": {op: {"config": config}}})


@pytest.mark.parametrize(
    ("job", "op", "config", "expected"),
    [
        ("train_job", "models", {"training_days": 3650}, None),
        ("train_job", "models", {"training_days": 6},
         "TrainConfig.training_days: Input should be greater than or equal to 7 (got 6); "
         "allowed: between 7 and 3650"),
        ("train_job", "models", {"models": ["linear", "prophet"]},
         "unknown model(s) ['prophet']"),
        ("evaluate_job", "leaderboard", {"plot_lookback_hours": 10_001},
         "LeaderboardConfig.plot_lookback_hours: Input should be less than or equal to 10000 "
         "(got 10001); allowed: between 1 and 10000"),
        ("evaluate_job", "leaderboard", {"plot_horizon_h": 8}, "must be one of [6, 12, 24]"),
        ("evaluate_job", "leaderboard", {"recent_days": 0}, "allowed: between 1 and 3650"),
        ("evaluate_job", "backtest", {"rules": ["sign", "edge"], "fee_bps": 0}, None),
        ("evaluate_job", "backtest", {"rules": ["sign", "momentum"]},
         "unknown rule(s) ['momentum']: the rules are ['sign', 'edge', 'interval']"),
        ("evaluate_job", "backtest", {"rules": []}, "rules must name at least one rule"),
        ("evaluate_job", "backtest", {"fee_bps": -1},
         "BacktestConfig.fee_bps: Input should be greater than or equal to 0 (got -1.0); "
         "allowed: between 0 and 1000"),
        ("evaluate_job", "backtest_summary", {"plot_rule": "momentum"},
         "plot_rule must be one of ['sign', 'edge', 'interval']"),
    ],
)  # fmt: skip
def test_constraints_are_checked_when_the_plan_is_built(job, op, config, expected):
    if expected is None:
        plan(job, op, config)
        return
    with pytest.raises(DagsterInvalidConfigError) as refused:
        plan(job, op, config)
    assert expected in str(refused.value)
    assert f"root:ops:{op}:config" in str(refused.value)  # where in the run config


def test_defaults_need_no_config():
    plan("train_job", "models", {})
    plan("evaluate_job", "leaderboard", {})
    plan("evaluate_job", "backtest", {})
    plan("evaluate_job", "backtest_summary", {})


def test_allowed_values_read_the_field_bounds():
    assert allowed_values(TrainConfig, "training_days") == "allowed: between 7 and 3650"
    assert allowed_values(LeaderboardConfig, "plot_horizon_h") is None
    assert allowed_values(TrainConfig, "no_such_field") is None


def test_the_readmes_train_config_example_is_valid_and_trains_what_it_says():
    # the README's `train.yaml` block, as a user would copy it
    readme = (project_root() / "README.md").read_text()
    block = re.search(r"```yaml\n# train_job: .*?\n```", readme, re.DOTALL)
    assert block is not None
    config = yaml.safe_load(block.group(0).strip("`").removeprefix("yaml"))
    train = TrainConfig(**config["ops"]["models"]["config"])
    plan("train_job", "models", config["ops"]["models"]["config"])
    assert train.feature_set == "both"
    # `both` ranks each model beside its +context twin: the example must name some twins
    assert any(m.endswith("+context") for m in train.trained_models)
    assert any(not m.endswith("+context") for m in train.trained_models)
