"""Where a job's steps run, chosen by CRYPTIFY_EXECUTOR.

- ``in_process`` (default): in the run's own process. Each job's steps form a short chain, so a
  process per step would only add an interpreter start to every hourly run. The choice also
  holds for runs outside the jobs (asset backfills, materialisations from the UI).
- ``multiprocess``: a process per step, on the run's machine.
- ``celery``: each step is a Celery task on the broker (Redis or RabbitMQ); workers on any
  machine with the code and the database execute them (``dagster-celery worker start``).
"""

from dagster import ExecutorDefinition, in_process_executor, multiprocess_executor

from cryptify_pipeline.settings import Settings


def job_executor(settings: Settings) -> ExecutorDefinition:
    if settings.executor == "celery":
        from dagster_celery import celery_executor

        return celery_executor.configured(
            {"broker": settings.celery_broker, "backend": settings.celery_backend},
            name="celery",
        )
    if settings.executor == "multiprocess":
        return multiprocess_executor
    return in_process_executor
