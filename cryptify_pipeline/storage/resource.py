"""How steps, checks and sensors reach the project database: the ``PostgresDatabase`` resource.

Which server a process uses (``storage/server.py``) and the URL value type
(``postgres_url.py``) are free of Dagster, for the data API too.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

import pandas as pd
from dagster import ConfigurableResource, EnvVar
from pydantic import Field

from cryptify_pipeline.postgres_url import DatabaseUrl
from cryptify_pipeline.settings import (
    DEFAULT_DB_NAME,
    DEFAULT_DB_PORT,
    DEFAULT_DB_USER,
    DEFAULT_SCHEMA,
    DatabaseSettings,
)
from cryptify_pipeline.storage import pg_tables
from cryptify_pipeline.storage.server import embedded_database_url

__all__ = ["PostgresDatabase"]


class PostgresDatabase(ConfigurableResource):
    """The project database and the schema of its asset tables.

    Checks and sensors read tables through it; the IO manager writes through it. One way of
    reaching the server is set: a URL, a host and its parts, or an embedded server's data
    directory. ``build_resources`` passes the URL and the password as ``EnvVar``s, so the UI
    shows the variables' names, never their values.
    """

    url: str | None = Field(default=None, description="Postgres URL (DATABASE_URL).")
    host: str | None = Field(default=None, description="Server host (DB_HOST), without a url.")
    port: int = Field(default=DEFAULT_DB_PORT, description="Server port (DB_PORT).")
    user: str = Field(default=DEFAULT_DB_USER, description="User (DB_USER).")
    password: str | None = Field(default=None, description="Password (DB_PASSWORD).")
    name: str = Field(default=DEFAULT_DB_NAME, description="Database name (DB_NAME).")
    embedded_dir: str | None = Field(
        default=None, description="Data directory of the embedded server, without url or host."
    )
    schema_: str = Field(
        default=DEFAULT_SCHEMA, alias="schema", description="Asset tables' schema."
    )

    @classmethod
    def from_settings(cls, database: DatabaseSettings, schema: str) -> PostgresDatabase:
        if database.configured_by == "DATABASE_URL":
            return cls(url=EnvVar("DATABASE_URL"), schema=schema)
        if database.configured_by == "DB_HOST" and database.url is not None:
            parts = database.url.parts()
            return cls(
                host=parts["host"], port=parts["port"], user=parts["user"], name=parts["database"],
                password=EnvVar("DB_PASSWORD") if parts["password"] else None, schema=schema,
            )  # fmt: skip
        return cls(embedded_dir=str(database.embedded_dir), schema=schema)

    @property
    def schema_name(self) -> str:
        return self.schema_

    def connection_url(self) -> DatabaseUrl:
        if self.url:
            return DatabaseUrl.parse(self.url)
        if self.host:
            return DatabaseUrl.from_parts(
                host=self.host, port=self.port, user=self.user, password=self.password,
                database=self.name,
            )  # fmt: skip
        if self.embedded_dir:
            return embedded_database_url(Path(self.embedded_dir).expanduser())
        raise ValueError("PostgresDatabase needs a url, a host or an embedded_dir")

    def read_time_range(
        self, table: str, start: datetime, end: datetime, columns: Sequence[str] | None = None,
        time_column: str = "ts",
    ) -> pd.DataFrame:  # fmt: skip
        """Rows of ``table`` with ``time_column`` in [start, end), in one query."""
        with pg_tables.transaction(self.connection_url()) as connection:
            return pg_tables.read_frame(
                connection, self.schema_, table, columns,
                [pg_tables.TimeRange(time_column, start, end)],
            )  # fmt: skip

    def latest_ts(self, table: str, time_column: str = "ts") -> datetime | None:
        with pg_tables.transaction(self.connection_url()) as connection:
            return pg_tables.latest(connection, self.schema_, table, time_column)
