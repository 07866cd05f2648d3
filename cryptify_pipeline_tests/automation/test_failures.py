"""Failed runs are recorded in the run_failures table and posted to the webhook."""

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from dagster import DagsterEventType, DagsterInstance, build_run_status_sensor_context

from cryptify_pipeline.resources import FailureAlerts
from cryptify_pipeline_tests.support import pipeline
from cryptify_pipeline_tests.support.database import run_sql


def run_event(instance: DagsterInstance, run_id: str, event_type: DagsterEventType):
    records = instance.get_records_for_run(run_id, of_type=event_type).records
    return records[-1].event_log_entry.dagster_event


class Webhook:
    """A local HTTP endpoint that keeps every JSON body posted to it."""

    def __init__(self) -> None:
        self.bodies: list[dict] = []
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def do_POST(self) -> None:
                length = int(self.headers["Content-Length"])
                hook.bodies.append(json.loads(self.rfile.read(length)))
                self.send_response(200)
                self.end_headers()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_port}/hook"


@pytest.fixture
def webhook():
    hook = Webhook()
    yield hook
    hook.server.shutdown()


def test_failed_run_is_recorded_and_alerted(instance, schema, webhook):
    defs = pipeline.definitions(schema)
    result = defs.resolve_job_def("predict_job").execute_in_process(
        instance=instance, partition_key="2025-03-03-05:00", raise_on_error=False
    )
    assert not result.success  # no features, no models
    failure = run_event(instance, result.run_id, DagsterEventType.RUN_FAILURE)
    context = build_run_status_sensor_context(
        sensor_name="record_run_failures",
        dagster_instance=instance,
        dagster_run=instance.get_run_by_id(result.run_id),
        dagster_event=failure,
    ).for_run_failure()
    sensor = defs.get_sensor_def("record_run_failures")
    sensor(context, database=pipeline.database(schema), alerts=FailureAlerts(
        webhook_url=webhook.url
    ))  # fmt: skip
    [row] = run_sql(
        f'SELECT run_id, job_name, partitions, failed_steps, message FROM "{schema}".run_failures'
    )
    assert row[:4] == (result.run_id, "predict_job", "2025-03-03-05:00", "predictions")
    assert row[4]  # the step's error, not an empty string
    [body] = webhook.bodies
    assert body["run_id"] == result.run_id and body["job_name"] == "predict_job"
    assert body["text"].startswith("cryptify: predict_job [2025-03-03-05:00] failed: ")

    # recording the same run again replaces its row; no webhook configured, nothing is posted
    sensor(context, database=pipeline.database(schema), alerts=FailureAlerts())
    assert run_sql(f'SELECT count(*) FROM "{schema}".run_failures') == [(1,)]
    assert len(webhook.bodies) == 1
