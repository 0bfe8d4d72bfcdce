import gzip
import hashlib
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from dnnrepro.core import baselines, cli, data
from dnnrepro.core.errors import ConfigError, DataError


@pytest.fixture(autouse=True)
def _private_default_dir(tmp_path, monkeypatch):
    """Point the default data dir at an empty temp folder: the user's cache stays out of it."""
    monkeypatch.setenv("DNNREPRO_DATA", str(tmp_path / "default-data"))


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
    assert data.verify(data_dir)["digits-test.npz"].startswith("verified")


def test_unknown_names_are_config_errors(data_dir):
    with pytest.raises(ConfigError, match="unknown dataset"):
        data.load("imagenet", "train", data_dir)
    with pytest.raises(ConfigError, match="unknown split"):
        data.load("digits", "validation", data_dir)


def test_full_sets_missing_files_name_the_file_and_source(tmp_path, monkeypatch):
    monkeypatch.setenv("DNNREPRO_DATA", str(tmp_path))
    with pytest.raises(DataError, match="train-images-idx3-ubyte.gz.*yann.lecun"):
        data.load("mnist", "train", tmp_path)
    with pytest.raises(DataError, match="cifar-10-binary.tar.gz"):
        data.load("cifar10", "test", tmp_path)


def test_full_mnist_file_with_wrong_hash_is_refused(tmp_path, monkeypatch):
    monkeypatch.setenv("DNNREPRO_DATA", str(tmp_path))
    (tmp_path / "t10k-images-idx3-ubyte.gz").write_bytes(b"not mnist")
    (tmp_path / "t10k-labels-idx1-ubyte").write_bytes(b"")
    with pytest.raises(DataError, match="sha256 of the decompressed bytes mismatch"):
        data.load("mnist", "test", tmp_path)


def test_idx_parser_reads_a_synthetic_file():
    header = bytes([0, 0, 0x08, 3]) + (2).to_bytes(4, "big") + (3).to_bytes(4, "big")
    blob = header + (4).to_bytes(4, "big") + bytes(range(24))
    arr = data._read_idx(blob)
    assert arr.shape == (2, 3, 4) and arr[1, 2, 3] == 23


def test_npz_bytes_are_deterministic():
    a = {"images": np.arange(12, dtype=np.uint8).reshape(3, 4), "scale": np.array(1.0)}
    assert data._npz_bytes(**a) == data._npz_bytes(**a)


# ---------------------------------------------------------------- full MNIST, splits, data dirs


