"""Errors a user can act on.

Every exception here carries a message that says what was wrong and what to do. The CLI prints
that one line and exits with code 2; library callers can catch :class:`DnnreproError`.
"""


class DnnreproError(Exception):
    """Base of all user-facing errors: bad input, missing data, corrupted files."""


class ConfigError(DnnreproError, ValueError):
    """A configuration value is out of range or unknown; raised before any work starts."""


class DataError(DnnreproError):
    """A dataset file is missing, truncated or altered (sha256 mismatch)."""


class IntegrityError(DnnreproError):
    """A checkpoint or results file does not match the hash recorded for it."""


class TrainingDiverged(DnnreproError, FloatingPointError):
    """The loss became NaN or infinite; the message says at which step and what to lower."""
