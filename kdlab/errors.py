"""The one base class of errors caused by the user's input, not by a bug in kdlab.

The ``kdlab`` command prints such an error as one line and exits with code 2 (``kdlab --debug ...`` shows
the traceback). Each module keeps its own error class (``ConfigError``, ``ManifestError``, ``AudioError``,
``CheckpointError`` …), which also derives from this one.
"""

from __future__ import annotations


class UserError(Exception):
    """Bad input: a file, a flag, a config value or a data item; the message names it and says what is
    wrong, on one line."""


# Operating-system errors that a command line mistake causes (a wrong path, a folder in use).
OS_USER_ERRORS = (FileNotFoundError, FileExistsError, PermissionError, IsADirectoryError, NotADirectoryError)
USER_ERRORS = (UserError, *OS_USER_ERRORS)
