"""Ephys ingest (``ingest-ephys``): spike sorting per probe, and its bookkeeping tables
(schema ``ingest_ephys``)."""

from .step import EphysIngestError, ingest_ephys
from .tables import EphysIngest, schema

__all__ = ["EphysIngest", "EphysIngestError", "ingest_ephys", "schema"]
