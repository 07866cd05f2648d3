"""The live database URL: the configured server, or the embedded one started on demand."""

from __future__ import annotations

from functools import cache

from cryptify_pipeline.io.database_url import DatabaseUrl
from cryptify_pipeline.io.embedded_postgres import start_embedded_server
from cryptify_pipeline.settings import DEFAULT_DB_NAME, DatabaseSettings, get_settings


def resolve_database_url(database: DatabaseSettings) -> DatabaseUrl:
    """The configured URL, or the URL of the embedded server, started if it is not running."""
    if database.url is not None:
        return database.url
    return start_embedded_server(database.embedded_dir, DEFAULT_DB_NAME)


@cache
def database_url() -> DatabaseUrl:
    """The process's database URL, resolved once."""
    return resolve_database_url(get_settings().database)
