"""Start N gloo worker processes on this machine and collect their results, in bounded time.

``launch(fn, workers, args)`` spawns ``workers`` processes (spawn start method), each joining one
torch.distributed gloo group on 127.0.0.1 and calling ``fn(rank, workers, args)`` (a module-level
function; its return value must be picklable). It returns the N values, or raises one
DnnreproError naming each failed rank and the cause. It ends in bounded time whatever a worker
does:

- a worker that raises, or dies (at any time, before the group forms included), is seen at once
  through its result pipe and its process sentinel; the survivors get ``grace_s`` to report their
  own errors, then every worker is stopped;
- a worker that hangs or is stopped (SIGSTOP) fails its peers' pending collectives after
  ``collective_timeout_s``, or the whole run after ``timeout_s``;
- stopping is SIGTERM, then SIGKILL after ``grace_s`` (SIGKILL ends a stopped process too), then
  every process is reaped, so nothing waits for a worker at interpreter exit.

Ctrl-C: the workers are started with SIGINT ignored (and, off the main thread, blocked), so the
terminal's interrupt reaches only the launcher, which stops the workers and re-raises
KeyboardInterrupt (the CLI prints one line). Ignored, not only blocked: a spawned worker imports
torch while it unpickles its function, and a thread started there may have SIGINT unblocked, so a
blocked Ctrl-C was delivered mid-import and printed the worker's traceback (seen in a full test
run); a child's Python keeps an inherited SIG_IGN and installs no KeyboardInterrupt handler.
Workers die with their launcher: on Linux the kernel sends them SIGKILL when it exits
(PR_SET_PDEATHSIG; note it fires when the launching *thread* ends, which is after launch()
returns); elsewhere a watch thread notices the new parent pid within 0.5 s.

Multi-machine runs use torchrun instead: the hook itself does not care how the group was made.
"""

from __future__ import annotations

import contextlib
import datetime
import multiprocessing as mp
import os
import signal
import socket
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from multiprocessing.connection import wait
from typing import Any

from dnnrepro.core.errors import ConfigError, DnnreproError

_PR_SET_PDEATHSIG = 1


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _die_with_parent(parent_pid: int) -> None:
    """Make this worker exit when the launcher dies (kernel signal on Linux, else a watch thread)."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(Exception):  # no libc/prctl: the watch thread still covers it
            import ctypes

            ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)

    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(0.5)
        os._exit(1)

    if os.getppid() != parent_pid:  # the launcher died before the signal was armed
        os._exit(1)
    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def _entry(
    fn, rank, world, addr, port, args, conn, collective_timeout_s, threads, parent_pid, backend
):
    _die_with_parent(parent_pid)
    os.environ["OMP_NUM_THREADS"] = str(threads)
    import torch
    import torch.distributed as dist

    torch.set_num_threads(threads)
    try:
        dist.init_process_group(
            backend,
            init_method=f"tcp://{addr}:{port}",
            rank=rank,
            world_size=world,
            timeout=datetime.timedelta(seconds=collective_timeout_s),
        )
        message = ("ok", fn(rank, world, args))
    except BaseException as exc:  # report everything: the parent turns it into one clear error
        last = traceback.format_exception_only(type(exc), exc)[-1].strip()
        message = ("error", last[:500])
    try:
        conn.send(message)
    except OSError:  # the launcher is gone: nobody to tell
        os._exit(1)
    except Exception as exc:  # e.g. an unpicklable return value
        with contextlib.suppress(OSError):
            conn.send(("error", f"cannot send the result back: {type(exc).__name__}: {exc}"[:500]))
    conn.close()
    if dist.is_initialized():
        dist.destroy_process_group()


@contextlib.contextmanager
def _sigint_blocked() -> Iterator[None]:
    """Start children with SIGINT ignored: on the main thread its handler is SIG_IGN meanwhile
    (children inherit it across exec; a Ctrl-C in these few milliseconds is lost, not deferred);
    elsewhere (signal handlers can only change there) SIGINT is blocked in this thread, which
    children inherit too, and a Ctrl-C that arrives meanwhile is delivered when the block ends."""
    if threading.current_thread() is threading.main_thread():
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
        try:
            yield
        finally:  # None: a handler set outside Python; Python's own is the nearest
            signal.signal(
                signal.SIGINT, signal.default_int_handler if previous is None else previous
            )
        return
    if not hasattr(signal, "pthread_sigmask"):
        yield
        return
    old = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


def _exit_cause(proc) -> str:
    code = proc.exitcode
    if code is not None and code < 0:
        with contextlib.suppress(ValueError):
            return f"process killed by {signal.Signals(-code).name}"
    return f"process died with exit code {code}"


def _is_stopped(pid: int | None) -> bool:
    """Whether ``pid`` is in the stopped state (SIGSTOP / SIGTSTP); False where /proc is absent."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] in ("T", "t")
    except (OSError, IndexError):
        return False


