"""A small client for the Dagster webserver's GraphQL API: launching, watching and stopping
runs and backfills, and what it knows of jobs, assets and their partitions.

Every request goes through ``query``, with a short connect timeout and a bounded read timeout,
so that an unreachable host, a server that never answers, an HTML page or an answer without
data is one ``ClientError`` saying so, never a traceback or a minute's wait.
"""

import ipaddress
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import requests

from cryptify_pipeline.cli.partition_keys import (
    PartitionKeyError,
    TimePartitions,
    check_key,
    check_range,
)
from cryptify_pipeline.cli.step_errors import graphql_chain, own_error
from cryptify_pipeline.run_tags import (
    MAX_RUNTIME_SECONDS_TAG,
    PARTITION_NAME_TAG,
    TRIGGER_TAG,
    describe_partitions,
    run_partition_range,
)

DEFAULT_HOST = "localhost"
DEFAULT_PORT = 3000
# a webserver answers in well under a second; a dead host should not hold a terminal long
CONNECT_TIMEOUT_SECONDS = 3.0
REQUEST_TIMEOUT_SECONDS = 20.0
FINISHED = frozenset({"SUCCESS", "FAILURE", "CANCELED"})
# Dagster refuses a backfill whose title is longer
BACKFILL_TITLE_LIMIT = 100
# letters, digits, dots, hyphens (and underscores, as in docker compose service names)
_HOST_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,252}$")


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
    error: str | None = None  # the event's own error (a failed step's), as people read it


_RUN_FIELDS = "runId jobName status startTime endTime tags { key value }"
_ERRORS = "... on PythonError { message } ... on RunNotFoundError { message }"
_ERROR_CHAIN = "className message cause { className message cause { className message } }"
# what an asset node says about its partitions: the key format, the first two and newest keys
_PARTITION_FIELDS = """assetKey { path } isPartitioned partitionDefinition { type fmt }
  first: partitionKeyConnection(limit: 2, ascending: true) { results }
  newest: partitionKeyConnection(limit: 1, ascending: false) { results }"""


