"""Pure readers, one file format each: they return numpy arrays, DataFrames or small dataclasses
and never touch the database, so they can be tested (and trusted) on their own."""
