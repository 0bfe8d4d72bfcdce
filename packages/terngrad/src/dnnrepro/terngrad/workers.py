"""Worker functions for :func:`dnnrepro.terngrad.launch.launch` (module level, so spawn can import them).

- :func:`check_worker`: a few DDP steps of a tiny fixed model per wire format; returns the decoded
  gradients, a digest of the parameters and the bytes handed to each collective (the tests compare
  them across ranks and with the emulator).
- :func:`train_worker`: real data-parallel training with fp32 DDP or the TernGrad hook (the
  ``dnnrepro terngrad train`` command and the small profile's gloo runs).
"""

from __future__ import annotations

import collections
import hashlib
import os
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from .hook import TernGradState, terngrad_hook
from .wire import DEFAULT_CODEC, DEFAULT_WIRE


def check_model(seed: int = 0) -> nn.Module:
    """A tiny fixed MLP (16 -> 12 -> 4, 256 parameters): names fc1.weight, fc1.bias, fc2.*."""
    torch.manual_seed(seed)
    layers = [("fc1", nn.Linear(16, 12)), ("act", nn.ReLU()), ("fc2", nn.Linear(12, 4))]
    return nn.Sequential(collections.OrderedDict(layers))


def check_batch(
    seed: int, rank: int, step: int, batch: int = 6
) -> tuple[torch.Tensor, torch.Tensor]:
    """Rank ``rank``'s batch at ``step``: (batch, 16) float32 inputs and labels in 0..3."""
    gen = torch.Generator().manual_seed(seed * 1_000_003 + rank * 1009 + step)
    return torch.randn(batch, 16, generator=gen), torch.randint(0, 4, (batch,), generator=gen)