def test_full_mnist_loads_from_the_shared_folder_with_all_splits(full_mnist_dir):
    shared_data = full_mnist_dir
    x, y = data.load("mnist", "train", shared_data)
    xt, yt = data.load("mnist", "test", shared_data)
    assert tuple(x.shape) == (60_000, 1, 28, 28) and tuple(xt.shape) == (10_000, 1, 28, 28)
    assert x.dtype == torch.float32 and float(x.max()) == 1.0 and float(x.min()) == 0.0
    assert set(y.unique().tolist()) == set(range(10)) == set(yt.unique().tolist())
    xv, yv = data.load("mnist", "val", shared_data)
    xr, yr = data.load("mnist", "train_minus_val", shared_data)
    assert len(yv) + len(yr) == 60_000
    counts = np.bincount(y.numpy(), minlength=10)
    assert np.array_equal(np.bincount(yv.numpy(), minlength=10), counts // 10)
    # val and the rest partition train, in train order
    vi = data.val_indices(y.numpy())
    assert torch.equal(xv, x[vi]) and torch.equal(yr, y[data.train_minus_val_indices(y.numpy())])
    # the decoded arrays are kept in memory: a second load reads no file
    assert len(data._IDX_CACHE) >= 2
    status = data.verify(shared_data)
    assert all(status[f].startswith("verified") for f in data.MNIST_FILES)


def test_val_split_is_stratified_deterministic_and_disjoint(data_dir):
    x, y = data.load("digits", "train", data_dir)
    xv, yv = data.load("digits", "val", data_dir)
    xr, yr = data.load("digits", "train_minus_val", data_dir)
    counts = np.bincount(y.numpy(), minlength=10)
    assert np.array_equal(np.bincount(yv.numpy(), minlength=10), counts // 10)
    assert len(yv) + len(yr) == len(y)
    vi, ri = data.val_indices(y.numpy()), data.train_minus_val_indices(y.numpy())
    assert not set(vi) & set(ri) and np.all(np.diff(vi) > 0)
    assert torch.equal(xv, x[vi]) and torch.equal(xr, x[ri])
    assert np.array_equal(vi, data.val_indices(y.numpy().copy()))
    # a different seed would pick different examples: the seed is what fixes them
    rng = np.random.default_rng(data.VAL_SEED + 1)
    other = [np.flatnonzero(y.numpy() == c) for c in range(10)]
    other = np.sort(np.concatenate([i[rng.permutation(len(i))[: len(i) // 10]] for i in other]))
    assert not np.array_equal(vi, other)


def _idx(dims: tuple[int, ...], body: bytes) -> bytes:
    head = bytes([0, 0, 0x08, len(dims)]) + b"".join(d.to_bytes(4, "big") for d in dims)
    return head + body


def _tiny_mnist(folder: Path, gz: bool) -> dict[str, data.IdxFile]:
    """Four small valid IDX files (5 train / 3 test images of 28x28) and pins for them."""
    rng = np.random.default_rng(0)
    pins = {}
    for prefix, n in (("train", 5), ("t10k", 3)):
        files = {
            f"{prefix}-images-idx3-ubyte": _idx(
                (n, 28, 28), rng.integers(0, 256, n * 784).astype(np.uint8).tobytes()
            ),
            f"{prefix}-labels-idx1-ubyte": _idx((n,), bytes(range(n))),
        }
        for fname, blob in files.items():
            target = folder / (fname + ".gz" if gz else fname)
            target.write_bytes(gzip.compress(blob, mtime=0) if gz else blob)
            shape = (n, 28, 28) if "images" in fname else (n,)
            pins[fname] = data.IdxFile(hashlib.sha256(blob).hexdigest(), len(blob), shape)
    return pins


@pytest.mark.parametrize("gz", [False, True])
def test_idx_files_raw_or_gz_are_found_in_dir_mnist_subdir_or_env(tmp_path, monkeypatch, gz):
    monkeypatch.delenv("DNNREPRO_DATA", raising=False)
    (tmp_path / "a" / "mnist").mkdir(parents=True)
    pins = _tiny_mnist(tmp_path / "a" / "mnist", gz)
    monkeypatch.setattr(data, "MNIST_FILES", pins)
    images, labels, scale = data._load_uint8("mnist", "train", tmp_path / "a")
    assert images.shape == (5, 1, 28, 28) and labels.tolist() == [0, 1, 2, 3, 4] and scale == 255
    x, y = data.load("mnist", "test", tmp_path / "a")
    assert tuple(x.shape) == (3, 1, 28, 28)
    # found through $DNNREPRO_DATA (and its mnist/) when data_dir holds nothing
    (tmp_path / "empty").mkdir()
    monkeypatch.setenv("DNNREPRO_DATA", str(tmp_path / "a"))
    assert data.load("mnist", "test", tmp_path / "empty")[1].tolist() == [0, 1, 2]


@pytest.mark.parametrize("gz", [False, True])
def test_corrupt_or_truncated_idx_names_file_hashes_and_fix_and_changes_nothing(
    tmp_path, monkeypatch, gz
):
    monkeypatch.delenv("DNNREPRO_DATA", raising=False)
    monkeypatch.setattr(data, "MNIST_FILES", _tiny_mnist(tmp_path, gz))
    target = tmp_path / ("train-images-idx3-ubyte" + (".gz" if gz else ""))
    raw = gzip.decompress(target.read_bytes()) if gz else target.read_bytes()
    expected = data.MNIST_FILES["train-images-idx3-ubyte"].sha256
    for bad in (raw[:-100], raw[:4] + b"\xff" + raw[5:], b"\x00\x00\x0d\x03" + raw[4:]):
        blob = gzip.compress(bad, mtime=0) if gz else bad
        target.write_bytes(blob)
        with pytest.raises(DataError) as err:
            data.load("mnist", "train", tmp_path)
        msg = str(err.value)
        assert target.name in msg and expected in msg
        assert hashlib.sha256(bad).hexdigest() in msg and "again from" in msg
        assert target.read_bytes() == blob, "a corrupted file must not be overwritten"


def test_wrong_magic_or_shape_is_a_data_error_not_a_numpy_error():
    good = _idx((2, 3, 4), bytes(24))
    assert data._read_idx(good).shape == (2, 3, 4)
    for bad, what in [
        (b"\x00\x00", "shorter"),
        (b"\x00\x00\x0d\x03" + good[4:], "magic"),
        (b"\x01\x00\x08\x03" + good[4:], "magic"),
        (good[:-1], "truncated"),
        (good + b"x", "truncated"),
        (bytes([0, 0, 8, 9]) + good[4:16], "rank"),
        (bytes([0, 0, 8, 0]), "rank"),
    ]:
        with pytest.raises(DataError, match=what):
            data._read_idx(bad)
    with pytest.raises(DataError, match="expected"):
        data._read_idx(good, (2, 12))


def test_default_data_dir_is_env_then_user_cache_never_cwd(tmp_path, monkeypatch):
    monkeypatch.setenv("DNNREPRO_DATA", str(tmp_path / "env"))
    assert data.data_dir() == tmp_path / "env" == data.default_data_dir()
    monkeypatch.delenv("DNNREPRO_DATA")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    if sys.platform.startswith("linux"):
        assert data.default_data_dir() == tmp_path / "xdg" / "dnnrepro"
        monkeypatch.setenv("XDG_CACHE_HOME", "relative/path")  # invalid per the XDG spec
        monkeypatch.setenv("HOME", str(tmp_path / "home"))
        assert data.default_data_dir() == tmp_path / "home" / ".cache" / "dnnrepro"
    assert data.default_data_dir().is_absolute()
    assert data.data_dir("given") == Path("given")


def test_missing_explicit_data_dir_is_an_error_and_nothing_is_created(tmp_path, monkeypatch):
    monkeypatch.setenv("DNNREPRO_DATA", str(tmp_path / "default"))
    typo = tmp_path / "mistyped"
    with pytest.raises(DataError, match="does not exist"):
        data.load("digits", "train", typo)
    with pytest.raises(DataError, match="does not exist"):
        data.verify(typo)
    assert not typo.exists() and not (tmp_path / "default").exists()
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="none of the dataset files"):
        data.verify(tmp_path / "empty")


def test_caches_of_a_read_only_data_dir_go_to_the_default_dir(tmp_path, monkeypatch, data_dir):
    # a folder of user files marked read-only (like ../shared/data): the digits cache is built
    # into $DNNREPRO_DATA, and the read-only folder is left as it was
    data.materialize(["digits"], data_dir)
    default = tmp_path / "default"
    default.mkdir()
    monkeypatch.setenv("DNNREPRO_DATA", str(default))
    (default / "digits-test.npz").write_bytes((data_dir / "digits-test.npz").read_bytes())
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        x, _ = data.load("digits", "test", ro)  # read from the default dir
        assert data.writable_dir(ro) == default and list(ro.iterdir()) == []
    finally:
        ro.chmod(0o755)
    assert x.shape[0] == 364


def test_nothing_is_written_into_the_cwd(tmp_path, monkeypatch, data_dir):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DNNREPRO_DATA", str(data_dir))
    data.load("digits", "val")
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------- the `dnnrepro data` command


def _cli(capsys, *argv):
    code = cli.main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err.strip()


def test_cli_data_verify_lists_the_four_mnist_files_as_verified(capsys, full_mnist_dir):
    code, out, _ = _cli(capsys, "data", "verify", "--data-dir", str(full_mnist_dir))
    assert code == 0
    for fname in data.MNIST_FILES:
        assert any(line.split()[:2] == [fname, "verified"] for line in out.splitlines())


def test_cli_data_bad_folders_are_one_line_exit_2(capsys, tmp_path):
    (tmp_path / "empty").mkdir()
    code, out, err = _cli(capsys, "data", "verify", "--data-dir", str(tmp_path / "empty"))
    assert code == 2 and "none of the dataset files" in err and len(err.splitlines()) == 1
    for action in ("verify", "baselines"):
        code, _, err = _cli(capsys, "data", action, "--data-dir", str(tmp_path / "typo"))
        assert code == 2 and "does not exist" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "typo").exists()
    # materialize is the one action that creates the folder
    code, out, _ = _cli(
        capsys, "data", "materialize", "--names", "digits", "--data-dir", str(tmp_path / "new")
    )
    assert code == 0 and (tmp_path / "new" / "digits-test.npz").exists()
    code, out, _ = _cli(capsys, "data", "verify", "--data-dir", str(tmp_path / "new"))
    assert code == 0 and "digits-train.npz" in out and "verified" in out


def test_baseline_miss_names_the_command_and_writes_nothing(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "d").mkdir()
    with pytest.raises(DataError) as err:
        baselines.get("lenet-mnist", tmp_path / "d")
    msg = str(err.value)
    assert f"dnnrepro data baselines --names lenet-mnist --data-dir {tmp_path / 'd'}" in msg
    assert "train=True" in msg
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d"]
    assert list((tmp_path / "d").iterdir()) == []
    with pytest.raises(ConfigError, match="unknown baseline"):
        baselines.get("resnet-imagenet", tmp_path / "d")


def test_baseline_get_with_train_true_trains_into_the_data_dir_not_the_cwd(
    tmp_path, monkeypatch, data_dir
):
    from dnnrepro.core import models
    from dnnrepro.core.train import TrainConfig

    data.materialize(["digits"], data_dir)
    (tmp_path / "d").mkdir()
    for split in ("train", "test"):  # a private copy: the session folder stays as it is
        name = f"digits-{split}.npz"
        (tmp_path / "d" / name).write_bytes((data_dir / name).read_bytes())
    tiny = baselines.Recipe(
        build=lambda: models.LeNet(1, 8, 10, widths=(4, 8, 16)),
        dataset="digits",
        config=TrainConfig(steps=8, batch_size=32, lr=0.05, seed=0),
        note="test",
        cost="a second",
    )
    monkeypatch.setitem(baselines.BASELINES, "tiny-digits", tiny)
    monkeypatch.chdir(tmp_path)
    model = baselines.get("tiny-digits", tmp_path / "d", train=True)
    stem = tmp_path / "d" / "baselines" / "tiny-digits"
    assert baselines.path("tiny-digits", tmp_path / "d") == stem
    assert not (tmp_path / "d" / ".train").exists(), "the resumable state is removed"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d"], "nothing in the cwd"
    again = baselines.get("tiny-digits", tmp_path / "d")  # loads, trains nothing
    for a, b in zip(model.state_dict().values(), again.state_dict().values(), strict=True):
        assert torch.equal(a, b)
