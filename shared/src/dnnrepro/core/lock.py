"""An inter-process lock on a run's work folder, so two runs never write the same state.

    with RunLock(work_dir):            # raises RunLocked at once if another run holds it
        ...
    with RunLock(work_dir, timeout=600):   # or waits up to 600 s for it

The lock is ``fcntl.flock`` on ``<folder>/.dnnrepro.lock``. The kernel releases it when the
holding process dies, however it dies (kill -9 included), so a stale lock left by a dead run is
simply taken over by the next one. The file also holds a JSON record (pid, host, start time in
UTC) of the current holder, read only to word the error message. The lock file is never deleted:
unlinking a lock file lets two processes lock two different files.

The lock is per open file: a second RunLock on the same folder in the same process conflicts too.
Linux/macOS only (fcntl).
"""

from __future__ import annotations

import datetime
import fcntl
import json
import os
import socket
import time
from pathlib import Path
from typing import Any

from .errors import RunLocked

LOCK_NAME = ".dnnrepro.lock"


def _pid_alive(pid: object) -> bool:
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


class RunLock:
    """Exclusive lock on ``folder`` (created if missing) for the duration of a ``with`` block.

    ``timeout``: seconds to wait for a held lock; 0 (default) fails at once, None waits forever.
    ``poll``: seconds between attempts while waiting.
    """

    def __init__(self, folder: str | os.PathLike, timeout: float | None = 0, poll: float = 0.1):
        self.folder = Path(folder)
        self.path = self.folder / LOCK_NAME
        self.timeout = timeout
        self.poll = poll
        self._fd: int | None = None

    def holder(self) -> dict[str, Any]:
        """The record the current (or last) holder wrote: pid, host, since; {} if unreadable."""
        try:
            record = json.loads(self.path.read_text(encoding="utf-8") or "{}")
        except (OSError, ValueError):
            return {}
        return record if isinstance(record, dict) else {}

    def acquire(self) -> RunLock:
        """Take the lock (waiting up to ``timeout``); raises RunLocked naming the holder."""
        if self._fd is not None:
            raise RuntimeError(f"RunLock({self.folder}) is already held by this object")
        self.folder.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o666)
        deadline = None if self.timeout is None else time.monotonic() + self.timeout
        try:
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if deadline is not None and time.monotonic() >= deadline:
                        raise self._locked_error() from None
                    time.sleep(self.poll)
            record = {
                "pid": os.getpid(),
                "host": socket.gethostname(),
                "since": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
            }
            # rewrite in place (same inode: the lock lives on it); readers tolerate a torn record
            os.ftruncate(fd, 0)
            os.pwrite(fd, (json.dumps(record) + "\n").encode(), 0)
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd
        return self

    def _locked_error(self) -> RunLocked:
        record = self.holder()
        pid, since = record.get("pid", "?"), record.get("since", "an unknown time")
        host = record.get("host")
        where = f" on {host}" if host and host != socket.gethostname() else ""
        msg = f"another run holds {self.folder} since {since}, pid {pid}{where}"
        if not where and isinstance(pid, int) and not _pid_alive(pid):
            msg += " (that pid is gone: a child process of it still holds the lock; end it)"
        waited = f"waited {self.timeout:g} s; " if self.timeout else ""
        return RunLocked(f"{msg}; {waited}wait for it to finish or use another --work-dir")

    def release(self) -> None:
        """Release the lock (the record stays, for the message of a later conflict)."""
        if self._fd is not None:
            fd, self._fd = self._fd, None
            try:
                fcntl.flock(fd, fcntl.LOCK_UN)
            finally:
                os.close(fd)

    @property
    def held(self) -> bool:
        """Whether this object holds the lock now."""
        return self._fd is not None

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()
