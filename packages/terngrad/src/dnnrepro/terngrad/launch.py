"""Start N gloo worker processes on this machine and collect their results, never hanging.

``launch(fn, workers, args)`` spawns ``workers`` processes (spawn start method), each joining one
torch.distributed gloo group on 127.0.0.1 and calling ``fn(rank, workers, args)`` (a module-level
function; its return value must be picklable). A worker that dies or raises makes :func:`launch`
raise one DnnreproError naming the rank and the cause, after the survivors fail their pending
collective (gloo reports the closed connection, or the group's ``collective_timeout_s`` expires)
or after ``timeout_s`` in total, whichever comes first; leftover processes are terminated.

Multi-machine runs use torchrun instead: the hook itself does not care how the group was made.
"""

from __future__ import annotations

import datetime
import multiprocessing as mp
import os
import queue
import socket
import time
import traceback
from collections.abc import Callable
from typing import Any

from dnnrepro.core.errors import ConfigError, DnnreproError


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _entry(fn, rank, world, addr, port, args, results, collective_timeout_s, threads):
    os.environ["OMP_NUM_THREADS"] = str(threads)
    import torch
    import torch.distributed as dist

    torch.set_num_threads(threads)
    try:
        dist.init_process_group(
            "gloo",
            init_method=f"tcp://{addr}:{port}",
            rank=rank,
            world_size=world,
            timeout=datetime.timedelta(seconds=collective_timeout_s),
        )
        value = fn(rank, world, args)
        results.put((rank, "ok", value))
    except BaseException as exc:  # report everything: the parent turns it into one clear error
        last = traceback.format_exception_only(type(exc), exc)[-1].strip()
        results.put((rank, "error", last[:500]))
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()


def launch(
    fn: Callable[[int, int, Any], Any],
    workers: int,
    args: Any = None,
    *,
    timeout_s: float = 600,
    collective_timeout_s: float = 60,
    threads: int = 1,
    addr: str = "127.0.0.1",
) -> list[Any]:
    """Run ``fn`` on ``workers`` gloo processes; returns the values of ranks 0..N-1 in order."""
    if not isinstance(workers, int) or workers < 1:
        raise ConfigError(f"workers must be an integer >= 1, not {workers!r}")
    ctx = mp.get_context("spawn")
    results = ctx.Queue()
    port = free_port()
    procs = [
        ctx.Process(
            target=_entry,
            args=(fn, r, workers, addr, port, args, results, collective_timeout_s, threads),
            daemon=True,
        )
        for r in range(workers)
    ]
    for p in procs:
        p.start()
    values: dict[int, Any] = {}
    errors: dict[int, str] = {}
    deadline = time.monotonic() + timeout_s
    try:
        while len(values) + len(errors) < workers:
            try:
                rank, status, value = results.get(timeout=0.5)
                (values if status == "ok" else errors)[rank] = value
                continue
            except queue.Empty:
                pass
            dead = [
                r
                for r, p in enumerate(procs)
                if not p.is_alive() and r not in values and r not in errors
            ]
            for r in dead:
                time.sleep(0.2)  # a result may still be in the pipe
                try:
                    while True:
                        rank, status, value = results.get_nowait()
                        (values if status == "ok" else errors)[rank] = value
                except queue.Empty:
                    pass
                if r not in values and r not in errors:
                    errors[r] = f"process died with exit code {procs[r].exitcode}"
            if errors and all(not p.is_alive() for p in procs):
                break
            if time.monotonic() > deadline:
                for r in range(workers):
                    if r not in values and r not in errors:
                        errors[r] = f"no result within {timeout_s:g} s"
                break
    finally:
        for p in procs:
            p.join(timeout=5)
            if p.is_alive():
                p.terminate()
                p.join(timeout=5)
    if errors:
        detail = "; ".join(f"rank {r}: {msg}" for r, msg in sorted(errors.items()))
        raise DnnreproError(f"distributed run with {workers} workers failed: {detail}")
    return [values[r] for r in range(workers)]
