"""MAP pipeline: rig behavior, video tracking, Neuropixels spike sorting and histology in one
DataJoint database.

Import the schema modules you need (``from pipeline import lab, experiment``); importing one
connects to the configured database (see :mod:`pipeline.db`) and creates its tables if needed.
"""

import warnings

from . import errors

# DataJoint 2 warns at import when no datajoint.json exists; with no file we use the embedded
# database on purpose, so the warning only confuses.
warnings.filterwarnings("ignore", message="No datajoint.json found", category=UserWarning)

__version__ = "0.1.0"

try:
    from . import config, log  # noqa: F401  (config loads the settings file at import)

    log.setup()
except errors.ConfigError:
    # A broken settings file must not make the package unimportable (mapshell reports it);
    # importing pipeline.config, or any schema module, raises the error again.
    pass
