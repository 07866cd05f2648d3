"""Where prices come from: the candle contract and its sources. No Dagster, no Postgres."""
