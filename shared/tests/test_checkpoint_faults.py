"""Checkpoint faults: a kill between any two steps of a save, sidecars that try to escape the
checkpoint folder, and sidecars that parse but are malformed."""

import json
import pathlib

import pytest
import torch

from dnnrepro.core import checkpoint
from dnnrepro.core.errors import ConfigError, IntegrityError
from dnnrepro.core.io import sha256_bytes


class Killed(Exception):
    """Stands for a kill -9 at the injected point."""


def _tensors(value: float) -> dict[str, torch.Tensor]:
    return {"model.w": torch.full((3, 2), value), "optim.0.m": torch.arange(4.0) * value}


def _assert_holds(stem, value: float) -> None:
    tensors, meta = checkpoint.load(stem)
    assert meta == {"v": value}
    for k, v in _tensors(value).items():
        assert torch.equal(tensors[k], v)


def _kill_at(monkeypatch, point: str) -> None:
    """Make the save fail at ``point``: while writing the tensors, before the sidecar is
    replaced, or before the old tensor file is removed."""

    def boom(*a, **k):
        raise Killed(point)

    if point == "tensors":
        monkeypatch.setattr(checkpoint, "write_bytes", boom)
    elif point == "sidecar":
        monkeypatch.setattr(checkpoint, "write_json", boom)
    else:
        monkeypatch.setattr(pathlib.Path, "unlink", boom)


@pytest.mark.parametrize("same_tag", [False, True], ids=["new-tag", "same-tag"])
@pytest.mark.parametrize("point", ["tensors", "sidecar", "remove-old"])
def test_a_kill_between_save_steps_leaves_a_loadable_checkpoint(
    tmp_path, monkeypatch, point, same_tag
):
    stem = tmp_path / "ck"
    checkpoint.save(stem, _tensors(1.0), {"v": 1.0}, tag="1")
    _kill_at(monkeypatch, point)
    with pytest.raises(Killed):
        checkpoint.save(stem, _tensors(2.0), {"v": 2.0}, tag="1" if same_tag else "2")
    monkeypatch.undo()
    # before the sidecar is replaced the old checkpoint holds; after it, the new one
    _assert_holds(stem, 2.0 if point == "remove-old" else 1.0)
    checkpoint.save(stem, _tensors(3.0), {"v": 3.0}, tag="3")  # and the next save works
    _assert_holds(stem, 3.0)


@pytest.mark.parametrize("point", ["tensors", "sidecar", "remove-old"])
def test_save_weights_keeps_the_live_weights_until_the_new_sidecar_is_in(
    tmp_path, monkeypatch, point
):
    stem = tmp_path / "w"
    net = torch.nn.Linear(3, 2)
    checkpoint.save_weights(stem, net, {"round": 1})
    before = {k: v.clone() for k, v in net.state_dict().items()}
    with torch.no_grad():
        net.weight.add_(1.0)
    _kill_at(monkeypatch, point)
    with pytest.raises(Killed):
        checkpoint.save_weights(stem, net, {"round": 2})
    monkeypatch.undo()
    fresh = torch.nn.Linear(3, 2)
    meta = checkpoint.load_weights(stem, fresh)
    expected = net.state_dict() if point == "remove-old" else before
    assert meta == {"round": 2 if point == "remove-old" else 1}
    for k, v in fresh.state_dict().items():
        assert torch.equal(v, expected[k])


def test_repeated_saves_keep_exactly_one_tensor_file(tmp_path):
    stem = tmp_path / "w"
    net = torch.nn.Linear(2, 2)
    names = set()
    for i in range(4):
        checkpoint.save_weights(stem, net, {"i": i})
        files = sorted(p.name for p in tmp_path.glob("*.safetensors"))
        assert len(files) == 1
        names.add(files[0])
        assert checkpoint.load_weights(stem, torch.nn.Linear(2, 2)) == {"i": i}
    assert len(names) == 2  # the weights file alternates between two names, never overwritten


def _escape_names(tmp_path):
    return ["../precious.txt", str(tmp_path / "precious.txt"), "sub/ck-1.safetensors", "..", ""]


