"""Generators of realistic test and demo data with known ground truth.

Every number in the repository's test data comes from these functions (seeded), never typed
by hand, so tests compare what the pipeline loaded against what was generated.
"""


def hdf5storage():
    """The optional ``hdf5storage`` package (MATLAB v7.3 output), or a clear one-line error."""
    try:
        import hdf5storage as module
    except ImportError:
        from ..errors import MapError

        raise MapError(
            "writing MATLAB v7.3 files needs hdf5storage: pip install 'map-pipeline[synthetic]' "
            "(v5 files need nothing extra)"
        ) from None
    return module
