"""CuPy RawKernels shipped as package data, loaded lazily; torch <-> CuPy through DLPack.

A package keeps its kernels in ``src/dnnrepro/<pkg>/kernels/*.cu`` and loads them with
:func:`load_module` (compiled once per process and cached). Nothing here imports CuPy at import
time: :func:`cuda_available` never raises on a machine without a GPU or without CuPy.

For the GPU check (tools/gpu_check.py), a package with kernels also provides
``dnnrepro.<pkg>.gpu_cases.CASES``: a list of :class:`KernelCase`, each tying a kernel to its
plain-torch reference, the best torch alternative, and the bytes/FLOPs it must move.
"""

from __future__ import annotations

import functools
import importlib.resources
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from .errors import DnnreproError


@functools.cache
def cupy_available() -> bool:
    """True when CuPy imports (a GPU is not required for that)."""
    try:
        import cupy  # noqa: F401
    except Exception:  # ImportError, or a CUDA library error raised at import
        return False
    return True


@functools.cache
def cuda_available() -> bool:
    """True when torch sees a CUDA device and CuPy imports and sees one too. Never raises."""
    try:
        if not torch.cuda.is_available() or not cupy_available():
            return False
        import cupy

        return cupy.cuda.runtime.getDeviceCount() > 0
    except Exception:
        return False


def kernel_dir(package: str) -> Path:
    """The ``kernels`` folder of an installed package, e.g. ``kernel_dir('dnnrepro.terngrad')``."""
    return Path(str(importlib.resources.files(package).joinpath("kernels")))


def kernel_files(package: str) -> list[Path]:
    """Every ``.cu`` file a package ships, sorted."""
    root = kernel_dir(package)
    return sorted(root.glob("*.cu")) if root.is_dir() else []


@functools.cache
def load_module(package: str, filename: str, options: tuple[str, ...] = ("-std=c++17",)):
    """Compile (once, cached) ``kernels/<filename>`` of ``package`` into a ``cupy.RawModule``."""
    if not cuda_available():
        raise DnnreproError(
            f"{package}/{filename}: CUDA kernels need a CUDA GPU and CuPy (pip install cupy-cuda12x)"
        )
    import cupy

    source = (kernel_dir(package) / filename).read_text()
    return cupy.RawModule(code=source, options=options)


def get_kernel(package: str, filename: str, name: str):
    """One ``__global__`` function of a package's .cu file, as a ``cupy.RawKernel``-like callable."""
    return load_module(package, filename).get_function(name)


def to_cupy(tensor: torch.Tensor):
    """A CuPy view of a CUDA tensor (no copy), through DLPack."""
    import cupy

    return cupy.from_dlpack(tensor.contiguous())


def to_torch(array) -> torch.Tensor:
    """A torch view of a CuPy array (no copy), through DLPack."""
    return torch.from_dlpack(array)


def nvcc_path() -> str | None:
    """The nvcc on PATH, or None."""
    return shutil.which("nvcc")


def compile_ptx(path: str | Path, arch: str = "sm_90", timeout: float = 120) -> tuple[bool, str]:
    """Compile a .cu file to PTX with nvcc (output discarded); returns (ok, compiler messages).

    Catches syntax and type errors on machines without a GPU.
    """
    nvcc = nvcc_path()
    if nvcc is None:
        return False, "nvcc not found"
    proc = subprocess.run(
        [nvcc, "-ptx", f"-arch={arch}", "-std=c++17", str(path), "-o", "/dev/null"],
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    return proc.returncode == 0, (proc.stdout + proc.stderr).strip()


@dataclass
class KernelCase:
    """One GPU kernel under test, with everything the GPU check needs.

    - ``make_inputs(size, device, generator) -> dict``: fresh random inputs for one size, drawn
      with ``generator`` (a CPU ``torch.Generator``: the same draws on every machine) and then
      moved to ``device``.
    - ``alloc_out(inputs) -> dict[str, Tensor]``: the output buffers the kernel writes into; the
      check poisons them (NaN, or 0x5A bytes for integer types) before every run.
    - ``run_kernel(inputs, out)``: launch the CuPy kernel.
    - ``reference(inputs) -> dict[str, Tensor]``: plain torch, computed in float64 where it
      matters; same keys as ``alloc_out``.
    - ``alternative(inputs)``: the best torch/cuDNN way to do the same job, timed against the
      kernel (None when there is none).
    - ``bytes_moved(inputs)`` / ``flops(inputs)``: the minimum traffic / arithmetic, for the
      fraction of the bandwidth or matrix-rate ceiling.
    - ``tolerance``: largest allowed relative error (max |out - ref| / max |ref|, per output).
    """

    name: str
    cu_file: str
    sizes: list[dict[str, Any]]
    make_inputs: Callable[[dict[str, Any], torch.device, torch.Generator], dict[str, Any]]
    alloc_out: Callable[[dict[str, Any]], dict[str, torch.Tensor]]
    run_kernel: Callable[[dict[str, Any], dict[str, torch.Tensor]], None]
    reference: Callable[[dict[str, Any]], dict[str, torch.Tensor]]
    alternative: Callable[[dict[str, Any]], Any] | None = None
    alternative_name: str = ""
    bytes_moved: Callable[[dict[str, Any]], int] | None = None
    flops: Callable[[dict[str, Any]], int] | None = None
    tolerance: float = 1e-5
    notes: str = ""
    extra: dict[str, Any] = field(default_factory=dict)
