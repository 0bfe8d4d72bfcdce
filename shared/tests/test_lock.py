"""RunLock: one holder per folder across processes, a clear error or a wait for the second, and
the lock of a SIGKILLed holder taken over."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from dnnrepro.core.errors import RunLocked
from dnnrepro.core.lock import LOCK_NAME, RunLock

HOLDER = (
    "import sys, time\n"
    "from dnnrepro.core.lock import RunLock\n"
    "with RunLock(sys.argv[1]):\n"
    "    print('held', flush=True)\n"
    "    time.sleep(float(sys.argv[2]))\n"
)


def _holder(folder, seconds: float) -> subprocess.Popen:
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(folder), str(seconds)], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout.readline().strip() == "held"
    return proc


def test_a_second_run_gets_one_clear_error_naming_the_holder(tmp_path):
    proc = _holder(tmp_path, 60)
    try:
        t0 = time.monotonic()
        with pytest.raises(RunLocked) as info:
            RunLock(tmp_path).acquire()
        assert time.monotonic() - t0 < 2
        msg = str(info.value)
        assert f"another run holds {tmp_path} since 20" in msg
        assert f"pid {proc.pid}" in msg and "\n" not in msg
    finally:
        proc.kill()
        proc.wait()


def test_a_second_run_can_wait_for_the_first(tmp_path):
    proc = _holder(tmp_path, 1.0)
    try:
        with pytest.raises(RunLocked, match="waited 0.2 s"):
            RunLock(tmp_path, timeout=0.2).acquire()
        t0 = time.monotonic()
        with RunLock(tmp_path, timeout=30) as lock:
            assert lock.held and lock.holder()["pid"] == os.getpid()
        assert time.monotonic() - t0 < 10
    finally:
        proc.kill()
        proc.wait()


def test_the_lock_of_a_killed_run_is_taken_over(tmp_path):
    proc = _holder(tmp_path, 60)
    assert json.loads((tmp_path / LOCK_NAME).read_text())["pid"] == proc.pid
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    t0 = time.monotonic()
    with RunLock(tmp_path) as lock:  # no wait, no error: the kernel freed the dead pid's lock
        assert lock.holder()["pid"] == os.getpid()
    assert time.monotonic() - t0 < 1


def test_one_process_cannot_hold_a_folder_twice_and_release_frees_it(tmp_path):
    with RunLock(tmp_path / "new" / "run"):  # the folder is created
        with pytest.raises(RunLocked, match=f"pid {os.getpid()}"):
            RunLock(tmp_path / "new" / "run").acquire()
    with RunLock(tmp_path / "new" / "run"):
        pass
