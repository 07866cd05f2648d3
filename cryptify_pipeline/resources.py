"""Resources by environment. Every environment reads its database from the settings."""

from cryptify_pipeline.io.postgres_io_manager import PostgresPandasIOManager


def build_resources() -> dict[str, object]:
    return {"io_manager": PostgresPandasIOManager()}
