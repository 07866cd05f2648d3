"""An asset's output with its metadata recorded once per run, not once per partition.

A single-run backfill records one materialisation per partition, each with a copy of the
output's metadata: a markdown preview of a run over 17,520 hours was stored 17,520 times (and
showed each old hour rows of the newest). The summary (counts, the time range) stays on every
partition; the details (markdown tables) go on the run's last partition only, the newest, which
the UI shows as the asset's latest materialisation. A one-partition run keeps both.
"""

from collections.abc import Mapping

import pandas as pd
from dagster import AssetExecutionContext, Output


def output_once_per_run(
    context: AssetExecutionContext,
    frame: pd.DataFrame,
    summary: Mapping[str, object],
    details: Mapping[str, object],
) -> Output[pd.DataFrame]:
    """``frame`` as the output, ``summary`` on every partition, ``details`` on the last."""
    if len(context.partition_keys) <= 1:
        return Output(frame, metadata={**summary, **details})
    context.add_asset_metadata(dict(details), partition_key=context.partition_keys[-1])
    return Output(frame, metadata=dict(summary))
