"""A failed step's own error, as people want to read it.

Dagster wraps what a step raised in its own errors (``DagsterExecutionStepExecutionError: Error
occurred while executing op "candles":``, with the real error as its cause); the run's failure
only says "Steps failed: ['candles']". The reason is the first error of the chain that is not
Dagster's wrapper: a ``Failure``'s description as written, any other error with its class name.
The same text serves the ``cryptify`` command (errors from GraphQL) and the bootstrap (errors of
an in-process run).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from dagster._utils.error import SerializableErrorInfo

# Dagster's errors that wrap a step's own error; their text only names the step or the output
_WRAPPERS = re.compile(r"^Dagster(Execution\w*|UserCode\w*|ResourceFunction)Error$")
_STEP_WRAPPER = "DagsterExecutionStepExecutionError"
# raised by steps on purpose: the description is the whole message
_PLAIN = {"Failure"}


def own_error(chain: list[tuple[str | None, str]]) -> str:
    """The reason from an error chain, outermost first, as (class name, message) links."""
    parts = []
    for index, (class_name, message) in enumerate(chain):
        text = _without_class(message, class_name).strip()
        last = index == len(chain) - 1
        if class_name and _WRAPPERS.match(class_name) and not last:
            if class_name != _STEP_WRAPPER:  # "while loading input ...": worth saying
                parts.append(text.rstrip(":"))
            continue
        parts.append(text if not class_name or class_name in _PLAIN else f"{class_name}: {text}")
        break
    return ": ".join(part for part in parts if part)


def graphql_chain(error: Mapping[str, Any] | None) -> list[tuple[str | None, str]]:
    """The chain of a GraphQL ``PythonError`` with its nested ``cause``s."""
    chain = []
    while error:
        chain.append((error.get("className"), error.get("message") or ""))
        error = error.get("cause")
    return chain


def serializable_chain(error: SerializableErrorInfo | None) -> list[tuple[str | None, str]]:
    """The chain of an in-process step failure's ``SerializableErrorInfo``."""
    chain = []
    while error is not None:
        chain.append((error.cls_name, error.message))
        error = error.cause
    return chain


def _without_class(message: str, class_name: str | None) -> str:
    """``message`` less its leading ``module.Class: ``."""
    if class_name:
        return re.sub(rf"^(?:[\w.]+\.)?{re.escape(class_name)}: ?", "", message, count=1)
    return message
