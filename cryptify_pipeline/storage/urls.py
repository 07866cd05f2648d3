"""Postgres connection URLs: parsing, normalisation and safe display.

This is the one place where URLs are normalised. SQLAlchemy 2.1 maps a bare ``postgresql://``
to psycopg 3, which we do not install, so every URL handed to SQLAlchemy (and so to
dagster-postgres) carries ``+psycopg2``. ADBC and libpq want the plain ``postgresql://`` form.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

_POSTGRES_SCHEMES = {"postgres", "postgresql", "postgresql+psycopg2", "postgresql+psycopg"}


class DatabaseUrlError(ValueError):
    """A database URL that is not a usable Postgres URL."""


@dataclass(frozen=True)
class DatabaseUrl:
    """A Postgres URL whose password never shows in ``repr`` or ``str``."""

    _url: URL

    @classmethod
    def parse(cls, raw: str, *, source: str = "database URL") -> DatabaseUrl:
        """Parse ``raw``; ``source`` names where it came from in error messages."""
        try:
            url = make_url(raw.strip())
        except ArgumentError:
            raise DatabaseUrlError(
                f"{source} is not a URL; expected postgresql://USER[:PASSWORD]@HOST[:PORT]/DBNAME"
            ) from None
        if url.drivername not in _POSTGRES_SCHEMES:
            raise DatabaseUrlError(
                f"{source} has scheme {url.drivername!r}; expected postgresql:// "
                "(postgres:// and postgresql+psycopg2:// are accepted too)"
            )
        if not url.database:
            raise DatabaseUrlError(f"{source} names no database; expected .../DBNAME at the end")
        return cls(url.set(drivername="postgresql+psycopg2"))

    @classmethod
    def from_parts(
        cls, *, host: str, port: int, user: str, password: str | None, database: str
    ) -> DatabaseUrl:
        return cls(
            URL.create(
                "postgresql+psycopg2",
                username=user,
                password=password or None,
                host=host,
                port=port,
                database=database,
            )
        )

    def parts(self) -> dict[str, object]:
        """Host, port, user, password and database, for settings given as parts."""
        return {
            "host": self._url.host,
            "port": self._url.port,
            "user": self._url.username,
            "password": self._url.password,
            "database": self._url.database,
        }

    @property
    def database(self) -> str:
        return self._url.database or ""

    @property
    def sqlalchemy(self) -> str:
        """The URL for SQLAlchemy and dagster-postgres (psycopg2 driver), password included."""
        return self._url.render_as_string(hide_password=False)

    @property
    def libpq(self) -> str:
        """The URL for libpq clients (ADBC, psql, psycopg2.connect), password included."""
        return self._url.set(drivername="postgresql").render_as_string(hide_password=False)

    def with_database(self, database: str) -> DatabaseUrl:
        return DatabaseUrl(self._url.set(database=database))

    def with_search_path(self, schema: str) -> DatabaseUrl:
        """The same server with ``schema`` first on the search path of every session."""
        return DatabaseUrl(self._url.update_query_dict({"options": f"-csearch_path={schema}"}))

    def __str__(self) -> str:
        return self._url.render_as_string(hide_password=True)

    def __repr__(self) -> str:
        return f"DatabaseUrl({str(self)!r})"
