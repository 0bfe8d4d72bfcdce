"""The one training loop: config, fit, evaluate, checkpoints and resume, DDP.

Order of one optimizer step (the Caffe order the papers' code uses):

1. forward, loss = loss_fn(model, x, y) + sum of penalties(model)
2. backward (under DDP the gradient all-reduce, or a comm hook such as TernGrad, runs here)
3. weight decay added to the gradients by this loop: g += weight_decay * w (an L2 term, identical to
   torch's coupled weight_decay, but done here so that gradient hooks see it)
4. grad hooks(model, step): e.g. force regularization, pruning masks on gradients
5. optimizer step (sgd, momentum, adam; their own weight_decay is 0)
6. step hooks(model, step): e.g. zeroing tiny weights, re-applying masks

Resume: with ``checkpoint_dir`` set, the loop saves model, optimizer, RNG state, progress and
history every ``checkpoint_every`` steps and at each epoch end; a run killed at any point and
restarted with the same arguments continues from the last checkpoint. Batch order is a function of
(seed, epoch) only, and RNG state is restored, so a resumed run ends with the same metrics as an
uninterrupted one.

Under ``torchrun`` (torch.distributed initialized) the model is wrapped in
DistributedDataParallel, each rank trains on its shard of every epoch's permutation with
``batch_size`` examples per rank, and only rank 0 writes checkpoints.
"""

from __future__ import annotations

import dataclasses
import math
import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from . import checkpoint
from .errors import ConfigError, TrainingDiverged

Batch = tuple[torch.Tensor, torch.Tensor]
LossFn = Callable[[nn.Module, torch.Tensor, torch.Tensor], torch.Tensor]
Penalty = Callable[[nn.Module], torch.Tensor]
Hook = Callable[[nn.Module, int], None]

OPTIMIZERS = ("sgd", "momentum", "adam")
SCHEDULES = ("constant", "step", "poly", "cosine")


@dataclass
class TrainConfig:
    """Hyper-parameters of one training run; :meth:`validate` runs before any work.

    lr schedules are evaluated per optimizer step: ``step`` multiplies by ``gamma`` at each epoch in
    ``milestones``; ``poly`` is lr * (1 - t/T)^power; ``cosine`` is lr * (1 + cos(pi t/T)) / 2,
    with t the step and T the total number of steps.
    """

    epochs: int = 10
    batch_size: int = 64
    lr: float = 0.01
    optimizer: str = "momentum"
    momentum: float = 0.9
    weight_decay: float = 0.0
    schedule: str = "constant"
    milestones: tuple[int, ...] = ()
    gamma: float = 0.1
    power: float = 1.0
    betas: tuple[float, float] = (0.9, 0.999)
    seed: int = 0
    threads: int | None = None
    eval_batch_size: int = 1000
    checkpoint_every: int = 0  # steps between mid-epoch checkpoints; 0: only at epoch ends
    max_steps: int | None = None  # stop early after this many steps (smoke runs)
    progress: bool | None = None  # None: a progress bar only when stderr is a TTY

    def validate(self) -> TrainConfig:
        """Raise ConfigError on the first out-of-range value; returns self."""
        checks = [
            (isinstance(self.epochs, int) and self.epochs >= 1, "epochs must be an integer >= 1"),
            (
                isinstance(self.batch_size, int) and self.batch_size >= 1,
                "batch_size must be an integer >= 1",
            ),
            (math.isfinite(self.lr) and self.lr > 0, "lr must be a finite number > 0"),
            (self.optimizer in OPTIMIZERS, f"optimizer must be one of {', '.join(OPTIMIZERS)}"),
            (0 <= self.momentum < 1, "momentum must be in [0, 1)"),
            (
                math.isfinite(self.weight_decay) and self.weight_decay >= 0,
                "weight_decay must be >= 0",
            ),
            (self.schedule in SCHEDULES, f"schedule must be one of {', '.join(SCHEDULES)}"),
            (
                all(isinstance(m, int) and m >= 1 for m in self.milestones),
                "milestones must be epochs >= 1",
            ),
            (0 < self.gamma <= 1, "gamma must be in (0, 1]"),
            (self.power > 0, "power must be > 0"),
            (all(0 <= b < 1 for b in self.betas), "betas must be in [0, 1)"),
            (self.threads is None or self.threads >= 1, "threads must be >= 1"),
            (self.eval_batch_size >= 1, "eval_batch_size must be >= 1"),
            (self.checkpoint_every >= 0, "checkpoint_every must be >= 0"),
            (self.max_steps is None or self.max_steps >= 1, "max_steps must be >= 1"),
        ]
        for ok, message in checks:
            if not ok:
                raise ConfigError(f"invalid training config: {message}")
        return self

    def lr_at(self, step: int, steps_per_epoch: int) -> float:
        """Learning rate for optimizer step ``step`` (0-based)."""
        total = max(1, self.epochs * steps_per_epoch)
        if self.schedule == "step":
            epoch = step // steps_per_epoch
            return self.lr * self.gamma ** sum(1 for m in self.milestones if epoch >= m)
        if self.schedule == "poly":
            return self.lr * max(0.0, 1 - step / total) ** self.power
        if self.schedule == "cosine":
            return self.lr * (1 + math.cos(math.pi * min(step, total) / total)) / 2
        return self.lr


