"""dnnrepro-core: the small shared core of the dnnrepro paper packages.

Modules: ``data`` (datasets), ``models`` (networks shared by several papers), ``train`` (the one
training loop and its checkpoints), ``sparsity`` (pruning masks kept through training),
``results`` (claims, verdicts, results.json and READMEs), ``reproduce`` (the run context every
package's reproduce uses), ``kernels`` (CuPy kernel loading), ``bench`` (timing), ``cli`` (the
``dnnrepro`` command), ``errors``, ``io`` (atomic writes, hashing). :func:`device` picks where
tensors go.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

if (
    TYPE_CHECKING
):  # torch is imported only when device() is called: `import dnnrepro.core` stays cheap
    import torch

__version__ = "0.1.0"

DEVICE_ENV = "DNNREPRO_DEVICE"


def device(prefer: str | None = None) -> torch.device:
    """The device to compute on: ``prefer`` if given, else ``$DNNREPRO_DEVICE``, else cuda when
    available, else cpu.

    ``prefer`` / the variable is a torch device string ("cpu", "cuda", "cuda:1"). Asking for cuda
    on a machine without it raises ConfigError rather than failing at the first tensor.
    """
    import torch

    from .errors import ConfigError

    choice = prefer if prefer is not None else os.environ.get(DEVICE_ENV, "").strip() or None
    if choice is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    source = "device" if prefer is not None else f"${DEVICE_ENV}"
    try:
        dev = torch.device(choice)
    except (RuntimeError, ValueError) as err:
        raise ConfigError(f"{source}={choice!r} is not a torch device (use cpu or cuda)") from err
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(
            f"{source}={choice!r} asks for cuda but no CUDA GPU is available; use cpu"
        )
    return dev
