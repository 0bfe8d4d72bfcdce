"""The torchvision ResNet backbone from a user-supplied weights file (never downloaded)."""

import sys

import pytest
import torch

from dnnrepro.conv_m_da import adapt
from dnnrepro.conv_m_da.backbones import read_state_dict, torchvision_resnet
from dnnrepro.core.errors import ConfigError, DataError

try:
    import torchvision.models as tv_models

    NO_TORCHVISION = ""
except Exception as exc:  # not installed, or a build for another torch
    tv_models = None
    NO_TORCHVISION = f"torchvision is not importable here ({type(exc).__name__}: {exc})"[:200]

needs_torchvision = pytest.mark.skipif(bool(NO_TORCHVISION), reason=NO_TORCHVISION)


def test_missing_or_invalid_weights_files_are_data_errors(tmp_path):
    with pytest.raises(DataError, match="not found.*download.pytorch.org"):
        read_state_dict(tmp_path / "resnet50.pth")
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"this is not a checkpoint")
    with pytest.raises(DataError, match="not a readable weights file"):
        read_state_dict(garbage)
    not_a_state = tmp_path / "list.pth"
    torch.save([1, 2, 3], not_a_state)
    with pytest.raises(DataError, match="does not hold a state dict"):
        read_state_dict(not_a_state)


def test_wrapped_and_prefixed_state_dicts_are_unwrapped(tmp_path):
    state = {"conv1.weight": torch.ones(2, 3), "bn1.bias": torch.zeros(2)}
    path = tmp_path / "w.pth"
    torch.save({"state_dict": {f"module.{k}": v for k, v in state.items()}, "epoch": 3}, path)
    got = read_state_dict(path)
    assert got.keys() == state.keys() and all(torch.equal(got[k], state[k]) for k in state)


def test_without_torchvision_a_config_error_says_how_to_get_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "torchvision", None)  # import torchvision -> ImportError
    monkeypatch.setitem(sys.modules, "torchvision.models", None)
    with pytest.raises(ConfigError, match="torchvision.*not installed.*pip install"):
        torchvision_resnet("resnet18", None, num_classes=10)
    with pytest.raises(ConfigError, match="unknown backbone"):
        torchvision_resnet("vgg16", None, num_classes=10)


@needs_torchvision
def test_backbone_carries_the_files_weights_and_adapts(tmp_path):
    torch.manual_seed(0)
    reference = tv_models.resnet18(weights=None)
    path = tmp_path / "resnet18.pth"
    torch.save(reference.state_dict(), path)
    net = torchvision_resnet("resnet18", path, num_classes=5)
    assert net.feature_dim == 512 and net.in_channels == 3 and net.num_classes == 5
    own = net.features.state_dict()
    for k, v in reference.state_dict().items():
        if not k.startswith("fc."):
            assert torch.equal(own[k], v), k
    x = torch.rand(4, 3, 32, 32)
    # the features equal torchvision's own forward on normalized inputs, up to the pooled layer
    # (eval mode, before any train-mode forward moves the BatchNorm statistics)
    reference.fc = torch.nn.Identity()
    reference.eval(), net.eval()
    with torch.no_grad():
        assert torch.allclose(net.features(x), reference(net.features.normalize(x)), atol=1e-5)
        assert net(x).shape == (4, 5)
    ys = torch.arange(8) % 5
    xs = torch.rand(8, 3, 32, 32)
    r = adapt(net, (xs, ys), xs.flip(0), "dann", steps=2, batch_size=4, bottleneck=8)
    assert r.steps == 2 and r.model(x).shape == (4, 5)


@needs_torchvision
def test_weights_of_another_arch_are_a_data_error(tmp_path):
    path = tmp_path / "resnet34.pth"
    torch.save(tv_models.resnet34(weights=None).state_dict(), path)
    with pytest.raises(DataError, match="does not hold torchvision resnet18 weights: unexpected"):
        torchvision_resnet("resnet18", path, num_classes=10)


@needs_torchvision
def test_safetensors_weights(tmp_path):
    from safetensors.torch import save_file

    torch.manual_seed(1)
    reference = tv_models.resnet18(weights=None)
    path = tmp_path / "resnet18.safetensors"
    save_file({k: v.contiguous() for k, v in reference.state_dict().items()}, str(path))
    net = torchvision_resnet("resnet18", path, num_classes=3)
    assert torch.equal(net.features.conv1.weight, reference.conv1.weight)


def test_office_rows_name_the_missing_resnet_weights(tmp_path):
    from types import SimpleNamespace

    from dnnrepro.conv_m_da.experiment import _resnet_weights

    ctx = SimpleNamespace(data_dir=tmp_path)
    with pytest.raises(DataError, match=r"conv-m-da/resnet50\.pth not found"):
        _resnet_weights(ctx, "resnet50")
    (tmp_path / "conv-m-da").mkdir()
    torch.save({"conv1.weight": torch.zeros(1)}, tmp_path / "conv-m-da" / "resnet50.pth")
    assert _resnet_weights(ctx, "resnet50") == tmp_path / "conv-m-da" / "resnet50.pth"
