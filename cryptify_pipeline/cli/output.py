"""What the ``cryptify`` command prints: aligned tables for people, JSON for scripts.

A command's result is plain data (what ``--json`` prints unchanged); here it becomes text: a
list of records is a table with a header row, one record is aligned ``field: value`` lines, a
run's log is a table of time, level, step and message, with a failed step's own error under
its message.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from tabulate import tabulate

# column headers and record labels; other keys are shown with their underscores as spaces
_LABELS = {
    "run_id": "run id",
    "max_runtime_seconds": "time limit (s)",
    "backfill_id": "backfill id",
    "data_dir": "data directory",
}


def render(command: str, output: Any, as_json: bool) -> str:
    """The text that ``command`` prints for ``output``."""
    if as_json:
        return json.dumps(output, indent=2, default=str)
    if isinstance(output, str):
        return output
    if command == "logs":
        return log_table(output)
    if command == "jobs":
        return table([{key: job[key] for key in job if key != "description"} for job in output])
    if isinstance(output, Mapping):
        return record(output)
    return table(output)


def table(rows: Sequence[Mapping[str, Any]]) -> str:
    """Rows as columns under a header; lists in a cell one item per line."""
    if not rows:
        return "(none)"
    keys = list(rows[0])
    return tabulate(
        [[_cell(row.get(key)) for key in keys] for row in rows],
        headers=[_label(key) for key in keys],
        tablefmt="simple",
        disable_numparse=True,  # run ids and partition keys are text, whatever they look like
    )


def record(fields: Mapping[str, Any]) -> str:
    """One record as ``label: value`` lines, the values aligned."""
    return tabulate(
        [[f"{_label(key)}:", _cell(value)] for key, value in fields.items()],
        tablefmt="plain",
        disable_numparse=True,
    )


def log_table(events: Sequence[Mapping[str, Any]]) -> str:
    """A run's events: time (UTC), level, step and message, an event's error beneath it."""
    if not events:
        return "(none)"
    rows = [
        [
            datetime.fromtimestamp(event["timestamp"], UTC).strftime("%H:%M:%S"),
            event["level"],
            event["step_key"] or "",
            event["message"] + (f"\n{event['error']}" if event.get("error") else ""),
        ]
        for event in events
    ]
    return tabulate(
        rows, headers=["time", "level", "step", "message"], tablefmt="simple",
        disable_numparse=True,
    )  # fmt: skip


def _label(key: str) -> str:
    return _LABELS.get(key, key.replace("_", " "))


def _cell(value: Any) -> str:
    if isinstance(value, list | tuple):
        return "\n".join(map(str, value)) or "-"
    return "-" if value is None else str(value)
