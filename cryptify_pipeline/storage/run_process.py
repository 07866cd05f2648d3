"""The process a run executes in, recorded as a run tag when the run starts, and whether that
process is gone.

Dagster watches the run workers its run launcher starts (``check_run_worker_health``), but a
run of ``dagster asset materialize``, ``dagster job execute`` or the bootstrap executes in that
command's own process, which nothing watches: killed (``kill -9``, the OOM killer), it leaves
its run STARTED, holding its pool slots for ever. The tag lets the ``fail_stale_runs`` sensor
and ``cryptify stale-runs`` tell such a run from a live one.

A pid means something only on its own machine: the tag names the host, and on Linux the boot
and the pid namespace (two containers on one host share neither pids nor, with ``--network
host``, a distinct host name). A process alive under the pid but started at another time is
a reused pid: the run's own process is gone.
"""

from __future__ import annotations

import json
import os
import socket
from dataclasses import asdict, dataclass
from functools import cache

import psutil

RUN_PROCESS_TAG = "cryptify/process"
# psutil derives a start time from the boot time and clock ticks: equal within rounding
_START_TOLERANCE_SECONDS = 1.0


@dataclass(frozen=True)
class RunProcess:
    """A process as its run's tag records it."""

    pid: int
    started: float  # its start time, in seconds since the epoch (psutil's create_time)
    host: str
    space: str  # the boot and pid namespace the pid belongs to ("" where not known)

    @classmethod
    def current(cls) -> RunProcess:
        return cls(os.getpid(), psutil.Process().create_time(), *this_machine())

    @classmethod
    def from_tag(cls, value: str | None) -> RunProcess | None:
        """The process a tag value names; None for no tag or one this code did not write."""
        try:
            fields = json.loads(value or "")
            return cls(int(fields["pid"]), float(fields["started"]), str(fields["host"]),
                       str(fields["space"]))  # fmt: skip
        except (ValueError, TypeError, KeyError):
            return None

    def tag_value(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"))

    @property
    def is_local(self) -> bool:
        """Whether its pid means a process of this machine (only then can it be checked)."""
        return (self.host, self.space) == this_machine()

    def is_gone(self) -> bool:
        """Whether the process no longer exists: no such pid, a zombie (killed, not yet
        reaped), or a newer process under a reused pid. Only meaningful when ``is_local``."""
        try:
            process = psutil.Process(self.pid)
            if process.status() == psutil.STATUS_ZOMBIE:
                return True
            return abs(process.create_time() - self.started) > _START_TOLERANCE_SECONDS
        except psutil.NoSuchProcess:
            return True
        except psutil.AccessDenied:  # another user's process: it exists
            return False

    def __str__(self) -> str:
        return f"pid {self.pid} on {self.host}"


@cache
def this_machine() -> tuple[str, str]:
    """(host name, boot id and pid namespace) of this process."""
    try:
        with open("/proc/sys/kernel/random/boot_id", encoding="ascii") as boot:
            space = f"{boot.read().strip()} {os.readlink('/proc/self/ns/pid')}"
    except OSError:  # not Linux: the host name alone
        space = ""
    return socket.gethostname(), space
