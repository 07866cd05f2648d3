"""Shared by the benchmarks: the pipeline on given settings, a throwaway Postgres-backed
Dagster instance, and the report. The database is the tests' (DATABASE_URL, else an embedded
server under .cryptify/pg-test)."""

import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from dagster import DagsterInstance, Definitions

from cryptify_pipeline_tests.support.database import run_sql, suite_database_url
from cryptify_pipeline_tests.support.pipeline import definitions

SCHEMA = "bench_dagster"


@contextmanager
def postgres_instance() -> Iterator[DagsterInstance]:
    drop_schema()
    with tempfile.TemporaryDirectory() as home:
        write_instance_config(Path(home), SCHEMA)
        with DagsterInstance.from_config(home) as instance:
            yield instance
    drop_schema()


def write_instance_config(home: Path, schema: str) -> None:
    """A ``dagster.yaml`` in ``home`` for an instance storing its runs and events in ``schema``
    of the benchmark database: processes opening ``home`` share the instance."""
    (home / "dagster.yaml").write_text(
        "storage:\n  custom:\n    module: cryptify_pipeline.storage.instance_storage\n"
        f"    class: CryptifyPostgresStorage\n    config:\n      schema: {schema}\n"
        f"      url: {suite_database_url().libpq}\n"
        "telemetry:\n  enabled: false\n"
    )


def bench_definitions(schema: str, **settings: str) -> Definitions:
    """The pipeline as this environment's settings plus ``settings`` (e.g. ``CRYPTIFY_START``)
    build it, automation off, its tables in ``schema`` of the benchmark database."""
    return definitions(schema, {**os.environ, **settings})


def sql(query: str, params: tuple = ()) -> list[tuple]:
    """Run one statement on the benchmark database in its own connection; its rows, if any."""
    return run_sql(query, params)


def drop_schema(schema: str = SCHEMA) -> None:
    sql(f"DROP SCHEMA IF EXISTS {schema} CASCADE")


def report(name: str, results: dict[str, float]) -> None:
    """Print the numbers and write them to benchmarks/results/<name>.json (a flat object of
    numbers, and a few strings or lists)."""
    width = max(map(len, results))
    for key, value in results.items():
        shown = f"{value:,}" if isinstance(value, int | float) else value
        print(f"{key:>{width}}: {shown}")
    out = Path(__file__).parent / "results" / f"{name}.json"
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {out}")


def run_stage(module: str, stage: str, home: str, settings: dict, log: Path, *extra: str) -> dict:
    """Runs ``python -m <module> --stage <stage>`` in a new process on the shared instance in
    ``home`` (Dagster's log appended to ``log``) and returns the numbers it printed last, as
    JSON; a failed stage ends the benchmark with the log's tail."""
    command = [sys.executable, "-m", module, "--stage", stage, "--home", home,
               "--plan", json.dumps(settings), *extra]  # fmt: skip
    with log.open("a") as stderr:
        output = subprocess.run(command, check=False, stdout=subprocess.PIPE, stderr=stderr,
                                text=True)  # fmt: skip
    if output.returncode:
        tail = "\n".join(log.read_text().splitlines()[-40:])
        raise SystemExit(f"stage {stage} failed (exit {output.returncode}); its log ends:\n{tail}")
    numbers = json.loads(output.stdout.strip().splitlines()[-1])
    print(f"{stage:>12}: {numbers}", flush=True)
    return numbers
