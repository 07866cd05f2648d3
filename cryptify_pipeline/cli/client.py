"""A small client for the Dagster webserver: ``DagsterGraphQLClient`` where it has the method,
raw GraphQL where it does not (listing jobs and runs, logs, backfills, materialisations)."""

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import requests
from dagster_graphql import DagsterGraphQLClient, DagsterGraphQLClientError

from cryptify_pipeline.automation.run_tags import (
    MAX_RUNTIME_SECONDS_TAG,
    PARTITION_NAME_TAG,
    TRIGGER_TAG,
    describe_partitions,
)

DEFAULT_HOST = "localhost"
DEFAULT_PORT = 3000
FINISHED = frozenset({"SUCCESS", "FAILURE", "CANCELED"})


class ClientError(Exception):
    """The webserver refused a request or could not be reached; the message says why."""


@dataclass(frozen=True)
class Run:
    run_id: str
    job_name: str
    status: str
    partition: str | None
    tags: Mapping[str, str]
    start_time: float | None
    end_time: float | None

    @property
    def finished(self) -> bool:
        return self.status in FINISHED


@dataclass(frozen=True)
class LogEvent:
    timestamp: float
    level: str
    event_type: str
    step_key: str | None
    message: str


_RUN_FIELDS = "runId jobName status startTime endTime tags { key value }"
_ERRORS = "... on PythonError { message } ... on RunNotFoundError { message }"


