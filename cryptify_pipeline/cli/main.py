"""``cryptify``: run, watch and stop the pipeline through the Dagster webserver.

    cryptify jobs
    cryptify run JOB [--partition KEY] [--config FILE] [--timeout S] [--wait]
    cryptify backfill ASSET|JOB [ASSET|JOB ...] --from KEY --to KEY [--wait]
    cryptify status RUN_ID
    cryptify runs [--job JOB] [--status STATUS ...] [--limit N]
    cryptify cancel RUN_ID
    cryptify stale-runs [--clear]
    cryptify logs RUN_ID
    cryptify db url|start|stop
    cryptify api [--host 127.0.0.1] [--port 8000]

Every command but ``api`` takes --host/--port (default localhost:3000), --request-timeout and
--json. People get aligned tables, scripts --json. Errors are one line on stderr and exit status
1, and nothing is launched when a partition key, a range or a run config is wrong. ``api`` serves
the read-only data API and its dashboard until interrupted.
"""

import argparse
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NoReturn

import yaml

from cryptify_pipeline.cli.client import (
    DEFAULT_HOST,
    DEFAULT_PORT,
    REQUEST_TIMEOUT_SECONDS,
    ClientError,
    CryptifyClient,
    Run,
)
from cryptify_pipeline.cli.output import render
from cryptify_pipeline.run_tags import MAX_RUNTIME_SECONDS_TAG
from cryptify_pipeline.settings import DEFAULT_API_HOST, DEFAULT_API_PORT
from cryptify_pipeline.storage.run_process import RUN_PROCESS_TAG, RunProcess

POLL_SECONDS = 1.0
# STARTED runs looked at by stale-runs: far more than max_concurrent_runs
STALE_RUNS_LIMIT = 1000
MAX_REQUEST_TIMEOUT_SECONDS = 3600.0


