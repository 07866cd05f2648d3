"""Runs left STARTED by a process that is gone: found, marked failed, their pool slots freed.

Dagster's run monitoring covers the run workers of its run launcher; a run executed in the
process of ``dagster asset materialize`` or the bootstrap is watched by nothing, and once that
process is killed its run stays STARTED and keeps its pool slots: every later step of those
pools waits ("Step blocked by limit for pool candles"). Each run's process is in its
``cryptify/process`` tag (``storage.run_process``); only a process of this machine is checked.
"""

from __future__ import annotations

from dataclasses import dataclass

from dagster import DagsterInstance, DagsterRun, DagsterRunStatus, RunsFilter
from dagster._core.events import JobFailureData, RunFailureReason

from cryptify_pipeline.storage.run_process import RUN_PROCESS_TAG, RunProcess


@dataclass(frozen=True)
class StaleRun:
    run: DagsterRun
    process: RunProcess

    def __str__(self) -> str:
        return f"run {self.run.run_id} of {self.run.job_name} ({self.process}, gone)"


def stale_runs(instance: DagsterInstance) -> list[StaleRun]:
    """The STARTED runs whose process, on this machine, is gone."""
    started = instance.get_runs(RunsFilter(statuses=[DagsterRunStatus.STARTED]))
    found = []
    for run in started:
        process = RunProcess.from_tag(run.tags.get(RUN_PROCESS_TAG))
        if process is not None and process.is_local and process.is_gone():
            found.append(StaleRun(run, process))
    return found


def fail_stale_run(instance: DagsterInstance, stale: StaleRun) -> bool:
    """Mark the run failed and free its pool slots; False when it is no longer STARTED.

    Its process is gone, so nothing else will write its status: re-reading it now cannot race
    with the run finishing (it may have finished just before its process exited).
    """
    run = instance.get_run_by_id(stale.run.run_id)
    if run is None or run.status != DagsterRunStatus.STARTED:
        return False
    instance.report_run_failed(
        run,
        f"The run's process ({stale.process}) is gone (killed?): marked failed and its pool "
        "slots freed.",
        JobFailureData(error=None, failure_reason=RunFailureReason.UNEXPECTED_TERMINATION),
    )
    # the daemon frees a finished run's slots after free_slots_after_run_end_seconds, if it
    # runs; the next step of the pool should not wait for it
    if instance.event_log_storage.supports_global_concurrency_limits:
        instance.event_log_storage.free_concurrency_slots_for_run(run.run_id)
    return True
