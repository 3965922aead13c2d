"""The single exception type of the engine and the SQLSTATEs it carries.

PL/Python wrappers catch :class:`BayesError` and re-raise it with
``plpy.error(e.message, hint=e.hint, sqlstate=e.sqlstate)`` so that PostgREST
answers 4xx instead of 500.
"""

from __future__ import annotations

INVALID_PARAMETER = "22023"  # bad argument or bad parameter value
NULL_VALUE = "22004"  # NULL where a value is required
STRING_TOO_LONG = "22001"  # message text over 64 KiB
NO_DATA_FOUND = "P0002"  # unknown player in a read RPC
INSUFFICIENT_PRIVILEGE = "42501"  # caller not allowed
DATA_CORRUPTED = "XX001"  # a stored state that fails validation
FEATURE_NOT_SUPPORTED = "0A000"  # a stored state newer than this code
INTERNAL_ERROR = "XX000"  # anything else that went wrong with one row of the bulk decay (reported, not raised)


class BayesError(Exception):
    """An error meant for the client, with the SQLSTATE to raise it under."""

    def __init__(self, sqlstate: str, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.sqlstate = sqlstate
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message

    def __repr__(self) -> str:
        return f"BayesError({self.sqlstate!r}, {self.message!r}, hint={self.hint!r})"
