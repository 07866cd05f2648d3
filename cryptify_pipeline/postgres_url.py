"""Postgres connection URLs: parsing, normalisation and safe display; URLs redacted for errors.

A value type with no connection of its own: settings parse the configured URL with it, so it
sits below them (storage, the API and the instance storage use it too). This is the one place
where URLs are normalised. SQLAlchemy 2.1 maps a bare ``postgresql://`` to psycopg 3, which we
do not install, so every URL handed to SQLAlchemy (and so to dagster-postgres) carries
``+psycopg2``. ADBC and libpq want the plain ``postgresql://`` form.

No error raised here quotes a URL: a refusal names the part that is wrong, never its value
(what looks like a port may be the tail of a password); ``cryptify_pipeline.redaction`` is what
modules show of a URL that may hold credentials.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from urllib.parse import quote

from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

_POSTGRES_SCHEMES = {"postgres", "postgresql", "postgresql+psycopg2", "postgresql+psycopg"}
SSL_MODES = ("disable", "allow", "prefer", "require", "verify-ca", "verify-full")
_ACCEPTED = "expected postgresql://USER[:PASSWORD]@HOST[:PORT]/DBNAME"
# query parameters libpq reads a password from (the connection's, and the client key's)
_SECRET_PARAMETERS = ("password", "sslpassword")


class DatabaseConnectionError(ConnectionError):
    """A driver's error whose message held the database password, with the password removed."""


def userinfo_problem(raw: str) -> str | None:
    """Why the user:password part of ``raw`` cannot be read unambiguously, or None.

    An unencoded ``@`` in a password, or a ``/``, ``?`` or ``#`` before the ``@``, is read
    differently by libpq, SQLAlchemy and urllib (libpq connected to host ``ss@db`` for password
    ``p@ss``), so such URLs are refused. A ``:`` in a password is read alike by all three
    (RFC 3986 allows it), so it is accepted.
    """
    rest = raw.partition("://")[2]
    end = min((rest.find(c) for c in "/?#" if c in rest), default=len(rest))
    authority, after = rest[:end], rest[end:]
    if authority.count("@") > 1:
        return "its password (or user) holds an unencoded '@'; percent-encode it as %40"
    if "@" in after:
        return (
            "its password (or user) holds an unencoded '/', '?' or '#', or an '@' follows the "
            "host; percent-encode them as %2F, %3F, %23 and %40"
        )
    return None


def _port_problem(raw: str) -> str | None:
    rest = raw.partition("://")[2]
    end = min((rest.find(c) for c in "/?#" if c in rest), default=len(rest))
    host = rest[:end].rpartition("@")[2]
    if "," in host:
        return "it names several hosts; name one"
    port = host.rpartition("]")[2] if host.startswith("[") else host
    if ":" not in port:
        return None
    digits = port.rpartition(":")[2]
    if digits.isdigit() and 0 < int(digits) < 65536:
        return None
    return f"its port is not a number from 1 to 65535; {_ACCEPTED}"


def _render(url: URL) -> str:
    """``url`` with its password, every part percent-encoded as RFC 3986 asks.

    SQLAlchemy's own rendering leaves spaces and ``+`` as they are, and writes a space in a
    query value as ``+``: the libpq that ADBC bundles refuses a password with a space ("use
    percent-encoded spaces"), and libpq reads ``+`` as a plus. SQLAlchemy decodes all of
    this form, so both kinds of client get the same string.
    """
    rendered = f"{url.drivername}://"
    if url.username is not None:
        rendered += _encoded(url.username)
        if url.password is not None:
            rendered += ":" + _encoded(str(url.password))
        rendered += "@"
    if url.host is not None:
        rendered += f"[{url.host}]" if ":" in url.host else url.host
    if url.port is not None:
        rendered += f":{url.port}"
    if url.database is not None:
        rendered += "/" + _encoded(url.database)
    query = [
        f"{_encoded(key)}={_encoded(value)}"
        for key in sorted(url.query)
        for value in ([url.query[key]] if isinstance(url.query[key], str) else url.query[key])
    ]
    return rendered + ("?" + "&".join(query) if query else "")


