"""Fixtures on a real Postgres and a real, Postgres-backed Dagster instance.

The database is the configured one (CI sets DATABASE_URL to the machine's server); with none
configured, an embedded server under ``.cryptify/pg-test`` so a laptop needs nothing installed.
Each test gets its own schema, dropped afterwards.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import psycopg2
import pytest
from dagster import DagsterInstance, instance_for_test

from cryptify_pipeline.io.database_url import DatabaseUrl
from cryptify_pipeline.io.embedded_postgres import start_embedded_server
from cryptify_pipeline.settings import load_settings, project_root


def _test_database_url() -> DatabaseUrl:
    configured = load_settings().database.url
    if configured is not None:
        return configured
    return start_embedded_server(project_root() / ".cryptify" / "pg-test", "cryptify_test")


# The suite runs on two pytest-xdist workers on two cores; OpenMP threads in scikit-learn
# (HistGradientBoosting) spin-wait for a core the other worker holds and run many times slower.
os.environ.setdefault("OMP_NUM_THREADS", "1")

TEST_DATABASE_URL = _test_database_url()
# Subprocesses (the dagster CLI, crash tests) and get_settings() see the same database.
os.environ["DATABASE_URL"] = TEST_DATABASE_URL.libpq
os.environ.pop("DB_HOST", None)


def run_sql(query: str, params: tuple | dict | None = None) -> list[tuple]:
    """Run one statement on a fresh psycopg2 connection, a client independent of the IO manager."""
    connection = psycopg2.connect(TEST_DATABASE_URL.libpq)
    try:
        with connection, connection.cursor() as cursor:
            cursor.execute(query, params)
            return cursor.fetchall() if cursor.description else []
    finally:
        connection.close()


@pytest.fixture(scope="session")
def database_url() -> DatabaseUrl:
    return TEST_DATABASE_URL


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
    """A Dagster instance whose runs, events and schedules are stored in Postgres."""
    storage = {
        "custom": {
            "module": "cryptify_pipeline.instance_storage",
            "class": "CryptifyPostgresStorage",
            "config": {"schema": instance_schema},
        }
    }
    with instance_for_test(overrides={"storage": storage}) as dagster_instance:
        yield dagster_instance
    run_sql(f'DROP SCHEMA IF EXISTS "{instance_schema}" CASCADE')
