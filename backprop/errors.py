"""The project's own exceptions: problems a user can fix, each with a message saying how.

Every one of them is a :class:`BackpropError`; the command line turns exactly
these (and :class:`backends.BackendError`) into one line on stderr with exit
status 2. Anything else escaping is a bug and keeps its traceback.

They also subclass the built-in type Python code expects for the same problem
(``ValueError`` for bad values, ``TypeError`` for data that is not numbers), so
``except ValueError`` around a ``fit`` keeps working, as scikit-learn's checks
require.
"""

from __future__ import annotations


class BackpropError(Exception):
    """Base of every error a user can fix; the message says what to do."""


class DataError(BackpropError, ValueError):
    """Inputs or targets that cannot be trained on: shapes, NaN, labels, unreadable files."""


class DataTypeError(DataError, TypeError):
    """Data that is not numbers (text, objects) where numbers are needed."""


class ConfigError(BackpropError, ValueError):
    """Settings that cannot work: an unknown name, a non-positive rate, a clash of options."""


class CheckpointError(BackpropError, ValueError):
    """A file that is not a usable backprop checkpoint, or a place it cannot be written."""
