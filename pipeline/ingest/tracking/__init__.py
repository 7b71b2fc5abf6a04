"""Tracking ingest (``ingest-tracking``): DeepLabCut output per trial and camera."""

from .step import TrackingIngestError, ingest_tracking

__all__ = ["TrackingIngestError", "ingest_tracking"]