def _stop(procs: list, grace_s: float) -> None:
    """SIGTERM every live worker, SIGKILL those still there after ``grace_s``, reap them all."""
    for p in procs:
        if p.is_alive():
            p.terminate()
    deadline = time.monotonic() + grace_s
    for p in procs:
        p.join(max(0.0, deadline - time.monotonic()))
    for p in procs:
        if p.is_alive():
            p.kill()  # also ends a stopped process, which SIGTERM does not
    for p in procs:
        p.join(grace_s)


def launch(
    fn: Callable[[int, int, Any], Any],
    workers: int,
    args: Any = None,
    *,
    timeout_s: float = 600,
    collective_timeout_s: float = 60,
    threads: int = 1,
    addr: str = "127.0.0.1",
    grace_s: float = 3.0,
    backend: str = "gloo",
) -> list[Any]:
    """Run ``fn`` on ``workers`` gloo processes; returns the values of ranks 0..N-1 in order.

    ``backend``: the process group's backend ("gloo"; "nccl" for the GPU check).

    Ends within about ``timeout_s + 2 * grace_s`` seconds whatever the workers do.
    """
    if not isinstance(workers, int) or workers < 1:
        raise ConfigError(f"workers must be an integer >= 1, not {workers!r}")
    ctx = mp.get_context("spawn")
    port = free_port()
    procs: list = []
    conns: dict[int, Any] = {}
    values: dict[int, Any] = {}
    errors: dict[int, str] = {}
    first_error_at = None
    try:
        with _sigint_blocked():
            for r in range(workers):
                reader, writer = ctx.Pipe(duplex=False)
                entry_args = (fn, r, workers, addr, port, args, writer)
                entry_args += (collective_timeout_s, threads, os.getpid(), backend)
                p = ctx.Process(target=_entry, args=entry_args, daemon=True)
                p.start()
                writer.close()  # the child holds the only write end: EOF when it dies
                procs.append(p)
                conns[r] = reader
        deadline = time.monotonic() + timeout_s
        while len(values) + len(errors) < workers:
            now = time.monotonic()
            if now >= deadline:
                for r in range(workers):
                    if r not in values and r not in errors:
                        stopped = " (the process is stopped)" if _is_stopped(procs[r].pid) else ""
                        errors[r] = f"no result within {timeout_s:g} s{stopped}"
                break
            if first_error_at is not None and now >= first_error_at + grace_s:
                failed = ", ".join(str(r) for r in sorted(errors))
                for r in range(workers):
                    if r not in values and r not in errors:
                        errors[r] = f"stopped after rank {failed} failed"
                break
            pending = [r for r in range(workers) if r not in values and r not in errors]
            limit = deadline if first_error_at is None else min(deadline, first_error_at + grace_s)
            waitables = [conns[r] for r in pending] + [procs[r].sentinel for r in pending]
            wait(waitables, timeout=max(0.0, min(limit - now, 1.0)))
            for r in pending:
                if conns[r].poll():
                    try:
                        status, value = conns[r].recv()
                        (values if status == "ok" else errors)[r] = value
                        continue
                    except (EOFError, OSError):
                        pass  # the worker died; its exit code follows
                if not procs[r].is_alive():
                    errors[r] = _exit_cause(procs[r])
            if errors and first_error_at is None:
                first_error_at = time.monotonic()
        if not errors:  # every result is in: let the workers leave the group on their own
            end = time.monotonic() + grace_s
            for p in procs:
                p.join(max(0.0, end - time.monotonic()))
    finally:
        _stop(procs, grace_s)
        for c in conns.values():
            c.close()
    if errors:
        detail = "; ".join(f"rank {r}: {msg}" for r, msg in sorted(errors.items()))
        raise DnnreproError(f"distributed run with {workers} workers failed: {detail}")
    return [values[r] for r in range(workers)]
