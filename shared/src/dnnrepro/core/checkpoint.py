"""Checkpoints that load without executing code: safetensors for tensors, JSON for the rest.

A checkpoint named ``<stem>`` is two files in one folder:

- ``<stem>-<tag>.safetensors``: every tensor (model parameters and buffers under ``model.``,
  optimizer state under ``optim.<param index>.<key>``, RNG states under ``rng.``);
- ``<stem>.json``: the sidecar: which tensor file is current, its sha256, and everything that is
  not a tensor (step, epoch, optimizer hyper-parameters, metrics, caller metadata).

A save never touches the live tensor file: it writes the new tensors under a name the sidecar
does not hold, then replaces the sidecar atomically, then removes the previous tensor file. So a
kill at any instant leaves a loadable checkpoint, the old one or the new one.

A sidecar is data, and data never steers a read or a deletion outside the checkpoint's folder:
the tensor file it names must be a plain file name of the form ``<stem>-<...>.safetensors`` (no
path separator, no ``..``). Loading checks the tensor file's sha256 against the sidecar; any
malformed sidecar or tensor file raises IntegrityError naming the file. Nothing here unpickles.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save
from torch import nn

from .errors import ConfigError, IntegrityError
from .io import sha256_bytes, write_bytes, write_json

FORMAT = "dnnrepro-checkpoint-1"
_SHA256 = re.compile(r"[0-9a-f]{64}")


def _sidecar(stem: Path) -> Path:
    return stem.with_name(stem.name + ".json")


def _valid_tensor_name(stem: Path, name: object) -> bool:
    """Whether ``name`` may be a tensor file of checkpoint ``stem``: a plain name in its folder."""
    return (
        isinstance(name, str)
        and "/" not in name
        and "\\" not in name
        and "\x00" not in name
        and ".." not in name
        and name.startswith(stem.name + "-")
        and name.endswith(".safetensors")
        and len(name) > len(stem.name) + 1 + len(".safetensors")
    )


def _current_tensor_name(stem: Path) -> str | None:
    """The tensor file the existing sidecar names, if the sidecar is readable and the name valid."""
    try:
        record = json.loads(_sidecar(stem).read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError):
        return None
    name = record.get("tensor_file") if isinstance(record, dict) else None
    return name if _valid_tensor_name(stem, name) else None


def save(
    stem: str | os.PathLike, tensors: dict[str, torch.Tensor], meta: dict[str, Any], tag: str = "0"
) -> Path:
    """Write ``tensors`` and the JSON-able ``meta`` as checkpoint ``stem``; returns the sidecar path.

    ``tag`` names the tensor file (e.g. the step). If the live checkpoint already uses that name,
    the new file gets a suffix (``<tag>.1``), so the live file is never overwritten.
    """
    stem = Path(stem)
    if not isinstance(tag, str) or not _valid_tensor_name(stem, f"{stem.name}-{tag}.safetensors"):
        raise ConfigError(
            f"checkpoint {stem}: tag {tag!r} must be a plain name (no '/', '\\' or '..')"
        )
    stem.parent.mkdir(parents=True, exist_ok=True)
    blob = st_save({k: v.detach().cpu().contiguous() for k, v in tensors.items()})
    previous = _current_tensor_name(stem)
    name = f"{stem.name}-{tag}.safetensors"
    if name == previous:  # never overwrite the file the live sidecar points to
        name = f"{stem.name}-{tag}.1.safetensors"
    write_bytes(stem.parent / name, blob)
    sidecar = _sidecar(stem)
    write_json(
        sidecar, {"tensor_file": name, "sha256": sha256_bytes(blob), "format": FORMAT, "meta": meta}
    )
    if previous is not None and previous != name:
        (stem.parent / previous).unlink(missing_ok=True)
    return sidecar


def exists(stem: str | os.PathLike) -> bool:
    """Whether a checkpoint sidecar for ``stem`` exists."""
    return _sidecar(Path(stem)).exists()


def _read_sidecar(stem: Path) -> tuple[str, str, dict[str, Any]]:
    """The sidecar's (tensor file name, sha256, meta), each checked; IntegrityError otherwise."""
    sidecar = _sidecar(stem)
    fix = "delete the checkpoint (the .json and its .safetensors) and rerun"
    try:
        record = json.loads(sidecar.read_text(encoding="utf-8"))
    except (ValueError, RecursionError) as exc:
        raise IntegrityError(f"{sidecar}: unreadable checkpoint sidecar ({exc}); {fix}") from exc
    if not isinstance(record, dict):
        raise IntegrityError(
            f"{sidecar}: checkpoint sidecar is a JSON {type(record).__name__}, not an object; {fix}"
        )
    missing = [k for k in ("tensor_file", "sha256", "meta") if k not in record]
    if missing:
        raise IntegrityError(f"{sidecar}: checkpoint sidecar lacks {', '.join(missing)}; {fix}")
    if record.get("format", FORMAT) != FORMAT:
        raise IntegrityError(
            f"{sidecar}: unknown checkpoint format {record.get('format')!r} (expected {FORMAT}); "
            f"{fix}"
        )
    name, expected, meta = record["tensor_file"], record["sha256"], record["meta"]
    if not _valid_tensor_name(stem, name):
        raise IntegrityError(
            f"{sidecar}: tensor_file {name!r} is not a file of this checkpoint (expected a plain "
            f"name '{stem.name}-<tag>.safetensors' in {stem.parent}); refusing to read it; {fix}"
        )
    if not isinstance(expected, str) or not _SHA256.fullmatch(expected):
        raise IntegrityError(f"{sidecar}: sha256 {expected!r} is not a hex sha256; {fix}")
    if not isinstance(meta, dict):
        raise IntegrityError(f"{sidecar}: meta is a {type(meta).__name__}, not an object; {fix}")
    return name, expected, meta


def load(stem: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Read checkpoint ``stem``: returns ``(tensors, meta)`` after checking the sha256."""
    stem = Path(stem)
    sidecar = _sidecar(stem)
    if not sidecar.exists():
        raise IntegrityError(f"{sidecar}: no such checkpoint; train first or check the path")
    name, expected, meta = _read_sidecar(stem)
    tensor_file = stem.parent / name
    if not tensor_file.is_file():
        raise IntegrityError(f"{tensor_file}: missing (named by {sidecar}); delete both and rerun")
    blob = tensor_file.read_bytes()
    actual = sha256_bytes(blob)
    if actual != expected:
        raise IntegrityError(
            f"{tensor_file}: sha256 mismatch (expected {expected}, got {actual}); the checkpoint "
            "is truncated or altered: delete it and rerun, or restore it from data.dvc"
        )
    try:
        tensors = st_load(blob)
    except Exception as exc:  # the safetensors parser's own errors: the blob is no tensor file
        raise IntegrityError(
            f"{tensor_file}: not a readable safetensors file ({type(exc).__name__}: {exc}); "
            "delete the checkpoint and rerun"
        ) from exc
    return tensors, meta


def save_weights(
    stem: str | os.PathLike, model: nn.Module, meta: dict[str, Any] | None = None
) -> Path:
    """Save a model's parameters and buffers (``model.state_dict()``) as a checkpoint.

    The live weights file stays in place until the new sidecar points to the new one.
    """
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
    except (RuntimeError, TypeError, ValueError) as exc:
        raise IntegrityError(f"{stem}: weights do not fit this model: {exc}") from exc
    return meta
