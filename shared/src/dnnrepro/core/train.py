"""The one training loop: config, fit, evaluate, checkpoints and resume, DDP, callbacks.

Order of one optimizer step (the Caffe order the papers' code uses):

1. ``on_step_start(model, step)`` of each callback (the step's lr is already set)
2. forward and backward of the data loss: ``loss_fn(model, x, y, step)``, or ``grad_fn(model, x,
   y, step)`` when given, which computes the data gradient itself (e.g. N emulated workers) and
   returns the detached loss; under DDP the gradient all-reduce, or a comm hook such as TernGrad,
   runs inside this backward
3. backward of the penalties (sum of ``penalty(model)``), accumulated into the same ``.grad``
4. weight decay, the one place it is applied: ``g += weight_decay * w`` for every trained parameter
   with a gradient (an L2 term, identical to torch's coupled weight_decay; the optimizers get 0)
5. ``after_backward(model, step)`` of each callback: e.g. force regularization, pruning masks on
   gradients; they see data + penalty + decay gradients
6. optimizer step (sgd, momentum, adam)
7. ``after_step(model, step)`` of each callback: e.g. zeroing tiny weights, re-applying masks

At an epoch end ``on_epoch_end(model, epoch, record)`` runs (it may add entries to the history
record) before the checkpoint. ``on_train_start(model)`` runs once per call of fit, after a resume
has restored the callbacks' state.

Resume: with ``checkpoint_dir`` set, the loop saves model, optimizer, RNG state, progress, history
and every callback's ``state_dict()`` (tensors in the safetensors file under
``callback.<i>.<key>``, other values in the JSON sidecar) every ``checkpoint_every`` steps and at
each epoch end; a run killed at any point and restarted with the same arguments continues from the
last checkpoint. Batch order is a function of (seed, epoch) only, and RNG state is restored, so a
resumed run ends with the same weights as an uninterrupted one.

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
from .errors import ConfigError, DataError, IntegrityError, TrainingDiverged

Batch = tuple[torch.Tensor, torch.Tensor]
LossFn = Callable[[nn.Module, torch.Tensor, torch.Tensor, int], torch.Tensor]
GradFn = Callable[[nn.Module, torch.Tensor, torch.Tensor, int], torch.Tensor]
Penalty = Callable[[nn.Module], torch.Tensor]

OPTIMIZERS = ("sgd", "momentum", "adam")
SCHEDULES = ("constant", "step", "poly", "cosine", "inv")


@dataclass(kw_only=True)
class TrainConfig:
    """Hyper-parameters of one training run (keyword-only); :meth:`validate` runs before any work.

    The length is ``epochs`` (passes over the training set) or ``steps`` (optimizer steps; the last
    epoch may be partial): exactly one of them. ``max_steps`` only truncates a run (smoke runs):
    the lr schedule still spans the full length.

    lr schedules are evaluated per optimizer step: ``step`` multiplies by ``gamma`` at each epoch in
    ``milestones``; ``poly`` is lr * (1 - t/T)^power; ``cosine`` is lr * (1 + cos(pi t/T)) / 2;
    ``inv`` is lr * (1 + inv_alpha t/T)^-power (DANN's annealing, inv_alpha 10 and power 0.75 in
    Ganin et al.), with t the step and T the total number of steps.
    """

    epochs: int | None = None
    steps: int | None = None
    batch_size: int = 64
    lr: float = 0.01
    optimizer: str = "momentum"
    momentum: float = 0.9
    weight_decay: float = 0.0
    schedule: str = "constant"
    milestones: tuple[int, ...] = ()
    gamma: float = 0.1
    power: float = 1.0
    inv_alpha: float = 10.0
    betas: tuple[float, float] = (0.9, 0.999)
    seed: int = 0
    threads: int | None = None
    eval_batch_size: int = 1000
    checkpoint_every: int = 0  # steps between mid-epoch checkpoints; 0: only at epoch ends
    max_steps: int | None = None  # stop early after this many steps (smoke runs)
    progress: bool | None = None  # None: a progress bar only when stderr is a TTY

    def __post_init__(self) -> None:
        self._check_length()

    def _check_length(self) -> None:
        if (self.epochs is None) == (self.steps is None):
            raise ConfigError(
                "invalid training config: give exactly one of epochs= or steps= "
                f"(got epochs={self.epochs!r}, steps={self.steps!r})"
            )

    def validate(self) -> TrainConfig:
        """Raise ConfigError on the first out-of-range value; returns self."""
        self._check_length()

        def positive_int(v):
            return v is None or (isinstance(v, int) and not isinstance(v, bool) and v >= 1)

        checks = [
            (positive_int(self.epochs), "epochs must be an integer >= 1"),
            (positive_int(self.steps), "steps must be an integer >= 1"),
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
            (math.isfinite(self.inv_alpha) and self.inv_alpha > 0, "inv_alpha must be > 0"),
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

    def total_steps(self, steps_per_epoch: int) -> int:
        """Length of the schedule in optimizer steps (``max_steps`` not applied)."""
        if self.steps is not None:
            return self.steps
        return self.epochs * steps_per_epoch

    def lr_at(self, step: int, steps_per_epoch: int) -> float:
        """Learning rate for optimizer step ``step`` (0-based)."""
        total = max(1, self.total_steps(steps_per_epoch))
        if self.schedule == "step":
            epoch = step // steps_per_epoch
            return self.lr * self.gamma ** sum(1 for m in self.milestones if epoch >= m)
        if self.schedule == "poly":
            return self.lr * max(0.0, 1 - step / total) ** self.power
        if self.schedule == "cosine":
            return self.lr * (1 + math.cos(math.pi * min(step, total) / total)) / 2
        if self.schedule == "inv":
            return self.lr * (1 + self.inv_alpha * min(step, total) / total) ** -self.power
        return self.lr


class Callback:
    """Base class of fit's callbacks: override the hooks you need (each default does nothing).

    ``model`` is the unwrapped module (not the DDP wrapper); ``step`` is the 0-based optimizer
    step. A stateful callback returns its state from :meth:`state_dict` as a flat dict whose values
    are tensors or JSON values, and takes it back in :meth:`load_state_dict`: fit saves it in its
    checkpoint and restores it on resume, before ``on_train_start``.
    """

    def on_train_start(self, model: nn.Module) -> None:
        """Once per call of fit, before the first step (after a resume restored the state)."""

    def on_step_start(self, model: nn.Module, step: int) -> None:
        """Before the forward pass of ``step``."""

    def after_backward(self, model: nn.Module, step: int) -> None:
        """After backward, penalties and weight decay; before the optimizer step."""

    def after_step(self, model: nn.Module, step: int) -> None:
        """After the optimizer step."""

    def on_epoch_end(self, model: nn.Module, epoch: int, record: dict[str, float]) -> None:
        """After epoch ``epoch`` (0-based) ends; ``record`` is its history entry (may be extended)."""

    def state_dict(self) -> dict[str, Any]:
        """The state to checkpoint: {key: tensor or JSON value}; stateless callbacks return {}."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned."""


