"""The test database: the configured server (CI sets DATABASE_URL), or an embedded one."""

from __future__ import annotations

import os
from functools import cache

import psycopg2

from cryptify_pipeline.postgres_url import DatabaseUrl
from cryptify_pipeline.settings import load_settings, project_root
from cryptify_pipeline.storage.embedded import start_embedded_server

DATABASE_VARIABLES = ("DATABASE_URL", "DB_HOST", "DB_PORT", "DB_USER", "DB_PASSWORD", "DB_NAME")


@cache
def suite_database_url() -> DatabaseUrl:
    """The configured database, or with none an embedded server under ``.cryptify/pg-test``
    (started on first use), so a laptop needs nothing installed."""
    configured = load_settings().database.url
    if configured is not None:
        return configured
    return start_embedded_server(project_root() / ".cryptify" / "pg-test", "cryptify_test")


def subprocess_env(**extra: str) -> dict[str, str]:
    """This process's environment for a subprocess (the dagster CLI, a webserver, a writer)
    with the test database as its only database setting, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if k not in DATABASE_VARIABLES}
    return {**env, "DATABASE_URL": suite_database_url().libpq, **extra}


def run_sql(query: str, params: tuple | dict | None = None) -> list[tuple]:
    """Run one statement on the test database; its rows, if any."""
    return run_sql_on(suite_database_url(), query, params)


def run_sql_on(url: DatabaseUrl, query: str, params: tuple | dict | None = None) -> list[tuple]:
    """Run one statement on a fresh psycopg2 connection, a client independent of the IO manager."""
    connection = psycopg2.connect(url.libpq)
    try:
        with connection, connection.cursor() as cursor:
            cursor.execute(query, params)
            return cursor.fetchall() if cursor.description else []
    finally:
        connection.close()
