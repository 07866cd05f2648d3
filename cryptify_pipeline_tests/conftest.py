"""Fixtures on a real Postgres and a real, Postgres-backed Dagster instance.

The database is the configured one (CI sets DATABASE_URL to the machine's server); with none
configured, an embedded server under ``.cryptify/pg-test`` (``support/database.py``). Each test
gets its own schema, dropped afterwards. A test using these fixtures is marked ``integration``;
an embedded server this session started is stopped when it ends.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from dagster import DagsterInstance, instance_for_test
from xdist.scheduler import LoadScopeScheduling

from cryptify_pipeline.postgres_url import DatabaseUrl
from cryptify_pipeline_tests.support.database import (
    embedded_server_dir,
    embedded_server_running,
    run_sql,
    stop_embedded_server_started_by_suite,
    suite_database_url,
)

# The suite runs on two pytest-xdist workers on two cores; OpenMP threads in scikit-learn
# (HistGradientBoosting) spin-wait for a core the other worker holds and run many times slower.
os.environ.setdefault("OMP_NUM_THREADS", "1")

# a test using one of these reaches Postgres or a Postgres-backed Dagster instance
INTEGRATION_FIXTURES = frozenset({"database_url", "schema", "instance"})


# Folders whose files share a session fixture too costly to build on both workers
# (api/conftest.py's forecast_tables: ~24 s of Dagster runs): one unit of xdist's work, so
# one worker builds it. Any other file is a unit of its own, as with --dist loadfile.
SHARED_FIXTURE_FOLDERS = ("cryptify_pipeline_tests/api/",)


def unit_of(nodeid: str) -> str:
    """The unit of work a test belongs to: its shared folder, else its file."""
    path = nodeid.split("::", 1)[0]
    return next((folder for folder in SHARED_FIXTURE_FOLDERS if path.startswith(folder)), path)


class FilesAndSharedFolders(LoadScopeScheduling):
    """``make test``'s ``--dist loadfile``: a file, or a folder of SHARED_FIXTURE_FOLDERS,
    runs on one worker (its module and shared fixtures built once), and the units are handed
    out in collection order, which the workers sort heaviest first (``heaviest_first``)."""

    def _split_scope(self, nodeid: str) -> str:
        return unit_of(nodeid)

    def schedule(self) -> None:
        # xdist's own order is by number of tests, which says little of their time
        self.config.option.loadscopereorder = False
        super().schedule()


@pytest.hookimpl(optionalhook=True)  # an xdist hook: absent under -p no:xdist
def pytest_xdist_make_scheduler(config: pytest.Config, log) -> LoadScopeScheduling | None:
    if config.getvalue("dist") == "loadfile":
        return FilesAndSharedFolders(config, log)
    return None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if INTEGRATION_FIXTURES.intersection(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.integration)
    if _is_xdist_worker(config):
        items[:] = heaviest_first(items)


def heaviest_first(items: list[pytest.Item]) -> list[pytest.Item]:
    """``items`` by unit of work, those with the most slow and live tests first (the workers
    take units in this order: a long unit taken last would leave the other worker idle while
    it runs), each unit's tests in their own order."""
    weight: dict[str, int] = {}
    for item in items:
        heavy = any(item.get_closest_marker(mark) for mark in ("slow", "live"))
        weight[unit_of(item.nodeid)] = weight.get(unit_of(item.nodeid), 0) + heavy
    order = {unit: rank for rank, unit in enumerate(dict.fromkeys(weight))}
    return sorted(
        items, key=lambda item: (-weight[unit_of(item.nodeid)], order[unit_of(item.nodeid)])
    )


# the controller's note: (the embedded server's data directory, whether it ran before the
# session), or None when a database is configured
_EMBEDDED_BEFORE = pytest.StashKey[tuple[Path, bool] | None]()


def _is_xdist_worker(config: pytest.Config) -> bool:
    return hasattr(config, "workerinput")


def pytest_configure(config: pytest.Config) -> None:
    # The workers start the embedded server on first use and leave it running for each other;
    # the controller (or a session without xdist) notes whether one ran before the session.
    if _is_xdist_worker(config):
        return
    data_dir = embedded_server_dir()
    config.stash[_EMBEDDED_BEFORE] = (
        None if data_dir is None else (data_dir, embedded_server_running(data_dir))
    )


def pytest_unconfigure(config: pytest.Config) -> None:
    """Stop the embedded server if this session started it (the workers have ended by now)."""
    noted = config.stash.get(_EMBEDDED_BEFORE, None)
    if noted is not None:
        stop_embedded_server_started_by_suite(*noted)


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
