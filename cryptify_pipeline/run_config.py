"""Run config whose pydantic constraints are enforced when a run is launched, not when it runs.

Dagster turns a ``dagster.Config`` into a config schema of types only: ``ge``/``le`` and field
validators are checked when the step builds the object, after the run has started. A
``ConstrainedShape`` is the same schema plus a ``post_process`` hook, Dagster's documented place
for custom validation. Dagster applies it while building the execution plan, so the UI, GraphQL,
schedules, sensors and backfills all refuse an invalid config before any run exists.
"""

from typing import Any, TypeVar

from annotated_types import Ge, Gt, Le, Lt
from dagster import Config, OpExecutionContext
from dagster import Field as DagsterField
from dagster._config import ConfigType, Shape
from dagster._config.errors import PostProcessingError
from dagster._config.pythonic_config.config import infer_schema_from_config_class
from pydantic import ValidationError

ConfigModel = TypeVar("ConfigModel", bound=Config)


def allowed_values(model: type[Config], field: str) -> str | None:
    """The bounds a field declares, e.g. ``between 7 and 3650``."""
    info = model.model_fields.get(field)
    if info is None:
        return None
    bounds = {type(item): item for item in info.metadata}
    low = bounds.get(Ge, bounds.get(Gt))
    high = bounds.get(Le, bounds.get(Lt))
    if low is not None and high is not None:
        return f"allowed: between {_bound(low)} and {_bound(high)}"
    if low is not None:
        return f"allowed: at least {_bound(low)}"
    if high is not None:
        return f"allowed: at most {_bound(high)}"
    return None


def _bound(item: Ge | Gt | Le | Lt) -> str:
    for attribute, word in (("ge", ""), ("le", ""), ("gt", "above "), ("lt", "below ")):
        if hasattr(item, attribute):
            return f"{word}{getattr(item, attribute)}"
    raise TypeError(item)


def describe_errors(model: type[Config], error: ValidationError) -> str:
    """One line per invalid field: the field, what is wrong, the value, what is allowed."""
    lines = []
    for problem in error.errors():
        field = ".".join(str(part) for part in problem["loc"]) or "(config)"
        message = problem["msg"].removeprefix("Value error, ")
        line = f"{model.__name__}.{field}: {message} (got {problem.get('input')!r})"
        allowed = allowed_values(model, str(problem["loc"][0])) if problem["loc"] else None
        lines.append(f"{line}; {allowed}" if allowed else line)
    return "\n".join(lines)


class ConstrainedShape(Shape):
    """The Dagster shape of ``model`` that validates values with ``model`` itself."""

    def __new__(cls, model: type[Config]) -> "ConstrainedShape":
        # Shape.__new__ interns plain Shapes by field hash; this one carries a model, so skip it
        return ConfigType.__new__(cls)

    def __init__(self, model: type[Config]) -> None:
        self._initialized = False
        schema = infer_schema_from_config_class(model)
        super().__init__(schema.config_type.fields, description=schema.description)
        self.model = model

    def post_process(self, value: Any) -> Any:
        try:
            self.model.model_validate(value)
        except ValidationError as error:
            raise PostProcessingError(describe_errors(self.model, error)) from None
        return value


def constrained_config(model: type[Config]) -> DagsterField:
    """A ``config_schema`` for an asset or op: ``model``'s fields, checked at launch."""
    return DagsterField(ConstrainedShape(model), is_required=False)


def config_of(context: OpExecutionContext, model: type[ConfigModel]) -> ConfigModel:
    """The step's config as ``model`` (already validated at launch)."""
    return model.model_validate(context.op_execution_context.op_config or {})
