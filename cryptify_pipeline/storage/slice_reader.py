"""An input slice read on demand: the asset, not the IO manager, chooses which part it needs.

A partition mapping is fixed when the definitions load, so it must reach as far back as any run
may ask for (``models`` maps its input to 3,650 days of ``features``). A ``SliceReader`` keeps
that lineage while loading only the part a run's config asks for: the IO manager hands it the
mapped slice (its table, schema and partition predicates), and ``read_between`` narrows the
slice's time range, never widening it, in one bound-value query.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import pandas as pd

from cryptify_pipeline.postgres_url import DatabaseUrl
from cryptify_pipeline.storage import pg_tables


@dataclass(frozen=True)
class SliceReader:
    """The slice of ``schema.table`` an input maps to, not read yet."""

    url: DatabaseUrl
    schema: str
    table: str
    columns: tuple[str, ...] | None
    predicates: tuple[pg_tables.Predicate, ...]

    def read_between(self, start: datetime, end: datetime) -> pd.DataFrame:
        """The slice's rows in [start, end) of its time column (within the mapped range)."""
        if start > end:
            raise ValueError(f"empty time range: start {start} is after end {end}")
        if not any(isinstance(p, pg_tables.TimeRange) for p in self.predicates):
            raise pg_tables.TableError(
                f"the slice of {self.schema}.{self.table} has no time range to read part of "
                f"(its partitions select {self.predicates or 'the whole table'})"
            )
        with pg_tables.transaction(self.url) as connection:
            return pg_tables.read_frame(
                connection,
                self.schema,
                self.table,
                self.columns,
                narrowed(self.predicates, start, end),
            )


def narrowed(
    predicates: Sequence[pg_tables.Predicate], start: datetime, end: datetime
) -> list[pg_tables.Predicate]:
    """``predicates`` with every time range cut to [start, end); an empty cut selects nothing."""
    cut: list[pg_tables.Predicate] = []
    for predicate in predicates:
        if isinstance(predicate, pg_tables.TimeRange):
            low, high = max(predicate.start, start), min(predicate.end, end)
            predicate = pg_tables.TimeRange(predicate.column, low, max(low, high))
        cut.append(predicate)
    return cut
