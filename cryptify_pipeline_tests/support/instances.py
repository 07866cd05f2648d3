"""Postgres-backed Dagster instances of a test's own, in a schema of the test database."""

from __future__ import annotations

import contextvars
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import TypeVar

from dagster import AssetMaterialization, DagsterInstance, instance_for_test

from cryptify_pipeline_tests.support.database import run_sql, suite_database_url

T = TypeVar("T")


@contextmanager
def own_instance(name: str) -> Iterator[DagsterInstance]:
    """An instance whose runs and events live in schema ``dagster_<name>_<time>``, dropped
    afterwards: materialisations reported in it reach no other test."""
    schema = f"dagster_{name}_{datetime.now(UTC):%H%M%S%f}"
    storage = {
        "custom": {
            "module": "cryptify_pipeline.storage.instance_storage",
            "class": "CryptifyPostgresStorage",
            "config": {"schema": schema, "url": suite_database_url().libpq},
        }
    }
    try:
        with instance_for_test(overrides={"storage": storage}) as instance:
            yield instance
    finally:
        run_sql(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def report(instance: DagsterInstance, asset: str, partitions) -> None:
    """Record materialisations of ``asset``'s ``partitions`` as if runs had written them."""
    for partition in partitions:
        instance.report_runless_asset_event(AssetMaterialization(asset, partition=partition))


def isolated(evaluate: Callable[..., T], *args) -> T:
    """``evaluate(*args)`` (a schedule's or sensor's tick) in a copy of the context.

    A tick given an instance with a ref opens its own instance from the ref, which sets
    Dagster's current definitions-state storage, a context variable, and never closes it; once
    that instance is gone, every later definitions load in the process fails on its dead
    weakref. In a copied context the variable does not outlive the tick.
    """
    return contextvars.copy_context().run(evaluate, *args)
