"""Save and reload shrunk networks: safetensors weights plus a JSON description of the new shapes.

A shrunk network has layers of other sizes than the architecture it came from, so its weights alone
do not load (the size-mismatch errors users of pruning tools report). The checkpoint's metadata
records, for every Conv2d/Linear/BatchNorm/LoweredConv2d/InputGather/ResidualShortcut, its path and
constructor arguments; :func:`load_shrunk` builds the original architecture (a core model by name,
or a fresh instance you pass), swaps those modules in, then loads the sha256-checked weights.
"""

from __future__ import annotations

import os
from typing import Any

from torch import nn

from dnnrepro.core import checkpoint, models
from dnnrepro.core.errors import ConfigError, IntegrityError

from .modules import InputGather, LoweredConv2d, ResidualShortcut

FORMAT = "dnnrepro-ssl-shrunk-1"


def describe(module: nn.Module) -> dict[str, Any] | None:
    """Constructor arguments of a supported module, or None for any other module."""
    if isinstance(module, nn.Conv2d):
        return {
            "type": "Conv2d",
            "args": [module.in_channels, module.out_channels, list(module.kernel_size)],
            "kwargs": {
                "stride": list(module.stride),
                "padding": list(module.padding),
                "dilation": list(module.dilation),
                "groups": module.groups,
                "bias": module.bias is not None,
            },
        }
    if isinstance(module, nn.Linear):
        return {
            "type": "Linear",
            "args": [module.in_features, module.out_features],
            "kwargs": {"bias": module.bias is not None},
        }
    if isinstance(module, nn.BatchNorm2d | nn.BatchNorm1d):
        return {
            "type": type(module).__name__,
            "args": [module.num_features],
            "kwargs": {"eps": module.eps, "momentum": module.momentum, "affine": module.affine},
        }
    if isinstance(module, LoweredConv2d):
        return {
            "type": "LoweredConv2d",
            "args": [
                module.in_channels,
                module.out_channels,
                list(module.kernel_size),
                list(module.stride),
                list(module.padding),
                list(module.dilation),
                module.weight.shape[1],
            ],
            "kwargs": {"bias": module.bias is not None},
        }
    if isinstance(module, InputGather):
        return {
            "type": "InputGather",
            "kept": module.index.numel(),
            "inner": describe(module.inner),
        }
    if isinstance(module, ResidualShortcut):
        return {"type": "ResidualShortcut", "channels": module.offset.numel()}
    return None


def architecture(model: nn.Module) -> dict[str, dict]:
    """path -> description for every supported module (not descending into described wrappers)."""
    out: dict[str, dict] = {}
    for name, m in model.named_modules():
        if not name or any(name.startswith(p + ".") for p in out):
            continue
        d = describe(m)
        if d is not None:
            out[name] = d
    return out


def _build(desc: dict, original: nn.Module | None) -> nn.Module:
    kind = desc["type"]
    if kind == "Conv2d":
        return nn.Conv2d(*desc["args"], **desc["kwargs"])
    if kind == "Linear":
        return nn.Linear(*desc["args"], **desc["kwargs"])
    if kind in ("BatchNorm2d", "BatchNorm1d"):
        return getattr(nn, kind)(*desc["args"], **desc["kwargs"])
    if kind == "LoweredConv2d":
        return LoweredConv2d(*desc["args"], **desc["kwargs"])
    if kind == "InputGather":
        return InputGather(_build(desc["inner"], None), desc["kept"])
    if kind == "ResidualShortcut":
        shortcut = getattr(original, "shortcut", None)
        if shortcut is None and hasattr(original, "downsample"):  # torchvision-style block
            shortcut = original.downsample if original.downsample is not None else nn.Identity()
        if shortcut is None:
            raise IntegrityError(
                "a removed residual block has no shortcut in the base architecture"
            )
        return ResidualShortcut(shortcut, desc["channels"])
    raise IntegrityError(f"unknown module type {kind!r} in a shrunk-model description")


def _class_name(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def save_shrunk(
    stem: str | os.PathLike,
    model: nn.Module,
    base: dict[str, Any] | None = None,
    meta: dict[str, Any] | None = None,
) -> None:
    """Save a shrunk network: weights plus the shapes of every replaced module.

    ``base`` = {"name": core model name, "kwargs": {...}} lets :func:`load_shrunk` rebuild a core
    model by name; for your own class give {"kwargs": {...}} (or nothing) and pass the class (or a
    fresh instance) to :func:`load_shrunk`. The model's class name is recorded either way and
    checked at load time; no code is imported from a checkpoint.
    """
    if base is not None:
        if not isinstance(base, dict) or not isinstance(base.get("kwargs", {}), dict):
            raise ConfigError("save_shrunk: base must be {'name': ..., 'kwargs': {...}}")
        if "name" in base:
            models.build(base["name"], **base.get("kwargs", {}))  # fail now, not at load time
    info = {
        "format": FORMAT,
        "architecture": architecture(model),
        "base": base,
        "model_class": _class_name(type(model)),
        **(meta or {}),
    }
    checkpoint.save_weights(stem, model, info)


def load_shrunk(
    stem: str | os.PathLike, model: nn.Module | type[nn.Module] | None = None
) -> nn.Module:
    """Rebuild a network saved by :func:`save_shrunk` (eval mode).

    ``model``: the original (unshrunk) architecture, as a fresh instance or as its class (built
    with the saved ``base["kwargs"]``); needed when the checkpoint names no core model. A class or
    instance of another type than the saved model's raises ConfigError.
    """
    _, meta = checkpoint.load(stem)
    if meta.get("format") != FORMAT:
        raise IntegrityError(f"{stem}: not a shrunk-model checkpoint (format {meta.get('format')})")
    base = meta.get("base") or {}
    if not isinstance(base, dict):
        raise IntegrityError(f"{stem}: malformed 'base' in the checkpoint metadata")
    saved_class = meta.get("model_class")
    if isinstance(model, type):
        if not issubclass(model, nn.Module):
            raise ConfigError("load_shrunk: model= must be an nn.Module class or instance")
        model = model(**base.get("kwargs", {}))
    if model is None:
        if "name" not in base:
            raise ConfigError(
                f"{stem}: the checkpoint does not name a core architecture ({saved_class}); pass "
                "model= its class or a fresh instance of the original network"
            )
        model = models.build(base["name"], **base.get("kwargs", {}))
    elif saved_class and _class_name(type(model)) != saved_class:
        raise ConfigError(
            f"{stem}: saved from a {saved_class}, but model= is a {_class_name(type(model))}"
        )
    arch = meta["architecture"]
    for name in sorted(arch, key=lambda n: n.count(".")):
        parent_name, _, leaf = name.rpartition(".")
        try:
            parent = model.get_submodule(parent_name) if parent_name else model
            original = getattr(parent, leaf)
        except AttributeError as exc:
            raise IntegrityError(f"{stem}: the base architecture has no module {name}") from exc
        setattr(parent, leaf, _build(arch[name], original))
    checkpoint.load_weights(stem, model)
    return model.eval()
