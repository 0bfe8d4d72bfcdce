"""Seeded fuzzing of the dataset loaders: the .npz cache and the MNIST IDX files (raw and .gz).

Each case mutates or truncates valid bytes; the outcome must be a correct load or a
DnnreproError subclass: never another exception, never a hang (every case is bounded: the gzip
reader stops at the expected size, the .npz reader checks sizes before it reads). A few hundred
cases per format, a few seconds in all.
"""

from __future__ import annotations

import gzip
import hashlib
import time

import numpy as np
import pytest

from dnnrepro.core import data
from dnnrepro.core.errors import DnnreproError

CASES = 300
BUDGET_S = 20.0  # for all cases of one format, on a loaded 2-core machine


def _mutate(blob: bytes, rng: np.random.Generator) -> bytes:
    """One seeded mutation: flip bytes, overwrite a run, truncate, insert, or splice a header."""
    b = bytearray(blob)
    kind = int(rng.integers(6))
    if kind == 0:  # flip a few bits
        for _ in range(int(rng.integers(1, 8))):
            i = int(rng.integers(len(b)))
            b[i] ^= 1 << int(rng.integers(8))
    elif kind == 1:  # overwrite a run with random bytes, often in the first 128 (headers)
        start = int(rng.integers(min(len(b), 128) if rng.random() < 0.7 else len(b)))
        n = int(rng.integers(1, 16))
        b[start : start + n] = rng.integers(0, 256, n).astype(np.uint8).tobytes()
    elif kind == 2:  # truncate
        del b[int(rng.integers(len(b))) :]
    elif kind == 3:  # insert bytes
        i = int(rng.integers(len(b)))
        b[i:i] = rng.integers(0, 256, int(rng.integers(1, 32))).astype(np.uint8).tobytes()
    elif kind == 4:  # set one byte to an extreme value (sizes, dims, ranks)
        b[int(rng.integers(min(len(b), 64)))] = int(rng.choice([0x00, 0x7F, 0x80, 0xFF]))
    else:  # cut a chunk out of the middle
        i = int(rng.integers(len(b)))
        del b[i : i + int(rng.integers(1, 64))]
    return bytes(b)


def _outcomes(cases, attempt) -> dict[str, int]:
    """Run ``attempt(blob)`` on every case; count loads and errors; fail on anything else."""
    seen = {"loaded": 0, "error": 0}
    start = time.perf_counter()
    for i, blob in enumerate(cases):
        try:
            attempt(blob)
            seen["loaded"] += 1
        except DnnreproError:
            seen["error"] += 1
        except Exception as exc:  # noqa: BLE001 - the point of the test
            pytest.fail(f"case {i}: {type(exc).__name__}: {exc} (not a DnnreproError)")
    assert time.perf_counter() - start < BUDGET_S, "fuzz cases took too long (a hang?)"
    return seen


# ----------------------------------------------------------------------------- .npz cache


def _cache_blob() -> bytes:
    rng = np.random.default_rng(1)
    return data._npz_bytes(
        images=rng.integers(0, 256, (20, 1, 8, 8)).astype(np.uint8),
        labels=rng.integers(0, 10, 20).astype(np.int64),
        scale=np.array(16.0, np.float32),
    )


def test_cache_npz_reader_survives_mutations(tmp_path):
    good = _cache_blob()
    path = tmp_path / "digits-test.npz"
    path.write_bytes(good)
    ref = data._read_npz(path)
    rng = np.random.default_rng(20260925)

    def attempt(blob: bytes) -> None:
        path.write_bytes(blob)
        images, labels, scale = data._read_npz(path)
        # whatever loads must be well-formed
        assert images.dtype == np.uint8 and images.ndim == 4 and len(labels) == len(images)
        assert 0 < scale < np.inf

    seen = _outcomes((_mutate(good, rng) for _ in range(CASES)), attempt)
    assert seen["error"] > CASES // 2  # the mutations do reach the parser
    path.write_bytes(good)
    assert np.array_equal(data._read_npz(path)[0], ref[0])


def test_cache_load_with_pin_rejects_every_changed_byte(tmp_path, monkeypatch):
    """Through the public load: a changed cache is refused by its pin, one DataError each."""
    good = _cache_blob()
    monkeypatch.setitem(data.CACHE_SHA256, "digits-test", hashlib.sha256(good).hexdigest())
    path = tmp_path / "digits-test.npz"
    rng = np.random.default_rng(7)

    def attempt(blob: bytes) -> None:
        path.write_bytes(blob)
        data.load("digits", "test", tmp_path)
        assert blob == good

    seen = _outcomes((_mutate(good, rng) for _ in range(CASES // 3)), attempt)
    assert seen["error"] > 0  # (a load of changed bytes fails the assert in attempt)
    path.write_bytes(good)
    assert tuple(data.load("digits", "test", tmp_path)[0].shape) == (20, 1, 8, 8)


# ----------------------------------------------------------------------------- IDX files


def _idx_blob(n: int = 6) -> bytes:
    rng = np.random.default_rng(2)
    head = bytes([0, 0, 0x08, 3]) + b"".join(d.to_bytes(4, "big") for d in (n, 28, 28))
    return head + rng.integers(0, 256, n * 784).astype(np.uint8).tobytes()


def test_idx_parser_survives_mutations():
    good = _idx_blob()
    rng = np.random.default_rng(11)

    def attempt(blob: bytes) -> None:
        array = data._read_idx(blob)
        assert array.dtype == np.uint8 and array.size == len(blob) - 4 - 4 * array.ndim

    seen = _outcomes((_mutate(good, rng) for _ in range(CASES)), attempt)
    assert seen["error"] > 0


@pytest.mark.parametrize("gz", [False, True], ids=["raw", "gz"])
def test_idx_file_reader_survives_mutations(tmp_path, gz):
    """Raw and gzipped files through the file reader (decompress, sha256, parse), with the pin
    of the good file: every mutation is refused with a DataError, the good file loads."""
    good = _idx_blob()
    fname = "t10k-images-idx3-ubyte"
    pins = {fname: data.IdxFile(hashlib.sha256(good).hexdigest(), len(good), (6, 28, 28))}
    stored = gzip.compress(good, mtime=0) if gz else good
    path = tmp_path / (fname + (".gz" if gz else ""))
    rng = np.random.default_rng(13 + gz)

    def attempt(blob: bytes) -> None:
        path.write_bytes(blob)
        array = data._read_idx_file(path, fname, pins)
        assert array.tobytes() == good[16:]

    seen = _outcomes((_mutate(stored, rng) for _ in range(CASES)), attempt)
    assert seen["error"] > CASES // 2


def test_gzip_reader_is_bounded_by_the_expected_size():
    bomb = gzip.compress(bytes(5_000_000), compresslevel=9, mtime=0)  # ~5 kB on disk
    start = time.perf_counter()
    out = data._decompress(bomb, 1000)
    assert len(out) == 1001 and time.perf_counter() - start < 1.0
    with pytest.raises(DnnreproError, match="truncated"):
        data._decompress(gzip.compress(b"abc" * 1000)[:-20], 10_000)
