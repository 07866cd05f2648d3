"""Where steps run, measured with each CRYPTIFY_EXECUTOR: one ``collect_job`` hour (5 steps:
candles, then features and three checks), and two ``train_job`` runs (one day each) launched
together. Celery uses two workers on the local Redis, so the numbers show each executor's
overhead on one 2-core machine; workers on more machines add their cores.

    python -m benchmarks.executors
"""

import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from benchmarks._common import report, sql
from cryptify_pipeline_tests.support.database import subprocess_env
from cryptify_pipeline_tests.support.live_deployment import ROOT, write_instance_yaml

BIN = Path(sys.executable).parent
BROKER = "redis://127.0.0.1:6379/12"
BACKEND = "redis://127.0.0.1:6379/13"
HOUR = "2025-03-02-05:00"


def execute(env: dict[str, str], job: str, partition: str) -> float:
    began = time.perf_counter()
    subprocess.run(
        [str(BIN / "dagster"), "job", "execute", "-m", "cryptify_pipeline.definitions", "-j", job,
         "--tags", f'{{"dagster/partition": "{partition}"}}'],
        env=env, check=True, capture_output=True,
    )  # fmt: skip
    return time.perf_counter() - began


def main() -> None:
    results: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as directory:
        home = Path(directory)
        schema = f"bench_exec_{uuid.uuid4().hex[:6]}"
        write_instance_yaml(home, f"{schema}_dagster", without=("concurrency",))
        base = {
            **subprocess_env(),
            "DAGSTER_HOME": str(home),
            "CRYPTIFY_SCHEMA": schema,
            "CRYPTIFY_AUTOMATION": "off",
            "CRYPTIFY_CELERY_BROKER": BROKER,
            "CRYPTIFY_CELERY_BACKEND": BACKEND,
            "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}",
        }
        # history for training: 30 days of candles and features, once
        subprocess.run(
            [str(BIN / "dagster"), "job", "execute", "-m", "cryptify_pipeline.definitions", "-j",
             "collect_job", "--tags", '{"dagster/asset_partition_range_start": '
             '"2025-01-20-00:00", "dagster/asset_partition_range_end": "2025-03-01-23:00"}'],
            env=base, check=True, capture_output=True,
        )  # fmt: skip
        workers = [
            subprocess.Popen(
                [
                    str(BIN / "dagster-celery"),
                    "worker",
                    "start",
                    "-A",
                    "dagster_celery.app",
                    "-n",
                    f"bench{i}",
                    "-y",
                    str(ROOT / "docker" / "celery.yaml"),
                ],
                env=base,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
            )  # fmt: skip
            for i in range(2)
        ]
        try:
            time.sleep(10)  # the workers connect to the broker
            for executor in ("in_process", "multiprocess", "celery"):
                env = {**base, "CRYPTIFY_EXECUTOR": executor}
                results[f"collect_hour_s_{executor}"] = round(execute(env, "collect_job", HOUR), 1)
                began = time.perf_counter()
                runs = [
                    subprocess.Popen(
                        [
                            str(BIN / "dagster"),
                            "job",
                            "execute",
                            "-m",
                            "cryptify_pipeline.definitions",
                            "-j",
                            "train_job",
                            "--tags",
                            f'{{"dagster/partition": "2025-03-0{day}"}}',
                        ],
                        env=env,
                        stdout=subprocess.DEVNULL,
                        stderr=subprocess.DEVNULL,
                    )  # fmt: skip
                    for day in (1, 2)
                ]
                assert all(run.wait() == 0 for run in runs), f"train_job failed on {executor}"
                results[f"train_2_days_s_{executor}"] = round(time.perf_counter() - began, 1)
                print(executor, results, flush=True)
        finally:
            for worker in workers:
                os.killpg(worker.pid, 15)
            sql(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
            sql(f"DROP SCHEMA IF EXISTS {schema}_dagster CASCADE")
    report("executors", results)


if __name__ == "__main__":
    main()
