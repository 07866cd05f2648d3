"""The layout's rules hold: ``market/`` knows neither Dagster nor Postgres, ``ml/`` and ``api/``
no Dagster."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

import cryptify_pipeline

PACKAGE = Path(cryptify_pipeline.__file__).parent
DAGSTER = ("dagster", "dagster_postgres", "dagster_graphql")
POSTGRES = ("adbc_driver_postgresql", "psycopg2", "sqlalchemy", "cryptify_pipeline.storage")


def modules_of(folder: str) -> list[str]:
    return sorted(
        f"cryptify_pipeline.{folder}.{path.stem}"
        for path in (PACKAGE / folder).glob("*.py")
        if path.stem != "__init__"
    )


def loaded_after_import(modules: list[str], forbidden: tuple[str, ...]) -> list[str]:
    """The forbidden modules in a fresh interpreter's ``sys.modules`` after importing
    ``modules``."""
    script = "\n".join(
        [
            "import json, sys",
            *(f"import {module}" for module in modules),
            f"print(json.dumps(sorted(n for n in sys.modules"
            f" if any(n == f or n.startswith(f + '.') for f in {forbidden!r}))))",
        ]
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return json.loads(result.stdout)


@pytest.mark.parametrize(
    ("folder", "forbidden"), [("market", DAGSTER + POSTGRES), ("ml", DAGSTER), ("api", DAGSTER)]
)
def test_folder_imports_none_of_the_forbidden_packages(folder, forbidden):
    modules = modules_of(folder)
    assert modules, folder
    assert loaded_after_import(modules, forbidden) == []


def test_the_check_sees_a_forbidden_import():
    # the same check on a module that does import Dagster must report it
    assert "dagster" in loaded_after_import(["cryptify_pipeline.partitions"], DAGSTER)