def _encoded(text: str) -> str:
    return quote(text, safe="")


class DatabaseUrlError(ValueError):
    """A database URL that is not a usable Postgres URL."""


@dataclass(frozen=True)
class DatabaseUrl:
    """A Postgres URL whose password never shows in ``repr`` or ``str``."""

    _url: URL

    @classmethod
    def parse(cls, raw: str, *, source: str = "database URL") -> DatabaseUrl:
        """Parse ``raw``; ``source`` names where it came from in error messages, which never
        quote the URL."""
        raw = raw.strip()
        for problem in (userinfo_problem(raw), _port_problem(raw)):
            if problem:
                raise DatabaseUrlError(f"{source}: {problem}")
        try:
            url = make_url(raw)
        except (ArgumentError, ValueError):
            raise DatabaseUrlError(f"{source} is not a URL; {_ACCEPTED}") from None
        if url.drivername not in _POSTGRES_SCHEMES:
            raise DatabaseUrlError(
                f"{source} has scheme {url.drivername!r}; expected postgresql:// "
                "(postgres:// and postgresql+psycopg2:// are accepted too)"
            )
        if not url.database:
            raise DatabaseUrlError(f"{source} names no database; expected .../DBNAME at the end")
        if "\x00" in f"{url.username}{url.password}{url.database}":
            raise DatabaseUrlError(f"{source} holds %00 (NUL), which Postgres cannot take")
        sslmode = url.query.get("sslmode")
        if sslmode is not None and sslmode not in SSL_MODES:
            raise DatabaseUrlError(
                f"{source} has sslmode={sslmode!r}; expected one of {', '.join(SSL_MODES)}"
            )
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
        return _render(self._url)

    @property
    def libpq(self) -> str:
        """The URL for libpq clients (ADBC, psql, psycopg2.connect), password included."""
        return _render(self._url.set(drivername="postgresql"))

    def _passwords(self) -> list[str]:
        """The password, and any given as a query parameter (``?password=``)."""
        passwords = [str(self._url.password or "")]
        for key in _SECRET_PARAMETERS:
            value = self._url.query.get(key, ())
            passwords += [value] if isinstance(value, str) else list(value)
        return [password for password in passwords if password]

    def redact(self, message: str) -> str:
        """``message`` with this URL's passwords taken out (plain and percent-encoded, as a
        query value too)."""
        forms: set[str] = set()
        for password in self._passwords():
            encoded = quote(password, safe="")
            rendered = URL.create("x", "u", password).render_as_string(hide_password=False)
            # a query value may be written with + for a space
            forms |= {password, encoded, encoded.replace("%20", "+")}
            forms.add(rendered.removeprefix("x://u:")[:-1])
        for form in sorted(forms, key=len, reverse=True):
            message = message.replace(form, "***")
        return message

    @contextmanager
    def errors_redacted(self) -> Iterator[None]:
        """Re-raise an error whose message holds the password as ``DatabaseConnectionError``
        without it (libpq quotes a password it cannot decode, such as one holding %00)."""
        try:
            yield
        except Exception as error:
            redacted = self.redact(str(error))
            if redacted == str(error):
                raise
            raise DatabaseConnectionError(f"{type(error).__name__}: {redacted}") from None

    def with_credentials(self, user: str, password: str | None) -> DatabaseUrl:
        """The same server and database, reached as another role."""
        return DatabaseUrl(self._url.set(username=user, password=password))

    def with_database(self, database: str) -> DatabaseUrl:
        return DatabaseUrl(self._url.set(database=database))

    def with_search_path(self, schema: str) -> DatabaseUrl:
        """The same server with ``schema`` first on the search path of every session."""
        return DatabaseUrl(self._url.update_query_dict({"options": f"-csearch_path={schema}"}))

    def __str__(self) -> str:
        hidden = {key: "***" for key in _SECRET_PARAMETERS if key in self._url.query}
        shown = self._url.update_query_dict(hidden).render_as_string(hide_password=True)
        return shown.replace("=%2A%2A%2A", "=***")  # as the password in the userinfo shows

    def __repr__(self) -> str:
        return f"DatabaseUrl({str(self)!r})"
