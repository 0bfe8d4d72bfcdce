"""pytest plugin (entry point ``pytest11``) and helpers shared by every package's tests.

- marker ``gpu``: the test needs CUDA and CuPy; it is skipped, with the reason, where they are
  missing (this is how ``nox -s tests`` runs on CPU machines and CI);
- marker ``slow``: longer tests, still inside the ``nox -s tests`` budget;
- :func:`check_kernels_compile`: compile every ``.cu`` file of a package with ``nvcc -ptx`` where
  nvcc exists, so kernel syntax errors surface on machines without a GPU;
- fixture ``full_mnist_dir``: the folder holding the full MNIST IDX files for paper-profile tests
  (``../shared/data`` beside the repository, or ``$DNNREPRO_DATA``); the test is skipped, with
  the reason, where neither has them.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from .kernels import compile_ptx, cuda_available, kernel_files, nvcc_path


def pytest_configure(config):
    config.addinivalue_line("markers", "gpu: needs a CUDA GPU and CuPy; skipped without them")
    config.addinivalue_line("markers", "slow: longer test (seconds to a minute)")


def pytest_collection_modifyitems(config, items):
    if cuda_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU and CuPy (not available here)")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


def check_kernels_compile(package: str, arch: str = "sm_90") -> list[str]:
    """Compile each .cu file of ``package`` to PTX; returns the file names checked.

    Skips the calling test when nvcc is missing; fails it with nvcc's messages on an error.
    """
    if nvcc_path() is None:
        pytest.skip("nvcc not on PATH")
    files = kernel_files(package)
    assert files, f"{package} ships no .cu files under kernels/"
    for path in files:
        # nvcc finds the C++ standard headers, NVRTC (what CuPy compiles RawModules with) does
        # not: `#include <cstdint>` passes here and fails on the GPU machine.
        system = re.findall(r"^\s*#\s*include\s*<([^>]+)>", path.read_text(), re.M)
        assert not system, f"{path.name}: NVRTC cannot include <{system[0]}>; use built-in types"
        ok, messages = compile_ptx(path, arch)
        assert ok, f"nvcc -ptx failed for {path.name}:\n{messages}"
    return [p.name for p in files]


def _has_full_mnist(folder: Path) -> bool:
    return any(
        (where / f"train-images-idx3-ubyte{ext}").is_file()
        for where in (folder, folder / "mnist")
        for ext in ("", ".gz")
    )


@pytest.fixture
def full_mnist_dir(request) -> Path:
    """The data folder of the paper profile's full MNIST (``--data-dir`` for it); skips without it.

    Looks at ``../shared/data`` beside the repository root (where every developer and CI have it),
    then ``$DNNREPRO_DATA``.
    """
    candidates = [request.config.rootpath.parent / "shared" / "data"]
    if os.environ.get("DNNREPRO_DATA"):
        candidates.append(Path(os.environ["DNNREPRO_DATA"]))
    for folder in candidates:
        if _has_full_mnist(folder):
            return folder
    pytest.skip(f"full MNIST IDX files not found in {' or '.join(map(str, candidates))}")
