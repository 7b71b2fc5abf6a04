"""Loaders that find files under the configured paths, call the readers in :mod:`pipeline.io`
and write to the database, one session (or probe, or file) per transaction."""
