"""A throwaway Postgres-backed Dagster instance for benchmarks, configured as in dagster.yaml."""

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg2
from dagster import DagsterInstance

from cryptify_pipeline.database import database_url

SCHEMA = "bench_dagster"


@contextmanager
def postgres_instance() -> Iterator[DagsterInstance]:
    drop_schema()
    with tempfile.TemporaryDirectory() as home:
        (Path(home) / "dagster.yaml").write_text(
            "storage:\n  custom:\n    module: cryptify_pipeline.instance_storage\n"
            f"    class: CryptifyPostgresStorage\n    config:\n      schema: {SCHEMA}\n"
            "telemetry:\n  enabled: false\n"
        )
        with DagsterInstance.from_config(home) as instance:
            yield instance
    drop_schema()


def drop_schema() -> None:
    connection = psycopg2.connect(database_url().libpq)
    with connection, connection.cursor() as cursor:
        cursor.execute(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE")
    connection.close()
