"""Behaviour ingest: delay-response rig files (``ingest-behavior``) and pybpod foraging sessions
(``ingest-foraging``), and their bookkeeping tables (schema ``ingest_behavior``)."""

from .delay_response import ingest_behavior
from .foraging import ingest_foraging
from .tables import BehaviorBpodIngest, BehaviorIngest, schema

__all__ = ["BehaviorBpodIngest", "BehaviorIngest", "ingest_behavior", "ingest_foraging", "schema"]