_HOOKS = ("on_train_start", "on_step_start", "after_backward", "after_step", "on_epoch_end")


def _check_callbacks(callbacks: Sequence[Any]) -> list[Any]:
    out = list(callbacks)
    for i, cb in enumerate(out):
        missing = [
            m for m in ("state_dict", "load_state_dict") if not callable(getattr(cb, m, None))
        ]
        if missing:
            raise ConfigError(
                f"callback {i} ({type(cb).__name__}) has no {' or '.join(missing)}; subclass "
                "dnnrepro.core.train.Callback (plain functions are not callbacks)"
            )
    return out


def _callback_state(callbacks: list[Any]) -> tuple[dict[str, torch.Tensor], list[dict]]:
    tensors: dict[str, torch.Tensor] = {}
    metas: list[dict] = []
    for i, cb in enumerate(callbacks):
        meta: dict[str, Any] = {}
        for key, value in cb.state_dict().items():
            if not isinstance(key, str):
                raise ConfigError(f"callback {i} ({type(cb).__name__}): state keys must be str")
            if torch.is_tensor(value):
                tensors[f"callback.{i}.{key}"] = value
            else:
                meta[key] = value
        metas.append(meta)
    return tensors, metas


def _restore_callbacks(callbacks: list[Any], tensors: dict, metas: list[dict], stem: Path) -> None:
    if len(metas) != len(callbacks):
        raise IntegrityError(
            f"{stem}.json holds the state of {len(metas)} callbacks, this run has "
            f"{len(callbacks)}; rerun with the same callbacks or delete the checkpoint folder"
        )
    states: list[dict[str, Any]] = [dict(m) for m in metas]
    for name, value in tensors.items():
        if name.startswith("callback."):
            _, idx, key = name.split(".", 2)
            states[int(idx)][key] = value
    for cb, state in zip(callbacks, states, strict=True):
        cb.load_state_dict(state)


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


