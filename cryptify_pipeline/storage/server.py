"""Which Postgres server a process uses: the configured one, or the embedded one started on
demand; ``database_url()`` is its URL.

No Dagster here: the data API (``api/``) resolves its database with it as the pipeline does.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

from cryptify_pipeline.postgres_url import DatabaseUrl
from cryptify_pipeline.settings import DEFAULT_DB_NAME, DatabaseSettings, get_settings
from cryptify_pipeline.storage.embedded import start_embedded_server


@cache
def embedded_database_url(data_dir: Path) -> DatabaseUrl:
    """The project database on the embedded server in ``data_dir``, started if not running."""
    return start_embedded_server(data_dir, DEFAULT_DB_NAME)


def resolve_database_url(database: DatabaseSettings) -> DatabaseUrl:
    """The configured URL, or the URL of the embedded server."""
    if database.url is not None:
        return database.url
    return embedded_database_url(database.embedded_dir)


@cache
def database_url() -> DatabaseUrl:
    """The process's database URL from its settings, resolved once (instance storage, the
    command line, benchmarks; steps, checks and sensors use their resources)."""
    return resolve_database_url(get_settings().database)
