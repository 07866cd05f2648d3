"""The read-only data API over the asset tables, and its dashboard (FastAPI; no Dagster)."""
