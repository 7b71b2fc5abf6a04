"""Errors the user can fix, each with a message that says what and where. Kept free of imports
so that the command line can report them even when loading the settings itself failed."""


class ConfigError(ValueError):
    """A setting has the wrong shape; the message names the key (and file) and what is expected."""


class ConnectionProblem(RuntimeError):
    """The database cannot be reached; the message says which one and what to check."""
