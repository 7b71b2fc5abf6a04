"""Histology ingest (``ingest-histology``): electrode CCF positions, regions and probe tracks per
insertion, and its bookkeeping tables (schema ``ingest_histology``)."""

from .step import HistologyIngestError, ingest_histology
from .tables import HistologyIngest, schema

__all__ = ["HistologyIngest", "HistologyIngestError", "ingest_histology", "schema"]
