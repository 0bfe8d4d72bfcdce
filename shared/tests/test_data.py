import hashlib

import numpy as np
import pytest
import torch

from dnnrepro.core import data
from dnnrepro.core.errors import ConfigError, DataError


@pytest.mark.parametrize(
    "name,shape,n_train,n_test",
    [("mnist5k", (1, 28, 28), 4000, 1000), ("digits", (1, 8, 8), 1433, 364)],
)
def test_embedded_sets_shapes_ranges_and_stratified_split(data_dir, name, shape, n_train, n_test):
    x, y = data.load(name, "train", data_dir)
    xt, yt = data.load(name, "test", data_dir)
    assert x.dtype == torch.float32 and y.dtype == torch.int64
    assert tuple(x.shape) == (n_train, *shape) and tuple(xt.shape) == (n_test, *shape)
    assert 0.0 <= float(x.min()) and float(x.max()) == 1.0
    counts = np.bincount(y.numpy(), minlength=10)
    # stratified: every class within one example of 80% of its total
    totals = counts + np.bincount(yt.numpy(), minlength=10)
    assert np.all(np.abs(counts - np.floor(0.8 * totals)) <= 1)
    # train and test are disjoint images
    flat = {hashlib.sha1(v.numpy().tobytes()).hexdigest() for v in x}
    assert sum(hashlib.sha1(v.numpy().tobytes()).hexdigest() in flat for v in xt) < 5


def test_syndigits_is_byte_reproducible_and_balanced():
    from dnnrepro.core.syndigits import render

    a, la = render(40, seed=7, fonts=data.SYNDIGITS_FONTS)
    b, lb = render(40, seed=7, fonts=data.SYNDIGITS_FONTS)
    c, _ = render(40, seed=8, fonts=data.SYNDIGITS_FONTS)
    assert a.shape == (40, 1, 28, 28) and a.dtype == np.uint8
    assert a.tobytes() == b.tobytes() and np.array_equal(la, lb)
    assert a.tobytes() != c.tobytes()
    assert np.all(np.bincount(la, minlength=10) == 4)
    assert a.reshape(40, -1).max(1).min() > 100  # every image has a visible digit


def test_cache_is_verified_on_every_load(data_dir):
    data.load("digits", "test", data_dir)
    path = data_dir / "digits-test.npz"
    original = path.read_bytes()
    try:
        path.write_bytes(original[:-10])  # truncated
        with pytest.raises(DataError) as err:
            data.load("digits", "test", data_dir)
        msg = str(err.value)
        assert "digits-test.npz" in msg and "expected" in msg and "got" in msg
        assert path.read_bytes() == original[:-10], "a corrupted file must not be overwritten"
    finally:
        path.write_bytes(original)
    assert data.verify(data_dir)["digits-test.npz"] == "ok"


def test_unknown_names_are_config_errors(data_dir):
    with pytest.raises(ConfigError, match="unknown dataset"):
        data.load("imagenet", "train", data_dir)
    with pytest.raises(ConfigError, match="unknown split"):
        data.load("digits", "val", data_dir)


def test_full_sets_missing_files_name_the_file_and_source(tmp_path):
    with pytest.raises(DataError, match="train-images-idx3-ubyte.gz.*yann.lecun"):
        data.load("mnist", "train", tmp_path)
    with pytest.raises(DataError, match="cifar-10-binary.tar.gz"):
        data.load("cifar10", "test", tmp_path)


def test_full_mnist_file_with_wrong_hash_is_refused(tmp_path):
    (tmp_path / "t10k-images-idx3-ubyte.gz").write_bytes(b"not mnist")
    with pytest.raises(DataError, match="sha256 mismatch"):
        data.load("mnist", "test", tmp_path)


def test_idx_parser_reads_a_synthetic_file():
    header = bytes([0, 0, 0x08, 3]) + (2).to_bytes(4, "big") + (3).to_bytes(4, "big")
    blob = header + (4).to_bytes(4, "big") + bytes(range(24))
    arr = data._read_idx(blob)
    assert arr.shape == (2, 3, 4) and arr[1, 2, 3] == 23


def test_npz_bytes_are_deterministic():
    a = {"images": np.arange(12, dtype=np.uint8).reshape(3, 4), "scale": np.array(1.0)}
    assert data._npz_bytes(**a) == data._npz_bytes(**a)
