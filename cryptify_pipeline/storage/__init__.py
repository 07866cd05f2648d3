"""Postgres: URLs, the embedded server, instance storage, column types, tables, the IO manager."""
