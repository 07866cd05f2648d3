"""A writer killed with SIGKILL in the middle of its COPY leaves the partition as it was."""

import os
import signal
import subprocess
import sys
import textwrap
import time

from cryptify_pipeline_tests.support.database import run_sql, subprocess_env

WRITER = textwrap.dedent(
    """
    import sys
    import pandas as pd
    from dagster import DagsterInstance, HourlyPartitionsDefinition, asset, materialize
    from cryptify_pipeline_tests.support.pipeline import io_manager_on

    schema, rows = sys.argv[1], int(sys.argv[2])

    @asset(
        partitions_def=HourlyPartitionsDefinition(start_date="2026-01-01-00:00"),
        metadata={"partition_expr": "ts"},
    )
    def ticks(context) -> pd.DataFrame:
        start = pd.Timestamp(context.partition_time_window.start).tz_convert("UTC")
        offsets = pd.to_timedelta(range(rows), unit="us")
        return pd.DataFrame({"ts": (start + offsets).as_unit("us"), "price": float(rows)})

    materialize(
        [ticks],
        partition_key="2026-01-01-05:00",
        instance=DagsterInstance.ephemeral(),
        resources={"io_manager": io_manager_on(schema)},
    )
    """
)


def start_writer(schema: str, rows: int) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", WRITER, schema, str(rows)],
        env=subprocess_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def copy_backends(schema: str) -> list[tuple]:
    return run_sql(
        "SELECT pid FROM pg_stat_activity WHERE application_name = 'cryptify'"
        " AND query ILIKE 'COPY%%' AND position(%s in query) > 0",
        (schema,),
    )


def test_sigkill_mid_copy_keeps_previous_rows(schema):
    first = start_writer(schema, 3)
    assert first.wait(120) == 0, first.stderr.read().decode()
    before = run_sql(f'SELECT ts, price FROM "{schema}".ticks ORDER BY ts')
    assert len(before) == 3

    writer = start_writer(schema, 3_000_000)
    deadline = time.monotonic() + 120
    while not copy_backends(schema):
        assert writer.poll() is None, "writer ended before its COPY was seen"
        assert time.monotonic() < deadline, "no COPY seen within 120 s"
        time.sleep(0.05)
    os.kill(writer.pid, signal.SIGKILL)
    assert writer.wait(30) == -signal.SIGKILL

    deadline = time.monotonic() + 60
    while copy_backends(schema):  # the server notices the dead client and rolls back
        assert time.monotonic() < deadline, "the killed writer's backend lingered"
        time.sleep(0.1)
    assert run_sql(f'SELECT ts, price FROM "{schema}".ticks ORDER BY ts') == before

    # no lock or half-written state left behind: the partition can be rewritten
    again = start_writer(schema, 4)
    assert again.wait(120) == 0, again.stderr.read().decode()
    assert run_sql(f'SELECT count(*), max(price) FROM "{schema}".ticks') == [(4, 4.0)]
