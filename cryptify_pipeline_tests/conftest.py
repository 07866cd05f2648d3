"""Fixtures on a real Postgres and a real, Postgres-backed Dagster instance.

The database is the configured one (CI sets DATABASE_URL to the machine's server); with none
configured, an embedded server under ``.cryptify/pg-test`` (``support/database.py``). Each test
gets its own schema, dropped afterwards.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest
from dagster import DagsterInstance, instance_for_test

from cryptify_pipeline.postgres_url import DatabaseUrl
from cryptify_pipeline_tests.support.database import run_sql, suite_database_url

# The suite runs on two pytest-xdist workers on two cores; OpenMP threads in scikit-learn
# (HistGradientBoosting) spin-wait for a core the other worker holds and run many times slower.
os.environ.setdefault("OMP_NUM_THREADS", "1")


@pytest.fixture(scope="session")
def database_url() -> DatabaseUrl:
    return suite_database_url()


@pytest.fixture
def schema() -> Iterator[str]:
    name = f"test_{uuid.uuid4().hex[:12]}"
    yield name
    run_sql(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')


@pytest.fixture(scope="session")
def instance_schema() -> str:
    return f"dagster_test_{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="session")
def instance(instance_schema: str) -> Iterator[DagsterInstance]:
    """A Dagster instance whose runs, events and schedules are stored in Postgres (the test
    database: the instance storage reads DATABASE_URL, so this process's settings name it)."""
    storage = {
        "custom": {
            "module": "cryptify_pipeline.storage.instance_storage",
            "class": "CryptifyPostgresStorage",
            "config": {"schema": instance_schema, "url": suite_database_url().libpq},
        }
    }
    with instance_for_test(overrides={"storage": storage}) as dagster_instance:
        yield dagster_instance
    run_sql(f'DROP SCHEMA IF EXISTS "{instance_schema}" CASCADE')
