"""Shared by the benchmarks: a throwaway Postgres-backed Dagster instance, and the report."""

import json
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


def sql(query: str, params: tuple = ()) -> list[tuple]:
    """Run one statement on the project database in its own connection; its rows, if any."""
    connection = psycopg2.connect(database_url().libpq)
    try:
        with connection, connection.cursor() as cursor:
            cursor.execute(query, params)
            return cursor.fetchall() if cursor.description else []
    finally:
        connection.close()


def drop_schema() -> None:
    sql(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE")


def report(name: str, results: dict[str, float]) -> None:
    """Print the numbers and write them to benchmarks/results/<name>.json (a flat object)."""
    width = max(map(len, results))
    for key, value in results.items():
        print(f"{key:>{width}}: {value:,}")
    out = Path(__file__).parent / "results" / f"{name}.json"
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {out}")
