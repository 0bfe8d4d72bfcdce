"""Checkpoints that load without executing code: safetensors for tensors, JSON for the rest.

A checkpoint named ``<stem>`` is two files in one folder:

- ``<stem>-<tag>.safetensors``: every tensor (model parameters and buffers under ``model.``,
  optimizer state under ``optim.<param index>.<key>``, RNG states under ``rng.``);
- ``<stem>.json``: the sidecar: which tensor file is current, its sha256, and everything that is
  not a tensor (step, epoch, optimizer hyper-parameters, metrics, caller metadata).

Writes are atomic and ordered (tensor file first, then the sidecar that points to it, then old
tensor files are removed), so a kill at any point leaves a loadable checkpoint. Loading checks the
tensor file's sha256 against the sidecar and raises IntegrityError naming the file on a mismatch.
Nothing here unpickles.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save
from torch import nn

from .errors import IntegrityError
from .io import sha256_bytes, write_bytes, write_json


def _sidecar(stem: Path) -> Path:
    return stem.with_name(stem.name + ".json")


def save(
    stem: str | os.PathLike, tensors: dict[str, torch.Tensor], meta: dict[str, Any], tag: str = "0"
) -> Path:
    """Write ``tensors`` and the JSON-able ``meta`` as checkpoint ``stem``; returns the sidecar path.

    ``tag`` distinguishes successive tensor files (e.g. the step) so the previous one survives
    until the new sidecar is in place.
    """
    stem = Path(stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    blob = st_save({k: v.detach().cpu().contiguous() for k, v in tensors.items()})
    tensor_file = stem.with_name(f"{stem.name}-{tag}.safetensors")
    write_bytes(tensor_file, blob)
    sidecar = _sidecar(stem)
    previous = None
    if sidecar.exists():
        try:
            previous = json.loads(sidecar.read_text())["tensor_file"]
        except (ValueError, KeyError):
            previous = None
    write_json(
        sidecar,
        {
            "tensor_file": tensor_file.name,
            "sha256": sha256_bytes(blob),
            "format": "dnnrepro-checkpoint-1",
            "meta": meta,
        },
    )
    if previous and previous != tensor_file.name:
        (stem.parent / previous).unlink(missing_ok=True)
    return sidecar


def exists(stem: str | os.PathLike) -> bool:
    """Whether a checkpoint sidecar for ``stem`` exists."""
    return _sidecar(Path(stem)).exists()


def load(stem: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Read checkpoint ``stem``: returns ``(tensors, meta)`` after checking the sha256."""
    stem = Path(stem)
    sidecar = _sidecar(stem)
    if not sidecar.exists():
        raise IntegrityError(f"{sidecar}: no such checkpoint; train first or check the path")
    try:
        record = json.loads(sidecar.read_text())
        tensor_file = stem.parent / record["tensor_file"]
        expected = record["sha256"]
    except (ValueError, KeyError) as exc:
        raise IntegrityError(
            f"{sidecar}: unreadable checkpoint sidecar ({exc}); delete the checkpoint and rerun"
        ) from exc
    if not tensor_file.exists():
        raise IntegrityError(f"{tensor_file}: missing (named by {sidecar}); delete both and rerun")
    blob = tensor_file.read_bytes()
    actual = sha256_bytes(blob)
    if actual != expected:
        raise IntegrityError(
            f"{tensor_file}: sha256 mismatch (expected {expected}, got {actual}); the checkpoint "
            "is truncated or altered: delete it and rerun, or restore it from data.dvc"
        )
    return st_load(blob), record["meta"]


def save_weights(
    stem: str | os.PathLike, model: nn.Module, meta: dict[str, Any] | None = None
) -> Path:
    """Save a model's parameters and buffers (``model.state_dict()``) as a checkpoint."""
    tensors = {f"model.{k}": v for k, v in model.state_dict().items()}
    return save(stem, tensors, meta or {}, tag="weights")


def load_weights(stem: str | os.PathLike, model: nn.Module) -> dict[str, Any]:
    """Load weights saved by :func:`save_weights` (or a training checkpoint) into ``model``.

    Returns the checkpoint's meta. Raises IntegrityError on a hash or shape mismatch.
    """
    tensors, meta = load(stem)
    state = {k[len("model.") :]: v for k, v in tensors.items() if k.startswith("model.")}
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        raise IntegrityError(f"{stem}: weights do not fit this model: {exc}") from exc
    return meta