@dataclass
class TrainResult:
    """What fit returns: per-epoch history, the final metrics, steps done, where it resumed from."""

    history: list[dict[str, float]] = field(default_factory=list)
    final: dict[str, float] = field(default_factory=dict)
    steps: int = 0
    resumed_from_step: int | None = None
    seconds: float = 0.0


def seed_everything(seed: int) -> None:
    """Seed torch's global RNG (model init, dropout). Data order has its own generator in fit."""
    torch.manual_seed(seed)


def _rank_world() -> tuple[int, int]:
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def _check_data(data: Batch, what: str) -> Batch:
    if not (isinstance(data, tuple | list) and len(data) == 2):
        raise ConfigError(f"{what} must be a tuple (images, labels)")
    x, y = data
    if not (torch.is_tensor(x) and torch.is_tensor(y)) or len(x) != len(y) or len(x) == 0:
        raise ConfigError(f"{what}: images and labels must be non-empty tensors of equal length")
    return x, y


def cross_entropy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """The default loss: mean softmax cross-entropy of model(x) against labels y."""
    return F.cross_entropy(model(x), y)


@torch.no_grad()
def evaluate(
    model: nn.Module,
    data: Batch,
    batch_size: int = 1000,
    transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> dict[str, float]:
    """Mean cross-entropy loss and accuracy (fraction in [0, 1]) of ``model`` on ``data``."""
    x, y = _check_data(data, "evaluation data")
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    loss_sum, correct = 0.0, 0
    try:
        for i in range(0, len(x), batch_size):
            xb, yb = x[i : i + batch_size].to(device), y[i : i + batch_size].to(device)
            if transform is not None:
                xb = transform(xb)
            logits = model(xb)
            loss_sum += float(F.cross_entropy(logits, yb, reduction="sum"))
            correct += int((logits.argmax(1) == yb).sum())
    finally:
        model.train(was_training)
    return {"loss": loss_sum / len(x), "accuracy": correct / len(x)}


def make_optimizer(params, config: TrainConfig) -> torch.optim.Optimizer:
    """The optimizer of ``config`` with weight_decay 0 (the loop adds decay to the gradients)."""
    if config.optimizer == "adam":
        return torch.optim.Adam(params, lr=config.lr, betas=config.betas)
    momentum = config.momentum if config.optimizer == "momentum" else 0.0
    return torch.optim.SGD(params, lr=config.lr, momentum=momentum)


def _optim_to_tensors(opt: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict]:
    state = opt.state_dict()
    tensors, scalars = {}, {}
    for idx, per_param in state["state"].items():
        for key, value in per_param.items():
            if torch.is_tensor(value):
                tensors[f"optim.{idx}.{key}"] = value
            else:
                scalars[f"{idx}.{key}"] = value
    return tensors, {"param_groups": state["param_groups"], "scalars": scalars}


def _optim_from_tensors(opt: torch.optim.Optimizer, tensors: dict, meta: dict) -> None:
    state: dict[int, dict[str, Any]] = {}
    for name, value in tensors.items():
        if name.startswith("optim."):
            _, idx, key = name.split(".", 2)
            state.setdefault(int(idx), {})[key] = value
    for name, value in meta["scalars"].items():
        idx, key = name.split(".", 1)
        state.setdefault(int(idx), {})[key] = value
    opt.load_state_dict({"state": state, "param_groups": meta["param_groups"]})


class _Progress:
    def __init__(self, enabled: bool, total: int, initial: int):
        self.bar = None
        if enabled:
            from tqdm import tqdm

            self.bar = tqdm(total=total, initial=initial, unit="step", leave=False)

    def update(self, loss: float) -> None:
        if self.bar is not None:
            self.bar.update(1)
            self.bar.set_postfix(loss=f"{loss:.4f}", refresh=False)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def fit(
    model: nn.Module,
    train: Batch,
    config: TrainConfig,
    *,
    test: Batch | None = None,
    loss_fn: LossFn = cross_entropy,
    penalties: Sequence[Penalty] = (),
    grad_hooks: Sequence[Hook] = (),
    step_hooks: Sequence[Hook] = (),
    transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
    checkpoint_dir: str | os.PathLike | None = None,
    comm_hook: tuple[Any, Callable] | None = None,
    params: Sequence[nn.Parameter] | None = None,
) -> TrainResult:
    """Train ``model`` on ``train`` = (images, labels) with ``config``; returns a TrainResult.

    ``penalties`` are added to the loss; ``grad_hooks`` run after backward and weight decay, before
    the optimizer step; ``step_hooks`` after it (see the module doc for the order). ``transform``
    maps an input batch before the forward pass (normalization). ``params`` limits training to a
    subset (default: all parameters that require grad). ``comm_hook=(state, hook)`` is registered
    on the DDP model when torch.distributed is initialized.
    """
    config.validate()
    x_train, y_train = _check_data(train, "training data")
    if test is not None:
        _check_data(test, "test data")
    if config.threads:
        torch.set_num_threads(config.threads)
    rank, world = _rank_world()
    device = next(model.parameters()).device

    net: nn.Module = model
    if world > 1:
        net = nn.parallel.DistributedDataParallel(model)
        if comm_hook is not None:
            net.register_comm_hook(*comm_hook)
    trainable = (
        list(params) if params is not None else [p for p in model.parameters() if p.requires_grad]
    )
    optimizer = make_optimizer(trainable, config)

    per_rank = len(x_train) // world
    steps_per_epoch = max(1, math.ceil(per_rank / config.batch_size))
    total_steps = config.epochs * steps_per_epoch
    if config.max_steps is not None:
        total_steps = min(total_steps, config.max_steps)

    result = TrainResult()
    step, epoch, batch_in_epoch = 0, 0, 0
    loss_value = float("nan")  # the last step's loss; restored on resume (a finished run too)
    stem = Path(checkpoint_dir) / "train" if checkpoint_dir is not None else None
    if stem is not None and checkpoint.exists(stem):
        tensors, meta = checkpoint.load(stem)
        if meta.get("config") != _config_key(config):
            from .errors import IntegrityError

            raise IntegrityError(
                f"{stem}.json was written by a run with another config; delete {checkpoint_dir} "
                "to start over, or rerun with the same settings to resume"
            )
        model.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
        _optim_from_tensors(optimizer, tensors, meta["optim"])
        torch.set_rng_state(tensors["rng.torch"])
        step, epoch, batch_in_epoch = meta["step"], meta["epoch"], meta["batch_in_epoch"]
        result.history = meta["history"]
        last = meta.get("last_loss")
        loss_value = float("nan") if last is None else float(last)
        result.resumed_from_step = step
        result.seconds = meta["seconds"]
    else:
        torch.manual_seed(config.seed)

    def save_checkpoint() -> None:
        if stem is None:
            return
        if rank == 0:
            tensors = {f"model.{k}": v for k, v in model.state_dict().items()}
            opt_tensors, opt_meta = _optim_to_tensors(optimizer)
            tensors.update(opt_tensors)
            tensors["rng.torch"] = torch.get_rng_state()
            meta = {
                "step": step,
                "epoch": epoch,
                "batch_in_epoch": batch_in_epoch,
                "history": result.history,
                "optim": opt_meta,
                "last_loss": loss_value if math.isfinite(loss_value) else None,
                "seconds": elapsed(),
                "config": _config_key(config),
            }
            checkpoint.save(stem, tensors, meta, tag=str(step))
        if world > 1:
            dist.barrier()

    start = time.perf_counter()
    seconds_before = result.seconds

    def elapsed() -> float:
        return seconds_before + time.perf_counter() - start

    show = sys.stderr.isatty() if config.progress is None else config.progress
    bar = _Progress(show and rank == 0, total_steps, step)
    model.train()
    try:
        while step < total_steps and epoch < config.epochs:
            order = _epoch_order(len(x_train), config.seed, epoch)[rank * per_rank :][:per_rank]
            running, seen = 0.0, 0
            while batch_in_epoch < steps_per_epoch and step < total_steps:
                idx = order[batch_in_epoch * config.batch_size :][: config.batch_size]
                xb, yb = x_train[idx].to(device), y_train[idx].to(device)
                if transform is not None:
                    xb = transform(xb)
                for group in optimizer.param_groups:
                    group["lr"] = config.lr_at(step, steps_per_epoch)
                optimizer.zero_grad(set_to_none=True)
                loss = loss_fn(net, xb, yb)
                for penalty in penalties:
                    loss = loss + penalty(model)
                if not torch.isfinite(loss):
                    raise TrainingDiverged(
                        f"loss became {float(loss.detach())} at step {step}; lower lr or the penalty strength"
                    )
                loss.backward()
                if config.weight_decay:
                    with torch.no_grad():
                        for p in trainable:
                            if p.grad is not None:
                                p.grad.add_(p, alpha=config.weight_decay)
                for hook in grad_hooks:
                    hook(model, step)
                optimizer.step()
                for hook in step_hooks:
                    hook(model, step)
                loss_value = float(loss.detach())
                running += loss_value * len(idx)
                seen += len(idx)
                step += 1
                batch_in_epoch += 1
                bar.update(loss_value)
                if config.checkpoint_every and step % config.checkpoint_every == 0:
                    save_checkpoint()
            if batch_in_epoch >= steps_per_epoch:
                record = {
                    "epoch": epoch + 1,
                    "step": step,
                    "lr": config.lr_at(step - 1, steps_per_epoch),
                    "train_loss": running / max(seen, 1),
                    "seconds": elapsed(),
                }
                if test is not None:
                    metrics = evaluate(model, test, config.eval_batch_size, transform)
                    record.update(test_loss=metrics["loss"], test_accuracy=metrics["accuracy"])
                result.history.append(record)
                epoch += 1
                batch_in_epoch = 0
                save_checkpoint()
    finally:
        bar.close()
    if batch_in_epoch:  # stopped by max_steps inside an epoch
        save_checkpoint()
    result.steps = step
    result.seconds = elapsed()
    result.final = {"train_loss": loss_value}
    if test is not None:
        metrics = evaluate(model, test, config.eval_batch_size, transform)
        result.final.update(test_loss=metrics["loss"], test_accuracy=metrics["accuracy"])
    return result


def _epoch_order(n: int, seed: int, epoch: int) -> torch.Tensor:
    """The permutation of ``n`` examples for ``epoch``: a function of (seed, epoch) only."""
    gen = torch.Generator().manual_seed(seed * 100_003 + epoch)
    return torch.randperm(n, generator=gen)


def _config_key(config: TrainConfig) -> dict:
    """The parts of the config that must match for a checkpoint to be resumed."""
    key = dataclasses.asdict(config)
    for volatile in ("threads", "progress", "eval_batch_size", "checkpoint_every"):
        key.pop(volatile)
    return {k: list(v) if isinstance(v, tuple) else v for k, v in key.items()}