def param_digest(model: nn.Module) -> str:
    """sha256 over the raw bytes of every parameter (bit-identity across ranks)."""
    h = hashlib.sha256()
    for _, p in sorted(model.named_parameters()):
        h.update(p.detach().cpu().contiguous().view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def check_worker(rank: int, world: int, args: dict[str, Any]) -> dict[str, Any]:
    """For each hook option set in ``args['configs']``: ``args['steps']`` SGD steps under DDP.

    Returns {config label: {"grads": [per step {name: list}], "digest", "wire_total", "wire_steps",
    "skipped", "buckets" (buckets of the last step), "error"}}. A config's (or args') ``nan_rank`` puts NaN into that rank's input at step
    0; a config with ``expect_error`` records the error its first failing step raises.
    ``args['die_rank']`` makes that rank exit abruptly before its step ``args['die_step']``
    (default 0: before the first step; later steps: the peers fail inside the hook's collectives,
    with the dying rank's collectives of that step never issued). Further config keys
    (not hook options): ``ddp`` (DistributedDataParallel keyword arguments, e.g. static_graph),
    ``dtype`` ("bfloat16", "float16": the model's dtype), ``accumulate`` (k: k - 1 micro-batches
    under ``no_sync()``, then one synced; micro-batch i of step t is ``check_batch(seed, rank,
    t * k + i)``) and ``register`` (True: :func:`~dnnrepro.terngrad.hook.register` instead of
    ``register_comm_hook``).
    """
    import torch.nn.functional as F

    from .hook import register

    dying = args.get("die_rank") == rank
    if dying and args.get("die_step", 0) == 0:
        os._exit(3)
    out = {}
    for label, options in args["configs"].items():
        options = dict(options)
        nan_rank = options.pop("nan_rank", args.get("nan_rank"))
        expect_error = options.pop("expect_error", False)
        ddp_options = options.pop("ddp", {})
        dtype = getattr(torch, options.pop("dtype", "float32"))
        accumulate = options.pop("accumulate", 1)
        use_register = options.pop("register", False)
        device = torch.device(options.pop("device", "cpu"))
        if device.type == "cuda":
            device = torch.device("cuda", rank % torch.cuda.device_count())
            torch.cuda.set_device(device)
        model = check_model(args.get("seed", 0)).to(device=device, dtype=dtype)
        ddp = nn.parallel.DistributedDataParallel(
            model, bucket_cap_mb=args.get("bucket_cap_mb", 25), **ddp_options
        )
        if use_register:
            state = register(ddp, **options)
        else:
            state = TernGradState(model=model, **options)
            ddp.register_comm_hook(state, terngrad_hook)
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        grads, error = [], None
        for step in range(args.get("steps", 2)):
            if dying and step == args.get("die_step", 0):
                os._exit(3)
            opt.zero_grad(set_to_none=True)
            try:
                for micro in range(accumulate):
                    x, y = check_batch(args.get("seed", 0), rank, step * accumulate + micro)
                    if nan_rank == rank and step == 0:
                        x[0, 0] = float("nan")
                    if micro < accumulate - 1:
                        with ddp.no_sync():
                            F.cross_entropy(ddp(x.to(device, dtype)), y.to(device)).backward()
                    else:
                        F.cross_entropy(ddp(x.to(device, dtype)), y.to(device)).backward()
            except Exception as exc:  # every rank fails at the same allreduced flag
                if not expect_error:
                    raise
                error = f"{type(exc).__name__}: {exc}"
                break
            grads.append(
                {n: p.grad.float().cpu().reshape(-1).tolist() for n, p in model.named_parameters()}
            )
            if state.step_ok():
                opt.step()
        out[label] = {
            "grads": grads,
            "digest": param_digest(model),
            "wire_total": dict(state.wire_stats["total"]),
            "wire_steps": list(state.wire_stats["steps"]),
            "skipped": state.skipped_steps,
            "buckets": len(state.wire_stats["buckets"]),
            "error": error,
        }
        dist.barrier()
    return out


def train_worker(rank: int, world: int, args: dict[str, Any]) -> dict[str, Any]:
    """Train args['model'] on args['dataset'] with total batch args['batch'] split over the ranks.

    args: model ("lenet" | "mlp"), dataset, data_dir, steps (or epochs and max_steps), lr, momentum,
    weight_decay, seed, method ("fp32" | "terngrad"), hook options (clip_c, wire, codec,
    min_numel, exclude, scaler_sharing), checkpoint_dir. Rank 0 returns metrics; every rank
    returns its parameter digest and wire bytes.
    """
    import time

    from dnnrepro.core import data, train

    from .models import build_model

    x, y = data.load(args["dataset"], "train", args.get("data_dir"))
    if args.get("train_examples"):
        x, y = x[: args["train_examples"]], y[: args["train_examples"]]
    xt, yt = data.load(args["dataset"], "test", args.get("data_dir"))
    torch.manual_seed(args["seed"])
    model = build_model(args["model"], x.shape[1:])
    wd = args.get("weight_decay", 0.0)
    state = None
    if args["method"] == "terngrad":
        state = TernGradState(
            model=model,
            clip_c=args.get("clip_c", 2.5),
            wire=args.get("wire", DEFAULT_WIRE),
            codec=args.get("codec", DEFAULT_CODEC),
            min_numel=args.get("min_numel", 0),
            exclude=tuple(args.get("exclude", ())),
            scaler_sharing=args.get("scaler_sharing", True),
            seed=args["seed"],
        )
    # a job gives steps (the schedule spans them) or epochs (optionally cut by max_steps)
    length = (
        {"steps": args["steps"]}
        if args.get("steps")
        else {"epochs": args.get("epochs", 1), "max_steps": args.get("max_steps")}
    )
    config = train.TrainConfig(
        **length,
        batch_size=args["batch"] // world,
        lr=args.get("lr", 0.01),
        momentum=args.get("momentum", 0.9),
        schedule=args.get("schedule", "constant"),
        power=args.get("power", 1.0),
        seed=args["seed"],
        progress=False,
    )

    # Weight decay as a loss penalty, not TrainConfig.weight_decay: fit adds the latter to the
    # gradient after backward, i.e. after the DDP hook has already exchanged it. The authors put
    # the decay in the loss, so it must reach the hook and be ternarized with the data gradient.
    def decay(m: nn.Module) -> torch.Tensor:
        return 0.5 * wd * sum((p * p).sum() for p in m.parameters())

    t0 = time.perf_counter()
    result = train.fit(
        model,
        (x, y),
        config,
        test=(xt, yt) if rank == 0 else None,
        penalties=[decay] if wd else [],
        comm_hook=(state, terngrad_hook) if state is not None else None,
        checkpoint_dir=args.get("checkpoint_dir"),
    )
    return {
        "rank": rank,
        "final": result.final,
        "steps": result.steps,
        "seconds": time.perf_counter() - t0,
        "digest": param_digest(model),
        "wire_total": dict(state.wire_stats["total"]) if state is not None else {},
    }


def train_jobs_worker(rank: int, world: int, args: dict[str, Any]) -> list[dict[str, Any]]:
    """Run :func:`train_worker` for each job of ``args['jobs']`` in turn (one process start)."""
    return [train_worker(rank, world, job) for job in args["jobs"]]


def gloo_worker(rank: int, world: int, args: dict[str, Any]) -> dict[str, Any]:
    """One process start for the reproduction: training jobs, then the byte-count checks."""
    out: dict[str, Any] = {
        "train": train_jobs_worker(rank, world, args) if args.get("jobs") else []
    }
    out["check"] = check_worker(rank, world, args["check"]) if args.get("check") else {}
    return out


def probe_worker(rank: int, world: int, args: dict[str, Any]) -> int:
    """A worker for the launcher's fault tests: after a first barrier it writes its pid to
    ``<args['ready_dir']>/rank<r>.pid`` (when given), then all-reduces a counter every 50 ms for
    about ``args['seconds']`` (so a dead or stopped peer fails it). Returns the counter's sum."""
    import pathlib
    import time

    dist.barrier()
    if args.get("ready_dir"):
        path = pathlib.Path(args["ready_dir"]) / f"rank{rank}.pid"
        tmp = path.with_suffix(".tmp")
        tmp.write_text(str(os.getpid()))
        tmp.rename(path)
    total = torch.zeros(1)
    for _ in range(max(1, round(args.get("seconds", 0.0) / 0.05))):  # same count on every rank
        step = torch.ones(1)
        dist.all_reduce(step)
        total += step
        time.sleep(0.05)
    return int(total.item())


def hook_return_worker(rank: int, world: int, args: dict[str, Any]) -> dict[str, list[bool]]:
    """For the asynchronous hook's test: whether each hook call's Future was already done when
    the hook returned, with ``async_op`` on ("async") and off ("sync"). Rank 1 sleeps
    ``args['delay_s']`` before every backward, so rank 0's collectives cannot finish while its
    hook runs. ``args``: ``steps``, ``bucket_cap_mb``, ``delay_s``. Lives here, not in the test
    module, because spawned workers must import it by name."""
    import time

    import torch.nn.functional as F

    out = {}
    for mode in (True, False):
        model = check_model(0)
        ddp = nn.parallel.DistributedDataParallel(model, bucket_cap_mb=args["bucket_cap_mb"])
        done_at_return: list[bool] = []

        def hook(state, bucket, done_at_return=done_at_return):
            fut = terngrad_hook(state, bucket)
            done_at_return.append(fut.done())
            return fut

        ddp.register_comm_hook(TernGradState(model=model, async_op=mode), hook)
        for step in range(args["steps"]):
            x, y = check_batch(0, rank, step)
            loss = F.cross_entropy(ddp(x), y)
            if rank == 1:
                time.sleep(args["delay_s"])
            loss.backward()
        out["async" if mode else "sync"] = done_at_return
    return out
