"""Metadata in PostgreSQL: the pool, migrations, and the ingestion tables."""

from mm_bronze.metadata.pool import Database

__all__ = ["Database"]