class CommandError(Exception):
    """A command cannot be carried out; its message is printed as the one error line."""


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        result = args.command(args)
    except (ClientError, CommandError) as error:
        print(f"cryptify {args.command_name}: {error}".replace("\n", " "), file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    if isinstance(result, tuple):  # (what to print, exit status)
        output, status = result
    else:
        output, status = result, 0
    print(render(args.command_name, output, args.json))
    return status


# -- commands ------------------------------------------------------------------------------


def _jobs(args: argparse.Namespace) -> Any:
    return _client(args).jobs()


def _run(args: argparse.Namespace) -> Any:
    client = _client(args)
    run_id = client.launch_run(
        args.job,
        partition=args.partition,
        run_config=_read_config(args.config) if args.config else None,
        timeout_seconds=args.timeout,
    )
    if not args.wait:
        return {"run_id": run_id, "status": client.run(run_id).status}
    run = _wait_for_run(client, run_id)
    view = _run_view(run)
    if run.status != "SUCCESS":
        view["reason"] = _reason(client, run_id)
    return view, 0 if run.status == "SUCCESS" else 1


def _backfill(args: argparse.Namespace) -> Any:
    client = _client(args)
    backfill_id = client.launch_backfill(args.targets, args.first, args.last)
    if not args.wait:
        return {"backfill_id": backfill_id, "status": client.backfill_status(backfill_id)}
    while (status := client.backfill_status(backfill_id)) in {"REQUESTED", "CANCELING"}:
        time.sleep(POLL_SECONDS)
    return {"backfill_id": backfill_id, "status": status}, 0 if status == "COMPLETED_SUCCESS" else 1


def _status(args: argparse.Namespace) -> Any:
    client = _client(args)
    view = _run_view(client.run(args.run_id))
    if view["status"] in {"FAILURE", "CANCELED"}:
        view["reason"] = _reason(client, args.run_id)
    return view


def _runs(args: argparse.Namespace) -> Any:
    runs = _client(args).runs(job=args.job, statuses=args.status or (), limit=args.limit)
    return [_run_view(run) for run in runs]


def _cancel(args: argparse.Namespace) -> Any:
    client = _client(args)
    client.cancel(args.run_id)
    return {"run_id": args.run_id, "status": client.run(args.run_id).status}


def _stale_runs(args: argparse.Namespace) -> Any:
    """The STARTED runs whose process, on this machine, is gone; with --clear, each is marked
    CANCELED (GraphQL can cancel a run, not fail it) and its pool slots are freed."""
    client = _client(args)
    found = []
    for listed in client.runs(statuses=["STARTED"], limit=STALE_RUNS_LIMIT):
        process = RunProcess.from_tag(listed.tags.get(RUN_PROCESS_TAG))
        if process is None or not process.is_local or not process.is_gone():
            continue
        # read again now that its process is gone: it may have finished just before exiting
        run = client.run(listed.run_id)
        if run.status != "STARTED":
            continue
        if args.clear:
            if client.mark_canceled(run.run_id):  # False: it finished meanwhile
                client.free_pool_slots(run.run_id)
            run = client.run(run.run_id)
        found.append({**_run_view(run), "process": f"{process} (gone)"})
    return found


def _logs(args: argparse.Namespace) -> Any:
    return [asdict(event) for event in _client(args).logs(args.run_id)]


def _db(args: argparse.Namespace) -> Any:
    from cryptify_pipeline.settings import SettingsError
    from cryptify_pipeline.storage.embedded import StalePidFile

    try:
        return _db_action(args)
    except (SettingsError, StalePidFile) as error:
        raise CommandError(str(error)) from None


def _db_action(args: argparse.Namespace) -> Any:
    from cryptify_pipeline.settings import get_settings
    from cryptify_pipeline.storage.embedded import stop_embedded_server

    database = get_settings().database
    if args.action == "url":
        from cryptify_pipeline.storage.server import database_url

        url = database_url().libpq
        # plain, so that `psql "$(cryptify db url)"` works
        return {"url": url, "embedded": database.is_embedded} if args.json else url
    if not database.is_embedded:
        raise CommandError(
            "the database is a configured server (DATABASE_URL or DB_HOST), not the embedded "
            "one: start and stop it with its own tools"
        )
    if args.action == "start":
        from cryptify_pipeline.storage.server import database_url

        return {"url": database_url().libpq, "data_dir": str(database.embedded_dir)}
    stopped = stop_embedded_server(database.embedded_dir)
    return {"stopped": stopped, "data_dir": str(database.embedded_dir)}


def _api(args: argparse.Namespace) -> Any:
    from cryptify_pipeline.api.app import CannotListen, serve
    from cryptify_pipeline.settings import SettingsError, get_settings

    try:
        settings = get_settings()
        serve(settings, args.host, args.port)
    except (SettingsError, CannotListen) as error:
        raise CommandError(str(error)) from None
    return "stopped"


# -- helpers -------------------------------------------------------------------------------


def _client(args: argparse.Namespace) -> CryptifyClient:
    return CryptifyClient(args.host, args.port, timeout=args.request_timeout)


def _read_config(path: Path) -> dict[str, Any]:
    try:
        config = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise CommandError(f"cannot read run config {path}: {error.strerror}") from None
    except UnicodeDecodeError as error:
        raise CommandError(
            f"run config {path} is not a text file: byte {error.object[error.start]:#04x} at "
            f"offset {error.start} is not UTF-8 (give a YAML or JSON file)"
        ) from None
    except yaml.YAMLError as error:
        raise CommandError(f"run config {path} is not valid YAML or JSON: {error}") from None
    if not isinstance(config, dict):
        raise CommandError(f"run config {path} must be a mapping, such as ops: {{...}}")
    return config


def _wait_for_run(client: CryptifyClient, run_id: str) -> Run:
    while not (run := client.run(run_id)).finished:
        time.sleep(POLL_SECONDS)
    return run


def _reason(client: CryptifyClient, run_id: str) -> str | None:
    """Why a run failed or was cancelled: each failed step's own error, else the last
    error-level or cancellation message (a time limit, a crashed run worker)."""
    events = client.logs(run_id)
    step_errors = [
        f"{event.step_key}: {event.error}" if event.step_key else event.error
        for event in events
        if event.event_type == "ExecutionStepFailureEvent" and event.error
    ]
    if step_errors:
        return "\n".join(step_errors)
    for event in reversed(events):
        if event.level in {"ERROR", "CRITICAL"} or "Cancel" in event.event_type:
            return event.error or event.message.strip().splitlines()[0]
    return None


def _run_view(run: Run) -> dict[str, Any]:
    return {
        "run_id": run.run_id,
        "job": run.job_name,
        "status": run.status,
        "partition": run.partition,
        "started": _time(run.start_time),
        "ended": _time(run.end_time),
        "max_runtime_seconds": run.tags.get(MAX_RUNTIME_SECONDS_TAG),
    }


def _time(timestamp: float | None) -> str | None:
    if timestamp is None:
        return None
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _parser() -> argparse.ArgumentParser:
    common = _Parser(add_help=False)
    common.add_argument("--host", default=DEFAULT_HOST, help=f"webserver host ({DEFAULT_HOST})")
    common.add_argument(
        "--port", type=_positive_int, default=DEFAULT_PORT, help=f"({DEFAULT_PORT})"
    )
    common.add_argument(
        "--request-timeout", type=_request_timeout, default=REQUEST_TIMEOUT_SECONDS, metavar="S",
        help=f"seconds to wait for the webserver's answer ({REQUEST_TIMEOUT_SECONDS:g})",
    )  # fmt: skip
    common.add_argument("--json", action="store_true", help="machine-readable output")

    parser = _Parser(prog="cryptify", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command_name", required=True, metavar="COMMAND")

    def command(name: str, handler, help_text: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, parents=[common], help=help_text, description=help_text)
        sub.set_defaults(command=handler)
        return sub

    command("jobs", _jobs, "list the jobs that can run, with their schedules and time limits")
    run = command("run", _run, "launch a run of a job (it waits in the queue like any other)")
    run.add_argument("job")
    run.add_argument("--partition", help="partition key, e.g. 2026-11-27-13:00 or 2026-11-26")
    run.add_argument("--config", type=Path, help="run config file (YAML or JSON)")
    run.add_argument("--timeout", type=_positive_int, help="max run time in seconds")
    run.add_argument("--wait", action="store_true", help="wait for the run to finish")
    backfill = command("backfill", _backfill, "backfill a range of partitions of assets or jobs")
    backfill.add_argument("targets", metavar="ASSET|JOB", nargs="+")
    backfill.add_argument("--from", dest="first", required=True, metavar="KEY")
    backfill.add_argument("--to", dest="last", required=True, metavar="KEY")
    backfill.add_argument("--wait", action="store_true", help="wait for the backfill to finish")
    command("status", _status, "show a run's status").add_argument("run_id")
    runs = command("runs", _runs, "list recent runs, newest first")
    runs.add_argument("--job")
    runs.add_argument(
        "--status", action="append", metavar="STATUS",
        help="QUEUED, STARTED, SUCCESS, FAILURE, CANCELED... (repeatable)",
    )  # fmt: skip
    runs.add_argument("--limit", type=_positive_int, default=20)
    command("cancel", _cancel, "terminate a run, or take it out of the queue").add_argument(
        "run_id"
    )
    stale = command(
        "stale-runs", _stale_runs,
        "list the STARTED runs whose process, on this machine, is gone (killed)",
    )  # fmt: skip
    stale.add_argument(
        "--clear", action="store_true",
        help="mark them canceled and free the pool slots they hold",
    )  # fmt: skip
    command("logs", _logs, "print a run's event log").add_argument("run_id")
    db = command("db", _db, "the embedded Postgres: its URL, start it, stop it")
    db.add_argument("action", choices=["url", "start", "stop"])
    # the data API is a server of its own, not a client of the webserver: no --json
    api_help = "serve the read-only data API and its dashboard (until Ctrl-C)"
    api = commands.add_parser("api", help=api_help, description=api_help)
    api.set_defaults(command=_api, json=False)
    api.add_argument(
        "--host", default=DEFAULT_API_HOST, help=f"address to listen on ({DEFAULT_API_HOST})"
    )
    api.add_argument(
        "--port", type=_tcp_port, default=DEFAULT_API_PORT, help=f"({DEFAULT_API_PORT})"
    )
    return parser


class _Parser(argparse.ArgumentParser):
    """Usage errors too are one line on stderr and exit status 1."""

    def error(self, message: str) -> NoReturn:
        self.exit(1, f"{self.prog}: {message} (see {self.prog} --help)\n")


def _positive_int(raw: str) -> int:
    if not raw.isdigit() or int(raw) < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number of at least 1, not {raw!r}")
    return int(raw)


def _tcp_port(raw: str) -> int:
    if not raw.isdigit() or not 1 <= int(raw) <= 65535:
        # argparse's int would take 99999, and uvicorn listen on another port than it printed
        raise argparse.ArgumentTypeError(f"port {raw} is not a TCP port (1-65535)")
    return int(raw)


def _request_timeout(raw: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        value = 0.0
    # bounded: the socket layer cannot wait 1e10 s (an OverflowError mid-request), and no
    # answer of the webserver takes an hour
    if not 0 < value <= MAX_REQUEST_TIMEOUT_SECONDS:  # nan fails both comparisons
        raise argparse.ArgumentTypeError(
            f"expected a number of seconds above 0 and at most "
            f"{MAX_REQUEST_TIMEOUT_SECONDS:g}, not {raw!r}"
        )
    return value


if __name__ == "__main__":
    sys.exit(main())