@pytest.mark.parametrize("index", range(5))
def test_a_sidecar_never_steers_a_deletion_outside_the_folder(tmp_path, index):
    folder = tmp_path / "ckpts"
    precious = tmp_path / "precious.txt"
    precious.write_text("keep me")
    stem = folder / "ck"
    checkpoint.save(stem, _tensors(1.0), {"v": 1.0}, tag="1")
    sidecar = folder / "ck.json"
    record = json.loads(sidecar.read_text())
    record["tensor_file"] = _escape_names(tmp_path)[index]
    sidecar.write_text(json.dumps(record))
    checkpoint.save(stem, _tensors(2.0), {"v": 2.0}, tag="2")
    assert precious.read_text() == "keep me"
    _assert_holds(stem, 2.0)


@pytest.mark.parametrize("index", range(5))
def test_a_sidecar_never_steers_a_read_outside_the_folder(tmp_path, index):
    folder = tmp_path / "ckpts"
    folder.mkdir()
    precious = tmp_path / "precious.txt"
    precious.write_bytes(b"secret bytes")
    record = {
        "tensor_file": _escape_names(tmp_path)[index],
        "sha256": sha256_bytes(b"secret bytes"),
        "format": checkpoint.FORMAT,
        "meta": {},
    }
    (folder / "ck.json").write_text(json.dumps(record))
    with pytest.raises(IntegrityError, match="not a file of this checkpoint"):
        checkpoint.load(folder / "ck")


def _sidecar_cases(blob_sha: str, junk_sha: str) -> dict[str, object]:
    good = {"tensor_file": "ck-1.safetensors", "sha256": blob_sha, "format": checkpoint.FORMAT}
    return {
        "list": [good],
        "string": "ck-1.safetensors",
        "null": None,
        "missing-meta": good,
        "missing-tensor-file": {"sha256": blob_sha, "meta": {}},
        "missing-sha": {"tensor_file": "ck-1.safetensors", "meta": {}},
        "tensor-file-int": {**good, "tensor_file": 7, "meta": {}},
        "tensor-file-list": {**good, "tensor_file": ["ck-1.safetensors"], "meta": {}},
        "sha-list": {**good, "sha256": [blob_sha], "meta": {}},
        "sha-int": {**good, "sha256": 5, "meta": {}},
        "meta-list": {**good, "meta": [1, 2]},
        "meta-null": {**good, "meta": None},
        "format-other": {**good, "format": "pickle", "meta": {}},
        "other-file": {
            **good,
            "tensor_file": "ck-junk.safetensors",
            "sha256": junk_sha,
            "meta": {},
        },
    }


@pytest.mark.parametrize(
    "case", list(_sidecar_cases("a" * 64, "b" * 64)), ids=list(_sidecar_cases("a" * 64, "b" * 64))
)
def test_malformed_sidecars_raise_integrity_error(tmp_path, case):
    stem = tmp_path / "ck"
    checkpoint.save(stem, _tensors(1.0), {}, tag="1")
    blob_sha = json.loads((tmp_path / "ck.json").read_text())["sha256"]
    junk = b"{not a safetensors file at all}" * 3  # its hash is right, its content is not
    (tmp_path / "ck-junk.safetensors").write_bytes(junk)
    (tmp_path / "ck.json").write_text(
        json.dumps(_sidecar_cases(blob_sha, sha256_bytes(junk))[case])
    )
    with pytest.raises(IntegrityError, match=r"ck"):
        checkpoint.load(stem)
    with pytest.raises(IntegrityError):
        checkpoint.load_weights(stem, torch.nn.Linear(2, 3))
    checkpoint.save(stem, _tensors(2.0), {"v": 2.0}, tag="2")  # a save repairs it
    _assert_holds(stem, 2.0)


@pytest.mark.parametrize("tag", ["../x", "a/b", "", ".."])
def test_a_tag_that_is_no_plain_name_is_refused(tmp_path, tag):
    with pytest.raises(ConfigError, match="plain name"):
        checkpoint.save(tmp_path / "ck", _tensors(1.0), {}, tag=tag)
    assert list(tmp_path.iterdir()) == []
