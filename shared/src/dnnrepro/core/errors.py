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


class RunLocked(DnnreproError):
    """Another process holds the inter-process lock of a run's work folder."""


_OS_HINTS = {
    "EACCES": "check the folder's permissions or choose another folder",
    "EPERM": "check the folder's permissions or choose another folder",
    "EROFS": "the file system is read-only: choose a writable folder",
    "ENOTDIR": "a file stands where a folder is needed: move it away or choose another path",
    "EISDIR": "a folder stands where a file is needed: move it away or choose another path",
    "EEXIST": "something already stands at that path: move it away or choose another path",
    "ENOSPC": "the disk is full: free space and rerun (finished stages are kept)",
    "EDQUOT": "the disk quota is exhausted: free space and rerun (finished stages are kept)",
    "ENOENT": "check the path; a parent folder may be missing",
    "ENAMETOOLONG": "choose a shorter path",
}


def describe_oserror(exc: OSError) -> str:
    """One line for a filesystem fault: what failed, where, and what to do.

    E.g. ``permission denied: /ro/out/results.json (check the folder's permissions ...)``.
    """
    import errno

    what = (exc.strerror or str(exc) or type(exc).__name__).strip().lower()
    where = " -> ".join(str(f) for f in (exc.filename, exc.filename2) if f is not None)
    hint = _OS_HINTS.get(errno.errorcode.get(exc.errno or 0, ""), "check the path and rerun")
    return f"{what}: {where} ({hint})" if where else f"{what} ({hint})"
