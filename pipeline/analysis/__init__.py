"""Pure computations on spike trains and trials (numpy/scipy in, numpy out; no database).

The computed tables (:mod:`pipeline.ephys`, :mod:`pipeline.psth`) fetch their inputs, call these,
and store the results; tests call these directly against generated ground truth.
"""