def check_pair(data: Any, what: str) -> Batch:
    """Unpack ``data`` = (images, labels); DataError naming ``what`` unless it is a pair of
    non-empty tensors of equal length (first dimension)."""
    if not (isinstance(data, tuple | list) and len(data) == 2):
        raise DataError(f"{what} must be a pair (images, labels)")
    x, y = data
    if not (torch.is_tensor(x) and torch.is_tensor(y)) or len(x) != len(y) or len(x) == 0:
        raise DataError(f"{what}: images and labels must be non-empty tensors of equal length")
    return x, y


def cross_entropy(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, step: int = 0
) -> torch.Tensor:
    """The default loss: mean softmax cross-entropy of model(x) against labels y (step unused)."""
    return F.cross_entropy(model(x), y)


@torch.no_grad()
def evaluate(
    model: nn.Module,
    data: Batch,
    batch_size: int = 1000,
    transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> dict[str, float]:
    """Mean cross-entropy loss and accuracy (fraction in [0, 1]) of ``model`` on ``data``."""
    x, y = check_pair(data, "evaluation data")
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
            try:
                from tqdm import tqdm
            except ImportError:  # tqdm is an extra ([reproduce]): a library user may lack it
                return
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
    loss_fn: LossFn | None = None,
    penalties: Sequence[Penalty] = (),
    callbacks: Sequence[Callback] = (),
    transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
    checkpoint_dir: str | os.PathLike | None = None,
    comm_hook: tuple[Any, Callable] | None = None,
    params: Sequence[nn.Parameter] | None = None,
    grad_fn: GradFn | None = None,
) -> TrainResult:
    """Train ``model`` on ``train`` = (images, labels) with ``config``; returns a TrainResult.

    ``loss_fn(model, x, y, step) -> scalar`` is the data loss (default: cross-entropy).
    ``grad_fn(model, x, y, step) -> detached scalar`` replaces its forward and backward: it must
    fill ``p.grad`` itself (the loop has zeroed them); penalties and weight decay are still added.
    ``penalties`` (modules or callables ``model -> scalar``) are added to the loss. ``callbacks``
    are :class:`Callback` objects (see the module doc for when each hook runs); their state is in
    the checkpoint. ``transform`` maps an input batch before the forward pass (normalization).
    ``params`` limits training to a subset (default: all parameters that require grad).
    ``comm_hook=(state, hook)`` is registered on the DDP model when torch.distributed is
    initialized.
    """
    config.validate()
    if loss_fn is not None and grad_fn is not None:
        raise ConfigError("fit takes loss_fn or grad_fn, not both (grad_fn computes the loss)")
    loss_fn = cross_entropy if loss_fn is None else loss_fn
    callbacks = _check_callbacks(callbacks)
    x_train, y_train = check_pair(train, "training data")
    if test is not None:
        check_pair(test, "test data")
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
    planned = config.total_steps(steps_per_epoch)
    n_epochs = math.ceil(planned / steps_per_epoch)
    total_steps = planned if config.max_steps is None else min(planned, config.max_steps)

    result = TrainResult()
    step, epoch, batch_in_epoch = 0, 0, 0
    loss_value = float("nan")  # the last step's loss; restored on resume (a finished run too)
    stem = Path(checkpoint_dir) / "train" if checkpoint_dir is not None else None
    if stem is not None and checkpoint.exists(stem):
        tensors, meta = checkpoint.load(stem)
        if meta.get("config") != _config_key(config):
            raise IntegrityError(
                f"{stem}.json was written by a run with another config; delete {checkpoint_dir} "
                "to start over, or rerun with the same settings to resume"
            )
        model.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
        _optim_from_tensors(optimizer, tensors, meta["optim"])
        torch.set_rng_state(tensors["rng.torch"])
        _restore_callbacks(callbacks, tensors, meta.get("callbacks", []), stem)
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
            cb_tensors, cb_meta = _callback_state(callbacks)
            tensors.update(cb_tensors)
            meta = {
                "step": step,
                "epoch": epoch,
                "batch_in_epoch": batch_in_epoch,
                "history": result.history,
                "optim": opt_meta,
                "callbacks": cb_meta,
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

    def call(hook: str, *args) -> None:
        for cb in callbacks:
            fn = getattr(cb, hook, None)
            if fn is not None:
                fn(model, *args)

    show = sys.stderr.isatty() if config.progress is None else config.progress
    bar = _Progress(show and rank == 0, total_steps, step)
    model.train()
    call("on_train_start")
    try:
        while step < total_steps and epoch < n_epochs:
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
                call("on_step_start", step)
                if grad_fn is not None:
                    loss = grad_fn(net, xb, yb, step).detach()
                    extra = None
                    for penalty in penalties:
                        term = penalty(model)
                        extra = term if extra is None else extra + term
                    if extra is not None:
                        loss = loss + extra.detach()
                    _check_finite(loss, step)
                    if extra is not None and extra.requires_grad:
                        extra.backward()
                else:
                    loss = loss_fn(net, xb, yb, step)
                    for penalty in penalties:
                        loss = loss + penalty(model)
                    _check_finite(loss, step)
                    loss.backward()
                if config.weight_decay:
                    with torch.no_grad():
                        for p in trainable:
                            if p.grad is not None:
                                p.grad.add_(p, alpha=config.weight_decay)
                call("after_backward", step)
                optimizer.step()
                call("after_step", step)
                loss_value = float(loss.detach())
                running += loss_value * len(idx)
                seen += len(idx)
                step += 1
                batch_in_epoch += 1
                bar.update(loss_value)
                if config.checkpoint_every and step % config.checkpoint_every == 0:
                    save_checkpoint()
            # an epoch ends after a full pass, or at the planned end of a steps= run
            if batch_in_epoch >= steps_per_epoch or step >= planned:
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
                call("on_epoch_end", epoch, record)
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


def _check_finite(loss: torch.Tensor, step: int) -> None:
    if not torch.isfinite(loss):
        raise TrainingDiverged(
            f"loss became {float(loss.detach())} at step {step}; lower lr or the penalty strength"
        )


def _epoch_order(n: int, seed: int, epoch: int) -> torch.Tensor:
    """The permutation of ``n`` examples for ``epoch``: a function of (seed, epoch) only."""
    gen = torch.Generator().manual_seed(seed * 100_003 + epoch)
    return torch.randperm(n, generator=gen)


def _config_key(config: TrainConfig) -> dict:
    """The parts of the config that must match for a checkpoint to be resumed."""
    key = dataclasses.asdict(config)
    for volatile in ("threads", "progress", "eval_batch_size", "checkpoint_every"):
        key.pop(volatile)
    if (
        key["steps"] is None
    ):  # an epochs= run keys as before steps= existed (0.1 checkpoints resume)
        key.pop("steps")
    return {k: list(v) if isinstance(v, tuple) else v for k, v in key.items()}
