"""Operations on a live deployment: a real webserver and daemon, the project's dagster.yaml,
runs launched through GraphQL and the ``cryptify`` CLI against a local exchange.

Automation is off here so that only the runs a test launches exist.
"""

import json
import re
import subprocess
import time
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from dagster import AssetMaterialization
from dagster_graphql import DagsterGraphQLClient

from cryptify_pipeline.cli.client import ClientError
from cryptify_pipeline.cli.main import main
from cryptify_pipeline.hours import day_key, floor_hour, hour_key
from cryptify_pipeline_tests.support.database import run_sql
from cryptify_pipeline_tests.support.fake_binance import FakeBinance
from cryptify_pipeline_tests.support.live_deployment import BIN, Deployment, live_deployment

SYMBOLS = ["BTC/USDT", "ETH/USDT", "SOL/USDT"]
SLOW = 300.0  # seconds per exchange request: a run that only ends when stopped


pytestmark = pytest.mark.live


@pytest.fixture(scope="module")
def exchange():
    fake = FakeBinance(SYMBOLS, datetime(2025, 1, 1, tzinfo=UTC), datetime(2025, 1, 10, tzinfo=UTC))
    with fake:
        yield fake


@pytest.fixture(scope="module")
def live(tmp_path_factory, exchange):
    schema = f"live_{uuid.uuid4().hex[:8]}"
    env = {
        "CRYPTIFY_SCHEMA": schema,
        "CRYPTIFY_SOURCE": "binance",
        "CRYPTIFY_EXCHANGE_API_URL": exchange.api_url,
        "CRYPTIFY_SYMBOLS": ",".join(SYMBOLS),
        "CRYPTIFY_AUTOMATION": "off",
        # these tests are about runs, not the context: with an exchange as the candle source the
        # context would default to Bybit and Yahoo, out of reach here, ~16 s of retries a run
        "CRYPTIFY_CONTEXT_SOURCE": "none",
        "CRYPTIFY_EQUITY_INDEX_SOURCE": "none",
    }
    home = tmp_path_factory.mktemp("dagster_home")
    try:
        with live_deployment(home, f"{schema}_dagster", env) as deployment:
            deployment.schema = schema
            yield deployment
    finally:
        run_sql(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        run_sql(f'DROP SCHEMA IF EXISTS "{schema}_dagster" CASCADE')


@pytest.fixture
def slow_exchange(exchange):
    """The exchange answers after SLOW seconds, until the test ends."""
    exchange.delay_seconds = SLOW
    yield exchange
    exchange.delay_seconds = 0.0
    exchange.faults.clear()


def candles_at(live: Deployment, hour: str) -> list[tuple]:
    ts = datetime.strptime(hour, "%Y-%m-%d-%H:%M").replace(tzinfo=UTC)
    if run_sql("SELECT to_regclass(%s)", (f'"{live.schema}".candles',)) == [(None,)]:
        return []
    return run_sql(
        f'SELECT symbol, close, ingested_at FROM "{live.schema}".candles WHERE ts = %s'
        " ORDER BY symbol",
        (ts,),
    )


def started_fetching(exchange: FakeBinance, before: int, timeout: float = 60) -> None:
    """Wait until a run has sent its first candle request (so it is inside the step)."""
    deadline = time.monotonic() + timeout
    while len(exchange.kline_requests()) <= before:
        assert time.monotonic() < deadline, "the run never asked the exchange for candles"
        time.sleep(0.1)


def test_partition_run_succeeds_and_its_rows_appear(live):
    run_id = live.client.launch_run("collect_job", partition="2025-01-05-10:00")
    run = live.wait_for_run(run_id)
    assert run.status == "SUCCESS"
    assert run.partition == "2025-01-05-10:00"
    assert [row[0] for row in candles_at(live, "2025-01-05-10:00")] == SYMBOLS
    features = run_sql(
        f'SELECT count(*) FROM "{live.schema}".features WHERE ts = %s',
        (datetime(2025, 1, 5, 10, tzinfo=UTC),),
    )
    assert features == [(3,)]


def test_second_run_of_a_job_waits_in_the_queue(live, slow_exchange):
    before = len(slow_exchange.kline_requests())
    first = live.client.launch_run("collect_job", partition="2025-01-05-11:00")
    started_fetching(slow_exchange, before)
    second = live.client.launch_run("collect_job", partition="2025-01-05-12:00")
    time.sleep(3)  # several dequeue intervals: the queue had every chance to start it
    assert live.client.run(first).status == "STARTED"
    assert live.client.run(second).status == "QUEUED"
    slow_exchange.delay_seconds = 0.0
    first_run, second_run = live.wait_for_run(first), live.wait_for_run(second)
    assert (first_run.status, second_run.status) == ("SUCCESS", "SUCCESS")
    assert second_run.start_time >= first_run.end_time


def test_two_runs_never_write_one_table_at_once(live, slow_exchange):
    # an ad-hoc run of the candles asset carries no cryptify/job tag, so the job limit does not
    # hold it back; the "candles" pool does
    before = len(slow_exchange.kline_requests())
    collect = live.client.launch_run("collect_job", partition="2025-01-05-16:00")
    started_fetching(slow_exchange, before)
    location, repository = live.client.repository()
    adhoc = DagsterGraphQLClient("127.0.0.1", port_number=live.port).submit_job_execution(
        "__ASSET_JOB",
        repository_location_name=location,
        repository_name=repository,
        asset_selection=["candles"],
        tags={"dagster/partition": "2025-01-05-17:00"},
    )
    time.sleep(3)
    assert live.client.run(collect).status == "STARTED"
    assert live.client.run(adhoc).status == "QUEUED"
    slow_exchange.delay_seconds = 0.0
    first, second = live.wait_for_run(collect), live.wait_for_run(adhoc)
    assert (first.status, second.status) == ("SUCCESS", "SUCCESS")
    assert step_window(live, adhoc, "candles")[0] >= step_window(live, collect, "candles")[1]


def step_window(live: Deployment, run_id: str, step: str) -> tuple[float, float]:
    """When a step started and when it ended, from the run's event log."""
    with live.instance() as instance:
        times = {
            record.dagster_event.event_type_value: record.timestamp
            for record in instance.all_logs(run_id)
            if record.dagster_event is not None and record.step_key == step
        }
    return times["STEP_START"], times["STEP_SUCCESS"]


def test_cancelled_run_stops_promptly_and_leaves_the_partition_as_it_was(live, slow_exchange):
    hour = "2025-01-05-10:00"  # written by the first test
    slow_exchange.delay_seconds = 0.0
    if not candles_at(live, hour):
        live.wait_for_run(live.client.launch_run("collect_job", partition=hour))
    before_rows = candles_at(live, hour)
    slow_exchange.delay_seconds = SLOW
    before = len(slow_exchange.kline_requests())
    run_id = live.client.launch_run("collect_job", partition=hour)
    started_fetching(slow_exchange, before)
    live.client.cancel(run_id)
    # its exchange request answers only after SLOW (300 s): CANCELED within the wait means the
    # step was stopped mid-request, not waited for
    run = live.wait_for_run(run_id, timeout=60)
    assert run.status == "CANCELED"
    assert candles_at(live, hour) == before_rows  # same rows, same ingested_at


def test_run_past_its_time_limit_is_stopped_and_says_why(live, slow_exchange):
    before = len(slow_exchange.kline_requests())
    run_id = live.client.launch_run("collect_job", partition="2025-01-05-13:00", timeout_seconds=3)
    started_fetching(slow_exchange, before)
    run = live.wait_for_run(run_id, timeout=60)
    assert run.status in {"FAILURE", "CANCELED"}  # stopped mid-request (SLOW), as above
    messages = " ".join(event.message for event in live.client.logs(run_id))
    assert "Exceeded maximum runtime of 3 seconds" in messages
    assert candles_at(live, "2025-01-05-13:00") == []


def test_invalid_config_is_refused_before_any_run_exists(live):
    runs_before = len(live.client.runs(job="train_job"))
    config = {"ops": {"models": {"config": {"training_days": 5000}}}}
    with pytest.raises(ClientError) as refused:
        live.client.launch_run("train_job", partition="2025-01-05", run_config=config)
    message = str(refused.value)
    assert "training_days" in message and "between 7 and 3650" in message and "5000" in message
    wrong_type = {"ops": {"models": {"config": {"horizons": ["six"]}}}}
    with pytest.raises(ClientError, match="horizons"):
        live.client.launch_run("train_job", partition="2025-01-05", run_config=wrong_type)
    unknown = {"ops": {"models": {"config": {"horizons": [6, 7]}}}}
    with pytest.raises(ClientError, match=r"horizons must be among \[6, 12, 24\]"):
        live.client.launch_run("train_job", partition="2025-01-05", run_config=unknown)
    assert len(live.client.runs(job="train_job")) == runs_before


def test_backfills_of_a_job_and_an_asset_materialise_every_partition(live):
    # both at once: the backfill daemon looks at them every 30 s, so one wait serves both
    # four hours across midnight; each backfill is one run (the assets' single-run policy)
    backfill_id = live.client.launch_backfill("collect_job", "2025-01-07-22:00", "2025-01-08-01:00")
    cli_backfill = live.cli(
        "backfill", "candles", "--from", "2025-01-06-05:00", "--to", "2025-01-06-08:00", "--wait",
        timeout=180,
    )  # fmt: skip
    assert cli_backfill.returncode == 0, cli_backfill.stderr
    assert re.search(r"^status:\s+COMPLETED_SUCCESS$", cli_backfill.stdout, re.MULTILINE)
    deadline = time.monotonic() + 180
    while (status := live.client.backfill_status(backfill_id)) == "REQUESTED":
        assert time.monotonic() < deadline, "backfill still running after 180 s"
        time.sleep(0.5)
    assert status == "COMPLETED_SUCCESS"
    # a backfill's run executes its steps the way the jobs do, in its own process
    with live.instance() as instance:
        backfill_runs = [r for r in live.client.runs(limit=100) if "..." in (r.partition or "")]
        events = {
            record.dagster_event.event_type_value
            for run in backfill_runs
            for record in instance.all_logs(run.run_id)
            if record.dagster_event is not None
        }
    assert len(backfill_runs) == 2 and "STEP_SUCCESS" in events
    assert "STEP_WORKER_STARTING" not in events
    assert len(candles_at(live, "2025-01-06-08:00")) == len(SYMBOLS)
    wanted = {"2025-01-07-22:00", "2025-01-07-23:00", "2025-01-08-00:00", "2025-01-08-01:00"}
    for asset in ("candles", "features"):
        assert wanted <= set(live.client.materialized_partitions(asset))
    rows = run_sql(
        f'SELECT count(*) FROM "{live.schema}".candles'
        " WHERE ts >= '2025-01-07' AND ts < '2025-01-09'"
    )
    assert rows == [(4 * len(SYMBOLS),)]


def test_crashed_run_is_retried_but_a_failed_asset_is_not(live, slow_exchange):
    import os
    import signal

    before = len(slow_exchange.kline_requests())
    run_id = live.client.launch_run("collect_job", partition="2025-01-05-14:00")
    started_fetching(slow_exchange, before)
    with live.instance() as instance:
        pid = next(
            record.dagster_event.pid
            for record in instance.all_logs(run_id)
            if record.dagster_event is not None and record.dagster_event.pid is not None
        )
    os.kill(pid, signal.SIGKILL)
    slow_exchange.delay_seconds = 0.0
    assert live.wait_for_run(run_id, timeout=60).status == "FAILURE"
    retry = _wait_for_retry(live, run_id)
    assert live.wait_for_run(retry).status == "SUCCESS"
    assert len(candles_at(live, "2025-01-05-14:00")) == len(SYMBOLS)

    # an exchange that refuses the symbol is a final asset failure: no retry
    slow_exchange.faults.append(("status", 400, {"code": -1121, "msg": "Invalid symbol."}))
    failed = live.client.launch_run("collect_job", partition="2025-01-05-15:00")
    assert live.wait_for_run(failed).status == "FAILURE"
    time.sleep(5)
    assert not [
        r
        for r in live.client.runs(job="collect_job")
        if r.tags.get("dagster/parent_run_id") == failed
    ]


def _wait_for_retry(live: Deployment, run_id: str, timeout: float = 60) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for run in live.client.runs(job="collect_job"):
            if run.tags.get("dagster/parent_run_id") == run_id:
                return run.run_id
        time.sleep(0.5)
    raise AssertionError(f"no retry of crashed run {run_id} within {timeout}s")


# -- the cryptify CLI --------------------------------------------------------------------------


def test_cli_lists_jobs_with_their_limits(live):
    result = live.cli("jobs", "--json")
    assert result.returncode == 0, result.stderr
    jobs = {job["name"]: job for job in json.loads(result.stdout)}
    assert set(jobs) == {"collect_job", "train_job", "predict_job", "evaluate_job"}
    limits = {name: job["max_runtime_seconds"] for name, job in jobs.items()}
    assert limits == {"collect_job": 1800, "train_job": 3600, "predict_job": 300,
                      "evaluate_job": 600}  # fmt: skip
    assert any("30 0 * * *" in s for s in jobs["train_job"]["schedules"])


def test_cli_runs_watches_and_reads_a_run(live):
    launched = live.cli("run", "collect_job", "--partition", "2025-01-06-03:00", "--wait", "--json")
    assert launched.returncode == 0, launched.stderr
    run = json.loads(launched.stdout)
    assert (run["status"], run["partition"]) == ("SUCCESS", "2025-01-06-03:00")
    status = live.cli("status", run["run_id"])
    assert status.returncode == 0
    assert re.search(r"^status:\s+SUCCESS$", status.stdout, re.MULTILINE)
    listed = json.loads(
        live.cli("runs", "--job", "collect_job", "--status", "SUCCESS", "--json").stdout
    )
    assert run["run_id"] in {r["run_id"] for r in listed}
    assert {r["status"] for r in listed} == {"SUCCESS"}
    logs = live.cli("logs", run["run_id"])
    assert logs.returncode == 0 and "STEP_SUCCESS" not in logs.stdout  # messages, not types
    assert "candles" in logs.stdout and "Finished execution of run" in logs.stdout


def test_cli_cancels_a_run(live, slow_exchange):
    before = len(slow_exchange.kline_requests())
    launched = json.loads(
        live.cli("run", "collect_job", "--partition", "2025-01-06-04:00", "--json").stdout
    )
    started_fetching(slow_exchange, before)
    cancelled = live.cli("cancel", launched["run_id"])
    assert cancelled.returncode == 0, cancelled.stderr
    assert live.wait_for_run(launched["run_id"], timeout=60).status == "CANCELED"
    status = live.cli("status", launched["run_id"])
    assert re.search(r"^status:\s+CANCELED$", status.stdout, re.MULTILINE)
    assert re.search(r"^reason:\s+\S", status.stdout, re.MULTILINE)


def test_cli_lists_and_clears_a_run_whose_process_was_killed(live, slow_exchange):
    # a run of `dagster asset materialize` runs in that command's process: no run worker for
    # the daemon to watch, so once killed it stays STARTED and holds the candles pool's slot
    before = len(slow_exchange.kline_requests())
    command = [str(BIN / "dagster"), "asset", "materialize", "-m", "cryptify_pipeline.definitions",
               "--select", "candles", "--partition", "2025-01-06-05:00"]  # fmt: skip
    process = subprocess.Popen(
        command, env=live.env, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT
    )
    started_fetching(slow_exchange, before)
    [run_id] = [
        run.run_id for run in live.client.runs(statuses=["STARTED"])
        if f'"pid":{process.pid},' in run.tags.get("cryptify/process", "")
    ]  # fmt: skip
    alive = live.cli("stale-runs")
    assert (alive.returncode, alive.stdout.strip()) == (0, "(none)"), alive.stderr
    process.kill()
    process.wait()
    slow_exchange.delay_seconds = 0.0

    listed = live.cli("stale-runs")
    assert listed.returncode == 0, listed.stderr
    [header, _, row] = listed.stdout.splitlines()
    assert header.split()[:4] == ["run", "id", "job", "status"] and "process" in header
    assert row.split()[:3] == [run_id, "__ASSET_JOB", "STARTED"]
    assert f"pid {process.pid} on " in row and row.endswith("(gone)")
    assert live.client.run(run_id).status == "STARTED"  # listing changes nothing
    with live.instance() as instance:
        slots = instance.event_log_storage.get_concurrency_info("candles").claimed_slots
        assert [slot.run_id for slot in slots] == [run_id]

    cleared = live.cli("stale-runs", "--clear", "--json")
    assert cleared.returncode == 0, cleared.stderr
    [view] = json.loads(cleared.stdout)
    assert (view["run_id"], view["status"]) == (run_id, "CANCELED")
    with live.instance() as instance:
        assert instance.event_log_storage.get_concurrency_info("candles").claimed_slots == []
    assert live.cli("stale-runs").stdout.strip() == "(none)"
    # the next candles step gets the slot
    collect = live.client.launch_run("collect_job", partition="2025-01-06-06:00")
    assert live.wait_for_run(collect).status == "SUCCESS"


def test_cli_errors_are_one_line_and_a_non_zero_exit(live, tmp_path):
    bad = tmp_path / "train.yaml"
    bad.write_text("ops:\n  models:\n    config:\n      training_days: 3\n")
    cases = [
        live.cli("run", "train_job", "--partition", "2025-01-05", "--config", str(bad)),
        live.cli("run", "no_such_job"),
        live.cli("status", "00000000-0000-0000-0000-000000000000"),
        live.cli("backfill", "no_such_asset", "--from", "a", "--to", "b"),
    ]
    for result in cases:
        assert result.returncode == 1, result
        assert result.stdout == ""
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert cases[0].stderr.strip() == (
        "cryptify run: train_job: run config refused at root:ops:models:config: "
        "TrainConfig.training_days: Input should be greater than or equal to 7 (got 3); "
        "allowed: between 7 and 3650"
    )
    assert "no job named 'no_such_job'" in cases[1].stderr
    unreachable = live.cli("jobs", "--host", "127.0.0.1", "--port", "9")
    assert unreachable.returncode == 1
    assert "cannot reach the Dagster webserver" in unreachable.stderr


def test_cli_text_output_is_aligned_tables(live):
    finished = live.client.launch_run("collect_job", partition="2025-01-06-06:00")
    live.wait_for_run(finished)
    runs = live.cli("runs", "--job", "collect_job", "--limit", "3")
    assert runs.returncode == 0, runs.stderr
    header, rule, *rows = runs.stdout.splitlines()
    columns = ["run id", "job", "status", "partition", "started", "ended", "time limit (s)"]
    assert [header.index(column) for column in columns] == sorted(
        header.index(column) for column in columns
    )
    assert set(rule) == {"-", " "} and 1 <= len(rows) <= 3
    for row in rows:  # every cell starts where its header does
        run_id, job, status, partition = row.split()[:4]
        assert row.index(run_id) == 0 and row.index(job) == header.index("job")
        assert row.index(status) == header.index("status")
        assert row.index(partition) == header.index("partition")
    assert finished in runs.stdout and "2025-01-06-06:00" in runs.stdout

    jobs = live.cli("jobs")
    header, rule, *rows = jobs.stdout.splitlines()
    assert header.split()[:4] == ["name", "time", "limit", "(s)"]
    limits = {row.split()[0]: row.split()[1] for row in rows if row and not row.startswith(" ")}
    assert limits == {"collect_job": "1800", "train_job": "3600", "predict_job": "300",
                      "evaluate_job": "600"}  # fmt: skip
    assert "description" not in header  # long prose is for --json

    status = live.cli("status", finished).stdout.splitlines()
    labels = [line.split(":")[0] for line in status]
    assert labels == ["run id", "job", "status", "partition", "started", "ended", "time limit (s)"]
    assert len({line.index(line.split(":", 1)[1].strip()) for line in status}) == 1


def test_cli_status_and_logs_of_a_failed_run_show_the_steps_own_error(live, exchange):
    exchange.faults.append(("status", 400, {"code": -1121, "msg": "Invalid symbol."}))
    try:
        failed = live.cli("run", "collect_job", "--partition", "2025-01-06-09:00", "--wait")
    finally:
        exchange.faults.clear()
    assert failed.returncode == 1
    run_id = re.search(r"^run id:\s+(\S+)$", failed.stdout, re.MULTILINE)[1]
    # the exchange is named with its configured URL's scheme, host and port only
    assert re.search(
        r"^reason:\s+candles: binance at http://127\.0\.0\.1:\d+/…: .*Invalid symbol",
        failed.stdout,
        re.MULTILINE,
    )
    status = live.cli("status", run_id)
    assert status.returncode == 0, status.stderr
    reason = re.search(r"^reason:\s+(.*)$", status.stdout, re.MULTILINE)[1]
    shown = exchange.api_url.removesuffix("/api/v3") + "/…"
    assert reason.startswith(f"candles: binance at {shown}: ") and "Invalid symbol" in reason
    assert "Steps failed" not in status.stdout
    as_json = json.loads(live.cli("status", run_id, "--json").stdout)
    assert as_json["reason"] == reason

    logs = live.cli("logs", run_id)
    lines = logs.stdout.splitlines()
    failure = next(
        i for i, line in enumerate(lines) if 'Execution of step "candles" failed' in line
    )
    assert "Invalid symbol" in lines[failure + 1]  # the error, under its event
    assert lines[failure + 1].index("binance") == lines[failure].index("Execution")
    events = json.loads(live.cli("logs", run_id, "--json").stdout)
    step_failure = next(e for e in events if e["event_type"] == "ExecutionStepFailureEvent")
    assert step_failure["error"] == reason.removeprefix("candles: ")


# Days ahead, not hours: the cases are built at collection, and a run that crosses midnight
# (as CI once did) must still find these keys in the future.
FUTURE_HOUR = hour_key(floor_hour(datetime.now(UTC)) + timedelta(days=3))
FUTURE_DAY = day_key(datetime.now(UTC) + timedelta(days=3))


PARTITION_CASES = [
    (["run", "collect_job", "--partition", "2025-01-05"],
     "'2025-01-05' is not a partition key of collect_job, which is partitioned by hour"),
    (["run", "train_job", "--partition", "2025-01-05-10:00"],
     "'2025-01-05-10:00' is not a partition key of train_job, which is partitioned by day"),
    (["run", "collect_job", "--partition", "last tuesday"],
     "'last tuesday' is not a partition key of collect_job"),
    (["run", "collect_job", "--partition", "2025-01-05-10:30"],
     "'2025-01-05-10:30' is not a partition key of collect_job"),
    (["run", "collect_job", "--partition", FUTURE_HOUR],
     f"{FUTURE_HOUR} is in the future: the newest partition of collect_job is "),
    (["run", "train_job", "--partition", FUTURE_DAY],
     "is in the future: the newest partition of train_job is "),
    (["run", "collect_job", "--partition", "2024-12-31-23:00"],
     "2024-12-31-23:00 is before the first partition of collect_job, 2025-01-01-00:00"),
    (["run", "collect_job"], "give a partition key: collect_job is partitioned by hour, from "
     "2025-01-01-00:00 to "),
    (["backfill", "collect_job", "--from", "2025-01-06-00:00", "--to", "2025-01-05-00:00"],
     "the range is reversed: 2025-01-06-00:00 is after 2025-01-05-00:00"),
    (["backfill", "train_job", "--from", "2025-01-05-00:00", "--to", "2025-01-06-00:00"],
     "'2025-01-05-00:00' is not a partition key of train_job, which is partitioned by day"),
    (["backfill", "candles", "--from", "2025-01-05-00:00", "--to", FUTURE_HOUR],
     "is in the future: the newest partition of candles is "),
    (["backfill", "collect_job", "train_job", "--from", "2025-01-05", "--to", "2025-01-06"],
     "'2025-01-05' is not a partition key of collect_job, which is partitioned by hour"),
]  # fmt: skip


def backfill_ids(live: Deployment) -> set[str]:
    data = live.client.query(
        "{ partitionBackfillsOrError { ... on PartitionBackfills { results { id } } } }"
    )
    return {backfill["id"] for backfill in data["partitionBackfillsOrError"]["results"]}


def test_cli_refuses_wrong_partition_keys_and_ranges_before_anything_is_launched(live, capsys):
    runs_before = {run.run_id for run in live.client.runs(limit=1000)}
    backfills_before = backfill_ids(live)
    for args, problem in PARTITION_CASES:
        status = main([*args, "--port", str(live.port)])
        captured = capsys.readouterr()
        assert (status, captured.out) == (1, ""), args
        assert len(captured.err.splitlines()) == 1, captured.err
        assert captured.err.startswith(f"cryptify {args[0]}: "), captured.err
        assert problem in captured.err, (args, captured.err)
    assert {run.run_id for run in live.client.runs(limit=1000)} == runs_before
    assert backfill_ids(live) == backfills_before
    # the console script says the same
    script = live.cli("run", "collect_job", "--partition", "2025-01-05")
    assert (script.returncode, script.stdout) == (1, "")
    assert script.stderr.startswith("cryptify run: '2025-01-05' is not a partition key")


def set_sensor(live: Deployment, name: str, running: bool) -> None:
    """Start or stop a sensor of the deployment's code location."""
    if running:
        live.client.start_sensor(name)
        return
    location, repository = live.client.repository()
    selector = {"repositoryLocationName": location, "repositoryName": repository,
                "sensorName": name}  # fmt: skip
    sensor = live.client.query(
        "query($s: SensorSelector!) { sensorOrError(sensorSelector: $s) { ... on Sensor { id } } }",
        {"s": selector},
    )["sensorOrError"]
    live.client.query("mutation($id: String) { stopSensor(id: $id) { __typename } }",
                      {"id": sensor["id"]})  # fmt: skip


def forecast_repairs(live: Deployment) -> list:
    runs = live.client.runs(limit=50)
    return [run for run in runs if run.tags.get("cryptify/trigger") == "forecast_repair"]


def test_daemon_repairs_a_missed_forecast_with_predict_jobs_queue_and_time_limit(live):
    # an hour two days ago has features and its previous day's models, but no forecasts
    hour = floor_hour(datetime.now(UTC)).replace(hour=5) - timedelta(days=2)
    with live.instance() as instance:
        for asset, partition in [("features", hour_key(hour)),
                                 ("models", day_key(hour - timedelta(days=1)))]:  # fmt: skip
            instance.report_runless_asset_event(AssetMaterialization(asset, partition=partition))
    set_sensor(live, "forecast_repair", running=True)
    try:
        deadline = time.monotonic() + 90
        while not (repairs := forecast_repairs(live)):
            assert time.monotonic() < deadline, "the daemon launched no forecast repair"
            time.sleep(1)
    finally:
        set_sensor(live, "forecast_repair", running=False)
    [repair] = repairs
    assert repair.partition == hour_key(hour)
    assert repair.tags["cryptify/job"] == "predict_job"  # its queue
    assert repair.tags["dagster/max_runtime"] == "300"  # its time limit
    # it ends (failing: the features were only recorded, no rows stored) before the next test
    live.wait_for_run(repair.run_id)
