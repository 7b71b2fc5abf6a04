"""Generators of realistic test and demo data with known ground truth.

Every number in the repository's test data comes from these functions (seeded), never typed
by hand, so tests compare what the pipeline loaded against what was generated.
"""