class CryptifyClient:
    """Operations on a running Dagster webserver (``dagster dev`` or ``dagster-webserver``)."""

    def __init__(
        self,
        host: str = DEFAULT_HOST,
        port: int = DEFAULT_PORT,
        timeout: float = REQUEST_TIMEOUT_SECONDS,
        connect_timeout: float = CONNECT_TIMEOUT_SECONDS,
    ):
        self.url = f"http://{_url_host(host)}:{_port(port)}/graphql"
        self.timeout = timeout
        self._timeouts = (connect_timeout, timeout)
        self._session = requests.Session()
        self._repository: tuple[str, str] | None = None
        self._job_names: frozenset[str] | None = None

    def query(self, document: str, variables: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Run one GraphQL document and return its ``data``; every failure is a ``ClientError``."""
        try:
            response = self._session.post(
                self.url, json={"query": document, "variables": variables or {}},
                timeout=self._timeouts,
            )  # fmt: skip
        except requests.ConnectTimeout:
            raise ClientError(
                f"cannot reach the Dagster webserver at {self.url}: no connection within "
                f"{self._timeouts[0]:g} s (are --host/--port right?)"
            ) from None
        except requests.ConnectionError:
            raise ClientError(
                f"cannot reach the Dagster webserver at {self.url}: is it running "
                "(make dev, or dagster-webserver), and are --host/--port right?"
            ) from None
        except requests.Timeout:
            raise ClientError(
                f"{self.url} did not answer within {self.timeout:g} s: is it the Dagster "
                "webserver? (a busy one may need a longer --request-timeout)"
            ) from None
        except requests.RequestException as error:
            raise ClientError(f"cannot send a request to {self.url}: {error}") from None
        return self._data(response)

    def _data(self, response: requests.Response) -> dict[str, Any]:
        status = response.status_code
        try:
            body = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            kind = response.headers.get("content-type", "no content type").split(";")[0]
            raise ClientError(
                f"{self.url} answered HTTP {status} with {kind}, not GraphQL JSON: is it the "
                "Dagster webserver (check --host/--port)?"
            )
        if errors := body.get("errors"):
            messages = [e.get("message", str(e)) if isinstance(e, dict) else str(e) for e in errors]
            raise ClientError("; ".join(messages) if isinstance(errors, list) else str(errors))
        data = body.get("data")
        if not isinstance(data, dict):
            raise ClientError(
                f"{self.url} answered HTTP {status} without data: is it the Dagster webserver?"
            )
        return data

    def _field(self, document: str, variables: Mapping[str, Any] | None, field: str) -> Any:
        """``query``'s ``data[field]``, which must be there."""
        value = self.query(document, variables).get(field)
        if not isinstance(value, dict | list):
            raise ClientError(f"{self.url} answered without {field}: is it the Dagster webserver?")
        return value

    def _result(
        self, document: str, variables: Mapping[str, Any] | None, field: str, expected: str
    ) -> dict[str, Any]:
        """``data[field]``, which must be of GraphQL type ``expected``; else its message."""
        value = self._field(document, variables, field)
        if not isinstance(value, dict):
            raise ClientError(f"{self.url} answered {field} with {value!r}")
        if value.get("__typename") != expected:
            raise ClientError(value.get("message") or f"{field}: {value.get('__typename')}")
        return value

    # -- what can run ---------------------------------------------------------------------

    def repository(self) -> tuple[str, str]:
        """(location name, repository name) of the code location; the project has one."""
        if self._repository is None:
            data = self._field(
                "{ repositoriesOrError { __typename ... on RepositoryConnection"
                " { nodes { name location { name } pipelines { name } } }"
                " ... on PythonError { message } } }",
                None,
                "repositoriesOrError",
            )
            nodes = data.get("nodes") or []
            if not nodes:
                raise ClientError(f"no code location loaded: {data.get('message', 'none found')}")
            self._repository = (nodes[0]["location"]["name"], nodes[0]["name"])
            self._job_names = frozenset(
                job["name"] for job in nodes[0]["pipelines"] if not job["name"].startswith("__")
            )
        return self._repository

    def job_names(self) -> frozenset[str]:
        """The launchable jobs (not Dagster's implicit asset jobs)."""
        self.repository()
        assert self._job_names is not None
        return self._job_names

    def jobs(self) -> list[dict[str, Any]]:
        """The launchable jobs with their description, tags and schedules."""
        data = self._result(
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
            {"selector": self._repository_selector()},
            "repositoryOrError",
            "Repository",
        )
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
        """Queue a run of ``job``; returns its run id. A partition key that ``job`` does not
        have, or a missing one, and invalid config are refused here: no run is created."""
        run_tags = dict(tags or {})
        if partition is not None:
            run_tags[PARTITION_NAME_TAG] = partition
        if timeout_seconds is not None:
            run_tags[MAX_RUNTIME_SECONDS_TAG] = str(timeout_seconds)
        self._check_run_partitions(job, run_tags)
        data = self._field(
            """mutation Launch($params: ExecutionParams!) {
              launchRun(executionParams: $params) {
                __typename
                ... on LaunchRunSuccess { run { runId } }
                ... on RunConfigValidationInvalid { errors { message } }
                ... on InvalidStepError { invalidStepKey }
                ... on InvalidOutputError { stepKey invalidOutputName }
                ... on Error { message }
              }
            }""",
            {
                "params": {
                    "selector": {**self._repository_selector(), "jobName": job},
                    "runConfigData": dict(run_config or {}),
                    "executionMetadata": {
                        "tags": [{"key": key, "value": value} for key, value in run_tags.items()]
                    },
                }
            },
            "launchRun",
        )
        if data.get("__typename") == "LaunchRunSuccess":
            return data["run"]["runId"]
        raise ClientError(_launch_error(job, data))

    def _check_run_partitions(self, job: str, tags: Mapping[str, str]) -> None:
        if job not in self.job_names():
            raise ClientError(f"no job named {job!r}; `cryptify jobs` lists them")
        nodes = self._asset_nodes(job)
        # partitions not by time (static, dynamic) are left for Dagster to check
        partitions = _time_partitions(job, nodes)
        partitioned = any(node["isPartitioned"] for node in nodes)
        covered = run_partition_range(tags)
        if covered is None and partitioned:
            about = partitions[0].describe() if partitions else f"{job} is partitioned"
            raise ClientError(f"give a partition key: {about}")
        if covered is not None and not partitioned:
            raise ClientError(f"{job} is not partitioned: run it without a partition key")
        if covered is None:
            return
        try:
            first, last = covered
            if first == last:
                check_key(partitions, first)
            else:
                check_range(partitions, first, last)
        except PartitionKeyError as error:
            raise ClientError(str(error)) from None

    def launch_backfill(self, targets: str | Sequence[str], first: str, last: str) -> str:
        """Backfill partitions ``first``..``last`` of assets, or of every asset of jobs; returns
        the backfill id. Assets with a single-run policy get one run for the whole range.
        Keys that a target does not have and a reversed range are refused here."""
        names = [targets] if isinstance(targets, str) else list(targets)
        nodes = []
        for name in names:
            target_nodes = self._asset_nodes(name)
            if not any(node["isPartitioned"] for node in target_nodes):
                raise ClientError(f"{name} is not partitioned: there is no range to backfill")
            # partitions not by time (static, dynamic) are left for Dagster to check
            partitions = _time_partitions(name, target_nodes)
            try:
                check_range(partitions, first, last)
            except PartitionKeyError as error:
                raise ClientError(str(error)) from None
            nodes += target_nodes
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
        data = self._field(
            """mutation Backfill($params: LaunchBackfillParams!) {
              launchPartitionBackfill(backfillParams: $params) {
                __typename
                ... on LaunchBackfillSuccess { backfillId }
                ... on Error { message }
              }
            }""",
            {
                "params": {
                    "partitionsByAssets": partitions_by_assets,
                    "title": backfill_title(names, first, last),
                    "tags": [{"key": TRIGGER_TAG, "value": "cli"}],
                }
            },
            "launchPartitionBackfill",
        )
        if data.get("__typename") != "LaunchBackfillSuccess":
            raise ClientError(f"backfill of {target} refused: {data.get('message', data)}")
        return data["backfillId"]

    def backfill_status(self, backfill_id: str) -> str:
        data = self._result(
            """query B($id: String!) { partitionBackfillOrError(backfillId: $id) {
                 __typename ... on PartitionBackfill { status }
                 ... on BackfillNotFoundError { message } ... on PythonError { message } } }""",
            {"id": backfill_id},
            "partitionBackfillOrError",
            "PartitionBackfill",
        )
        return data["status"]

    def _asset_nodes(self, target: str) -> list[dict[str, Any]]:
        """The asset nodes of a job, or the node of an asset, with their partitions."""
        jobs = self.job_names()
        if target in jobs:
            return self._field(
                f"""query Nodes($job: PipelineSelector!) {{
                  assetNodes(pipeline: $job) {{ {_PARTITION_FIELDS} }} }}""",
                {"job": {**self._repository_selector(), "pipelineName": target}},
                "assetNodes",
            )
        nodes = self._field(
            f"""query Nodes($keys: [AssetKeyInput!]) {{
              assetNodes(assetKeys: $keys) {{ {_PARTITION_FIELDS} }} }}""",
            {"keys": [{"path": target.split("/")}]},
            "assetNodes",
        )
        if not nodes:
            raise ClientError(
                f"{target!r} is neither a job ({', '.join(sorted(jobs))}) nor an asset"
            )
        return nodes

    def _repository_selector(self) -> dict[str, str]:
        location, repository = self.repository()
        return {"repositoryLocationName": location, "repositoryName": repository}

    def start_sensor(self, name: str) -> str:
        """Start a sensor (e.g. one that is stopped by default); returns its new status."""
        data = self._field(
            """mutation Start($selector: SensorSelector!) { startSensor(sensorSelector: $selector) {
                 __typename ... on Sensor { sensorState { status } }
                 ... on SensorNotFoundError { message } ... on PythonError { message }
                 ... on UnauthorizedError { message } } }""",
            {"selector": {**self._repository_selector(), "sensorName": name}},
            "startSensor",
        )
        if data.get("__typename") != "Sensor":
            raise ClientError(f"cannot start sensor {name}: {data.get('message', data)}")
        return data["sensorState"]["status"]

    # -- watching and stopping ------------------------------------------------------------

    def run(self, run_id: str) -> Run:
        data = self._field(
            f"""query R($id: ID!) {{ runOrError(runId: $id) {{
                 __typename ... on Run {{ {_RUN_FIELDS} }} {_ERRORS} }} }}""",
            {"id": run_id},
            "runOrError",
        )
        if data.get("__typename") != "Run":
            raise ClientError(data.get("message") or f"run {run_id} not found")
        return _run(data)

    def runs(
        self, job: str | None = None, statuses: Sequence[str] = (), limit: int = 20
    ) -> list[Run]:
        run_filter: dict[str, Any] = {}
        if job:
            run_filter["pipelineName"] = job
        if statuses:
            run_filter["statuses"] = [status.upper() for status in statuses]
        data = self._result(
            f"""query Runs($filter: RunsFilter, $limit: Int) {{
                 runsOrError(filter: $filter, limit: $limit) {{
                   __typename ... on Runs {{ results {{ {_RUN_FIELDS} }} }}
                   ... on InvalidPipelineRunsFilterError {{ message }}
                   ... on PythonError {{ message }} }} }}""",
            {"filter": run_filter, "limit": limit},
            "runsOrError",
            "Runs",
        )
        return [_run(run) for run in data["results"]]

    def cancel(self, run_id: str) -> None:
        """Terminate a run (a queued run is simply dequeued)."""
        data = self._field(
            """mutation Cancel($id: String!) { terminateRun(runId: $id) {
                 __typename ... on Error { message } } }""",
            {"id": run_id},
            "terminateRun",
        )
        if data.get("__typename") != "TerminateRunSuccess":
            raise ClientError(f"cannot cancel {run_id}: {data.get('message') or data}")

    def mark_canceled(self, run_id: str) -> bool:
        """Mark a run CANCELED at once, without asking its process to stop (for a run whose
        process is gone); False when the run had already finished."""
        data = self._field(
            """mutation MarkCanceled($id: String!) {
                 terminateRun(runId: $id, terminatePolicy: MARK_AS_CANCELED_IMMEDIATELY) {
                   __typename ... on TerminateRunFailure { message run { status } }
                   ... on Error { message } } }""",
            {"id": run_id},
            "terminateRun",
        )
        if data.get("__typename") == "TerminateRunSuccess":
            return True
        if (data.get("run") or {}).get("status") in FINISHED:
            return False
        raise ClientError(f"cannot mark {run_id} canceled: {data.get('message') or data}")

    def free_pool_slots(self, run_id: str) -> None:
        """Give back the pool (concurrency) slots a run holds, and drop its waiting steps."""
        freed = self.query(
            "mutation Free($id: String!) { freeConcurrencySlotsForRun(runId: $id) }",
            {"id": run_id},
        ).get("freeConcurrencySlotsForRun")
        if freed is not True:
            raise ClientError(f"cannot free the pool slots of {run_id}: answered {freed!r}")

    def logs(self, run_id: str) -> list[LogEvent]:
        events: list[LogEvent] = []
        cursor = None
        while True:
            data = self._field(
                f"""query Logs($id: ID!, $cursor: String) {{
                  logsForRun(runId: $id, afterCursor: $cursor, limit: 1000) {{
                    __typename
                    ... on EventConnection {{
                      cursor hasMore
                      events {{ __typename
                        ... on MessageEvent {{ timestamp level stepKey message }}
                        ... on ErrorEvent {{ error {{ {_ERROR_CHAIN} }} }} }}
                    }}
                    ... on RunNotFoundError {{ message }}
                    ... on PythonError {{ message }}
                  }}
                }}""",
                {"id": run_id, "cursor": cursor},
                "logsForRun",
            )
            if data.get("__typename") != "EventConnection":
                raise ClientError(data.get("message") or f"run {run_id} not found")
            events += [
                LogEvent(
                    timestamp=float(event["timestamp"]) / 1000,
                    level=event["level"],
                    event_type=event["__typename"],
                    step_key=event.get("stepKey"),
                    message=event["message"],
                    error=own_error(graphql_chain(event["error"])) if event.get("error") else None,
                )
                for event in data["events"]
                if "message" in event
            ]
            if not data["hasMore"]:
                return events
            cursor = data["cursor"]

    def materialized_partitions(self, asset: str, limit: int = 10_000) -> list[str]:
        """Partition keys of ``asset``'s latest materialisations, newest first."""
        data = self._result(
            """query M($key: AssetKeyInput!, $limit: Int) { assetOrError(assetKey: $key) {
                 __typename ... on Asset { assetMaterializations(limit: $limit) { partition } }
                 ... on AssetNotFoundError { message } } }""",
            {"key": {"path": asset.split("/")}, "limit": limit},
            "assetOrError",
            "Asset",
        )
        return [m["partition"] for m in data["assetMaterializations"] if m["partition"]]


def backfill_title(names: Sequence[str], first: str, last: str) -> str:
    """The targets and the range, within Dagster's limit: past it, the first target and a count."""
    span = f"{first}...{last}"
    title = f"{' '.join(names)} {span}"
    if len(title) <= BACKFILL_TITLE_LIMIT:
        return title
    return f"{names[0]} and {len(names) - 1} more {span}"[:BACKFILL_TITLE_LIMIT]


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


def _time_partitions(owner: str, nodes: Sequence[Mapping[str, Any]]) -> list[TimePartitions]:
    """The distinct time partitions of ``nodes`` (a job's assets usually share one)."""
    found: dict[tuple, TimePartitions] = {}
    for node in nodes:
        definition = node.get("partitionDefinition") or {}
        if definition.get("type") != "TIME_WINDOW" or not definition.get("fmt"):
            continue
        first = [*((node.get("first") or {}).get("results") or []), None, None]
        newest = [*((node.get("newest") or {}).get("results") or []), None]
        partitions = TimePartitions(owner, definition["fmt"], first[0], newest[0], first[1])
        found.setdefault((partitions.fmt, first[0], first[1], newest[0]), partitions)
    return list(found.values())


def _url_host(host: str) -> str:
    """``host`` for a URL, refused unless it is a host name or an IP address."""
    try:
        address = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        if not _HOST_NAME.match(host):
            raise ClientError(
                f"host {host!r} is not a host name or an IP address: give the host alone "
                "(e.g. --host localhost --port 3000), not a URL"
            ) from None
        return host
    return f"[{address}]" if address.version == 6 else str(address)


def _port(port: int) -> int:
    if not 1 <= port <= 65535:
        raise ClientError(f"port {port} is not a TCP port (1-65535)")
    return port


# How Dagster reports a config that failed a ConstrainedShape (run_config.py): the problems sit
# between the exception's name and its stack trace.
_POST_PROCESSING = re.compile(
    r"Post processing at path (?P<path>\S+) of original value .*? failed:\n"
    r"\S*PostProcessingError: (?P<problems>.*?)\n\n",
    re.DOTALL,
)


def _launch_error(job: str, result: Mapping[str, Any]) -> str:
    """Why ``launchRun`` refused ``job``, from its result."""
    kind = result.get("__typename", "")
    if kind == "RunConfigValidationInvalid":
        messages = [error.get("message", str(error)) for error in result.get("errors") or []]
        return f"{job}: run config refused: " + " | ".join(m.strip() for m in messages)
    if kind == "PipelineNotFoundError":
        return f"no job named {job!r}; `cryptify jobs` lists them"
    text = str(result.get("message") or result)
    if refused := _POST_PROCESSING.search(text):
        problems = "; ".join(refused["problems"].strip().splitlines())
        return f"{job}: run config refused at {refused['path']}: {problems}"
    return f"{job}: launch refused ({kind}): {text.strip()}"
