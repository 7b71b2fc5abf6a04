"""MAP pipeline: rig behavior, video tracking, Neuropixels spike sorting and histology in one
DataJoint database.

``import pipeline`` (and any reader under :mod:`pipeline.io`) connects to nothing, reads no
settings and leaves logging alone. Import the schema modules you need
(``from pipeline import lab, experiment``); the first use of one of their tables connects to the
configured database (see :mod:`pipeline.db`) and creates its tables if needed.
"""

import warnings
from importlib.metadata import PackageNotFoundError, version

# DataJoint 2 warns at import when no datajoint.json exists; with no file the pipeline uses the
# embedded database (or an old dj_local_conf.json) on purpose, so the warning only confuses.
warnings.filterwarnings("ignore", message="No datajoint.json found", category=UserWarning)

try:
    __version__ = version("map-pipeline")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0+unknown"