class CryptifyClient:
    """Operations on a running Dagster webserver (``dagster dev`` or ``dagster-webserver``)."""

    def __init__(self, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT, timeout: float = 60):
        self.url = f"http://{host}:{port}/graphql"
        self.timeout = timeout
        self.dagster = DagsterGraphQLClient(host, port_number=port, timeout=int(timeout))
        self._repository: tuple[str, str] | None = None

    def query(self, document: str, variables: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Run one GraphQL document; errors become a ``ClientError``."""
        try:
            response = requests.post(
                self.url, json={"query": document, "variables": variables or {}},
                timeout=self.timeout,
            )  # fmt: skip
        except requests.ConnectionError:
            raise ClientError(
                f"cannot reach the Dagster webserver at {self.url}: is it running "
                "(make dev, or dagster-webserver), and are --host/--port right?"
            ) from None
        if response.status_code != 200 and "application/json" not in response.headers.get(
            "content-type", ""
        ):
            raise ClientError(f"{self.url} answered HTTP {response.status_code}")
        body = response.json()
        if body.get("errors"):
            raise ClientError("; ".join(error["message"] for error in body["errors"]))
        return body["data"]

    # -- what can run ---------------------------------------------------------------------

    def repository(self) -> tuple[str, str]:
        """(location name, repository name) of the code location; the project has one."""
        if self._repository is None:
            data = self.query(
                "{ repositoriesOrError { __typename ... on RepositoryConnection"
                " { nodes { name location { name } } } ... on PythonError { message } } }"
            )["repositoriesOrError"]
            nodes = data.get("nodes") or []
            if not nodes:
                raise ClientError(f"no code location loaded: {data.get('message', 'none found')}")
            self._repository = (nodes[0]["location"]["name"], nodes[0]["name"])
        return self._repository

    def jobs(self) -> list[dict[str, Any]]:
        """The launchable jobs with their description, tags and schedules."""
        location, repository = self.repository()
        data = self.query(
            """query Jobs($selector: RepositorySelector!) {
              repositoryOrError(repositorySelector: $selector) {
                __typename
                ... on Repository {
                  jobs { name description tags { key value } }
                  schedules { name cronSchedule pipelineName scheduleState { status } }
                  sensors { name targets { pipelineName } sensorState { status } }
                }
                ... on PythonError { message }
                ... on RepositoryNotFoundError { message }
              }
            }""",
            {"selector": {"repositoryLocationName": location, "repositoryName": repository}},
        )["repositoryOrError"]
        if data["__typename"] != "Repository":
            raise ClientError(data.get("message", data["__typename"]))
        jobs = []
        for job in data["jobs"]:
            if job["name"].startswith("__"):  # Dagster's implicit asset jobs
                continue
            tags = {tag["key"]: tag["value"] for tag in job["tags"]}
            jobs.append(
                {
                    "name": job["name"],
                    "description": job["description"] or "",
                    "max_runtime_seconds": int(tags[MAX_RUNTIME_SECONDS_TAG])
                    if MAX_RUNTIME_SECONDS_TAG in tags
                    else None,
                    "schedules": [
                        f"{s['name']} ({s['cronSchedule']} UTC, {s['scheduleState']['status']})"
                        for s in data["schedules"]
                        if s["pipelineName"] == job["name"]
                    ],
                    "sensors": [
                        f"{s['name']} ({s['sensorState']['status']})"
                        for s in data["sensors"]
                        if any(t["pipelineName"] == job["name"] for t in s["targets"] or [])
                    ],
                }
            )
        return jobs

    # -- launching ------------------------------------------------------------------------

    def launch_run(
        self,
        job: str,
        partition: str | None = None,
        run_config: Mapping[str, Any] | None = None,
        timeout_seconds: int | None = None,
        tags: Mapping[str, str] | None = None,
    ) -> str:
        """Queue a run of ``job``; returns its run id. Invalid config is refused here."""
        run_tags = dict(tags or {})
        if partition is not None:
            run_tags[PARTITION_NAME_TAG] = partition
        if timeout_seconds is not None:
            run_tags[MAX_RUNTIME_SECONDS_TAG] = str(timeout_seconds)
        location, repository = self.repository()
        try:
            return self.dagster.submit_job_execution(
                job,
                repository_location_name=location,
                repository_name=repository,
                run_config=dict(run_config or {}),
                tags=run_tags,
            )
        except DagsterGraphQLClientError as error:
            raise ClientError(_launch_error(job, error)) from None

    def launch_backfill(self, targets: str | Sequence[str], first: str, last: str) -> str:
        """Backfill partitions ``first``..``last`` of assets, or of every asset of jobs; returns
        the backfill id. Assets with a single-run policy get one run for the whole range."""
        names = [targets] if isinstance(targets, str) else list(targets)
        jobs = {job["name"] for job in self.jobs()}
        nodes = [node for name in names for node in self._asset_nodes(name, jobs)]
        target = " ".join(names)
        partitions_by_assets = [
            {
                "assetKey": {"path": node["assetKey"]["path"]},
                "partitions": {"range": {"start": first, "end": last}}
                if node["isPartitioned"]
                else None,
            }
            for node in nodes
        ]
        data = self.query(
            """mutation Backfill($params: LaunchBackfillParams!) {
              launchPartitionBackfill(backfillParams: $params) {
                __typename
                ... on LaunchBackfillSuccess { backfillId }
                ... on PartitionKeysNotFoundError { message }
                ... on InvalidSubsetError { message }
                ... on PythonError { message }
                ... on UnauthorizedError { message }
              }
            }""",
            {
                "params": {
                    "partitionsByAssets": partitions_by_assets,
                    "title": f"{target} {first}...{last}",
                    "tags": [{"key": TRIGGER_TAG, "value": "cli"}],
                }
            },
        )["launchPartitionBackfill"]
        if data["__typename"] != "LaunchBackfillSuccess":
            raise ClientError(f"backfill of {target} refused: {data.get('message', data)}")
        return data["backfillId"]

    def backfill_status(self, backfill_id: str) -> str:
        data = self.query(
            """query B($id: String!) { partitionBackfillOrError(backfillId: $id) {
                 __typename ... on PartitionBackfill { status }
                 ... on BackfillNotFoundError { message } ... on PythonError { message } } }""",
            {"id": backfill_id},
        )["partitionBackfillOrError"]
        if data["__typename"] != "PartitionBackfill":
            raise ClientError(data.get("message", data["__typename"]))
        return data["status"]

    def _asset_nodes(self, target: str, jobs: set[str]) -> list[dict[str, Any]]:
        location, repository = self.repository()
        fields = "assetKey { path } isPartitioned"
        if target in jobs:
            return self.query(
                f"""query Nodes($job: PipelineSelector!) {{
                  assetNodes(pipeline: $job) {{ {fields} }} }}""",
                {
                    "job": {
                        "repositoryLocationName": location,
                        "repositoryName": repository,
                        "pipelineName": target,
                    }
                },
            )["assetNodes"]
        nodes = self.query(
            f"""query Nodes($keys: [AssetKeyInput!]) {{
              assetNodes(assetKeys: $keys) {{ {fields} }} }}""",
            {"keys": [{"path": target.split("/")}]},
        )["assetNodes"]
        if not nodes:
            raise ClientError(
                f"{target!r} is neither a job ({', '.join(sorted(jobs))}) nor an asset"
            )
        return nodes

    def start_sensor(self, name: str) -> str:
        """Start a sensor (e.g. one that is stopped by default); returns its new status."""
        location, repository = self.repository()
        data = self.query(
            """mutation Start($selector: SensorSelector!) { startSensor(sensorSelector: $selector) {
                 __typename ... on Sensor { sensorState { status } }
                 ... on SensorNotFoundError { message } ... on PythonError { message }
                 ... on UnauthorizedError { message } } }""",
            {
                "selector": {
                    "repositoryLocationName": location,
                    "repositoryName": repository,
                    "sensorName": name,
                }
            },
        )["startSensor"]
        if data["__typename"] != "Sensor":
            raise ClientError(f"cannot start sensor {name}: {data.get('message', data)}")
        return data["sensorState"]["status"]

    # -- watching and stopping ------------------------------------------------------------

    def run(self, run_id: str) -> Run:
        data = self.query(
            f"""query R($id: ID!) {{ runOrError(runId: $id) {{
                 __typename ... on Run {{ {_RUN_FIELDS} }} {_ERRORS} }} }}""",
            {"id": run_id},
        )["runOrError"]
        if data["__typename"] != "Run":
            raise ClientError(data.get("message", f"run {run_id} not found"))
        return _run(data)

    def runs(
        self, job: str | None = None, statuses: Sequence[str] = (), limit: int = 20
    ) -> list[Run]:
        run_filter: dict[str, Any] = {}
        if job:
            run_filter["pipelineName"] = job
        if statuses:
            run_filter["statuses"] = [status.upper() for status in statuses]
        data = self.query(
            f"""query Runs($filter: RunsFilter, $limit: Int) {{
                 runsOrError(filter: $filter, limit: $limit) {{
                   __typename ... on Runs {{ results {{ {_RUN_FIELDS} }} }}
                   ... on InvalidPipelineRunsFilterError {{ message }}
                   ... on PythonError {{ message }} }} }}""",
            {"filter": run_filter, "limit": limit},
        )["runsOrError"]
        if data["__typename"] != "Runs":
            raise ClientError(data.get("message", data["__typename"]))
        return [_run(run) for run in data["results"]]

    def cancel(self, run_id: str) -> None:
        """Terminate a run (a queued run is simply dequeued)."""
        try:
            self.dagster.terminate_run(run_id)
        except DagsterGraphQLClientError as error:
            raise ClientError(f"cannot cancel {run_id}: {error.body or error}") from None

    def logs(self, run_id: str) -> list[LogEvent]:
        events: list[LogEvent] = []
        cursor = None
        while True:
            data = self.query(
                """query Logs($id: ID!, $cursor: String) {
                  logsForRun(runId: $id, afterCursor: $cursor, limit: 1000) {
                    __typename
                    ... on EventConnection {
                      cursor hasMore
                      events { __typename
                        ... on MessageEvent { timestamp level stepKey message } }
                    }
                    ... on RunNotFoundError { message }
                    ... on PythonError { message }
                  }
                }""",
                {"id": run_id, "cursor": cursor},
            )["logsForRun"]
            if data["__typename"] != "EventConnection":
                raise ClientError(data.get("message", f"run {run_id} not found"))
            events += [
                LogEvent(
                    timestamp=float(event["timestamp"]) / 1000,
                    level=event["level"],
                    event_type=event["__typename"],
                    step_key=event.get("stepKey"),
                    message=event["message"],
                )
                for event in data["events"]
                if "message" in event
            ]
            if not data["hasMore"]:
                return events
            cursor = data["cursor"]

    def materialized_partitions(self, asset: str, limit: int = 10_000) -> list[str]:
        """Partition keys of ``asset``'s latest materialisations, newest first."""
        data = self.query(
            """query M($key: AssetKeyInput!, $limit: Int) { assetOrError(assetKey: $key) {
                 __typename ... on Asset { assetMaterializations(limit: $limit) { partition } }
                 ... on AssetNotFoundError { message } } }""",
            {"key": {"path": asset.split("/")}, "limit": limit},
        )["assetOrError"]
        if data["__typename"] != "Asset":
            raise ClientError(data.get("message", f"asset {asset} not found"))
        return [m["partition"] for m in data["assetMaterializations"] if m["partition"]]


def _run(data: Mapping[str, Any]) -> Run:
    tags = {tag["key"]: tag["value"] for tag in data["tags"]}
    return Run(
        run_id=data["runId"],
        job_name=data["jobName"],
        status=data["status"],
        partition=describe_partitions(tags),
        tags=tags,
        start_time=data.get("startTime"),
        end_time=data.get("endTime"),
    )


# How Dagster reports a config that failed a ConstrainedShape (run_config.py): the problems sit
# between the exception's name and its stack trace.
_POST_PROCESSING = re.compile(
    r"Post processing at path (?P<path>\S+) of original value .*? failed:\n"
    r"\S*PostProcessingError: (?P<problems>.*?)\n\n",
    re.DOTALL,
)


def _launch_error(job: str, error: DagsterGraphQLClientError) -> str:
    kind = error.args[0] if error.args else ""
    body = error.body if error.body is not None else (error.args[1] if len(error.args) > 1 else "")
    if kind in {"RunConfigValidationInvalid", "PipelineConfigValidationInvalid"} and body:
        messages = [item.get("message", str(item)) for item in body]
        return f"{job}: run config refused: " + " | ".join(m.strip() for m in messages)
    if kind == "JobNotFoundError" or "NotFound" in str(kind):
        return f"no job named {job!r}; `cryptify jobs` lists them"
    text = body if isinstance(body, str) else str(body)
    if refused := _POST_PROCESSING.search(text):
        problems = "; ".join(refused["problems"].strip().splitlines())
        return f"{job}: run config refused at {refused['path']}: {problems}"
    return f"{job}: launch refused ({kind}): {text.strip()}"
