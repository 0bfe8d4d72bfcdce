"""The gloo launcher under faults: a rank SIGKILLed before or after the group forms, a rank
SIGSTOPped, Ctrl-C to the whole process group, the launcher itself killed. Each ends within its
bound (counted from the fault, since starting torch in a worker may take seconds on a busy
machine) with one clear error, and leaves no worker behind."""

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from dnnrepro.core.errors import DnnreproError
from dnnrepro.terngrad.launch import launch
from dnnrepro.terngrad.workers import probe_worker

pytestmark = pytest.mark.slow  # each test starts torch in two fresh processes

STARTUP_S = 120  # generous: the workers import torch on a possibly loaded machine


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def _children(pid: int) -> list[int]:
    """Worker processes started by ``pid`` (not multiprocessing's resource tracker)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        try:
            spawned = b"spawn_main" in (stat.parent / "cmdline").read_bytes()
        except OSError:
            continue
        if int(fields[1]) == pid and fields[0] != "Z" and spawned:
            found.append(int(stat.parent.name))
    return sorted(found)


def _ready_pids(folder: Path, n: int = 2, limit: float = STARTUP_S) -> list[int]:
    """The worker pids, once every rank has passed the first barrier."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        files = sorted(folder.glob("rank*.pid"))
        if len(files) == n:
            return [int(f.read_text()) for f in files]
        time.sleep(0.05)
    raise AssertionError("the workers did not pass the first barrier")


class Background:
    """launch() in a thread: .join() returns (the exception or value, monotonic end time)."""

    def __init__(self, **kwargs):
        self.outcome = None
        self.end = None
        self.thread = threading.Thread(target=self._run, kwargs=kwargs, daemon=True)
        self.thread.start()

    def _run(self, **kwargs):
        try:
            self.outcome = launch(probe_worker, 2, **kwargs)
        except BaseException as exc:
            self.outcome = exc
        self.end = time.monotonic()

    def join(self, limit: float):
        self.thread.join(limit)
        assert not self.thread.is_alive(), f"launch() still running {limit} s after the fault"
        return self.outcome, self.end


def test_a_rank_killed_before_the_group_forms_is_reported_at_once(tmp_path):
    run = Background(args={"seconds": 30, "ready_dir": str(tmp_path)}, timeout_s=300)
    deadline = time.monotonic() + 30
    while len(kids := _children(os.getpid())) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert len(kids) == 2
    os.kill(kids[1], signal.SIGKILL)  # still importing torch: long before the rendezvous
    t_fault = time.monotonic()
    exc, end = run.join(30)
    assert isinstance(exc, DnnreproError), exc
    assert "process killed by SIGKILL" in str(exc) and "\n" not in str(exc)
    assert end - t_fault < 10  # not the 60 s collective timeout
    assert list(tmp_path.glob("rank*.pid")) == []  # the group never formed
    assert not any(_alive(p) for p in kids)


def test_a_rank_killed_after_the_group_formed_fails_the_run_quickly(tmp_path):
    run = Background(args={"seconds": 60, "ready_dir": str(tmp_path)}, timeout_s=300)
    pids = _ready_pids(tmp_path)
    os.kill(pids[1], signal.SIGKILL)
    t_fault = time.monotonic()
    exc, end = run.join(30)
    assert isinstance(exc, DnnreproError), exc
    assert "rank 1: process killed by SIGKILL" in str(exc)
    assert end - t_fault < 10
    assert not any(_alive(p) for p in pids)


def test_a_stopped_rank_ends_the_run_and_is_reaped(tmp_path):
    collective = 15
    run = Background(
        args={"seconds": 120, "ready_dir": str(tmp_path)},
        timeout_s=300,
        collective_timeout_s=collective,
        grace_s=2,
    )
    pids = _ready_pids(tmp_path)
    os.kill(pids[1], signal.SIGSTOP)
    t_fault = time.monotonic()
    exc, end = run.join(collective + 30)
    assert isinstance(exc, DnnreproError), exc
    assert "rank 0:" in str(exc) and "rank 1:" in str(exc) and "\n" not in str(exc)
    assert end - t_fault < collective + 15
    assert not any(_alive(p) for p in pids)  # the stopped rank was killed, nothing waits on it


# The launcher starts as a terminal would start it: SIGINT unblocked and default-handled, whatever
# mask or disposition the pytest process happens to pass on (in one full-suite CI run both
# Ctrl-C tests timed out while they pass alone and in the package's own run: something earlier
# in that process left SIGINT blocked or ignored for its children).
LAUNCHER = (
    "import signal, sys\n"
    "signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})\n"
    "signal.signal(signal.SIGINT, signal.default_int_handler)\n"
    "from dnnrepro.terngrad.launch import launch\n"
    "from dnnrepro.terngrad.workers import probe_worker\n"
    "try:\n"
    "    launch(probe_worker, 2, {'seconds': 120, 'ready_dir': sys.argv[1]}, timeout_s=300)\n"
    "except KeyboardInterrupt:\n"
    "    print('interrupted; rerun to resume', file=sys.stderr)\n"
    "    sys.exit(130)\n"
)


def _launcher(folder: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", LAUNCHER, str(folder)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own process group, as a terminal would make it
    )


@pytest.mark.parametrize("when", ["importing", "running"])
def test_ctrl_c_to_the_group_prints_one_line_and_stops_the_workers(tmp_path, when):
    proc = _launcher(tmp_path)
    try:
        if when == "importing":  # the workers exist and are importing torch (unpickling fn)
            deadline = time.monotonic() + 30
            while len(pids := _children(proc.pid)) < 2 and time.monotonic() < deadline:
                time.sleep(0.01)
            assert len(pids) == 2
            time.sleep(2.0)  # past the interpreter's start, well before the group forms
        else:
            pids = _ready_pids(tmp_path)
        os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C does: every process of the group
        t_fault = time.monotonic()
        _, err = proc.communicate(timeout=20)
        assert time.monotonic() - t_fault < 10
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode == 130
    assert err.strip().splitlines() == ["interrupted; rerun to resume"], err
    assert not any(_alive(p) for p in pids)


def test_workers_exit_within_2_s_of_their_launchers_death(tmp_path):
    proc = _launcher(tmp_path)
    try:
        pids = _ready_pids(tmp_path)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
        t_fault = time.monotonic()
        while any(_alive(p) for p in pids) and time.monotonic() - t_fault < 5:
            time.sleep(0.05)
        assert time.monotonic() - t_fault < 2, "workers outlived their launcher"
    finally:
        proc.kill()
        proc.wait()
        for p in pids if "pids" in locals() else []:
            if _alive(p):
                os.kill(p, signal.SIGKILL)
