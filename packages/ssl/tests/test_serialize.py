import pytest
import torch
from torch import nn

from dnnrepro.core.errors import ConfigError, IntegrityError
from dnnrepro.core.models import LeNet, resnet20
from dnnrepro.ssl import load_shrunk, save_shrunk, shrink


def _sparse_lenet():
    m = LeNet(1, 28, 10)
    with torch.no_grad():
        m.conv1.weight[[0, 3]] = 0
        m.conv1.weight.view(20, -1)[:, 20:] = 0
        m.conv2.weight[:10] = 0
        m.fc1.weight[:, :64] = 0
    return m


def test_shrunk_lenet_saves_and_reloads(tmp_path):
    m = _sparse_lenet()
    small = shrink(m, torch.rand(2, 1, 28, 28))
    save_shrunk(tmp_path / "lenet", small, base={"name": "lenet", "kwargs": {}})
    again = load_shrunk(tmp_path / "lenet")
    x = torch.rand(5, 1, 28, 28)
    with torch.no_grad():
        torch.testing.assert_close(again(x), small(x), rtol=0, atol=0)
    # a plain state_dict load into the original architecture fails: that is why the shapes are saved
    with pytest.raises(RuntimeError):
        LeNet(1, 28, 10).load_state_dict(small.state_dict())


def test_shrunk_resnet_reloads_with_removed_blocks(tmp_path):
    m = resnet20(in_channels=1).eval()
    with torch.no_grad():
        m.stages[1][2].conv2.weight.zero_()
        m.stages[0][0].conv2.weight[:, :4] = 0
    small = shrink(m, torch.rand(2, 1, 16, 16))
    save_shrunk(tmp_path / "r", small, base={"name": "resnet20", "kwargs": {"in_channels": 1}})
    again = load_shrunk(tmp_path / "r")
    x = torch.rand(3, 1, 16, 16)
    with torch.no_grad():
        torch.testing.assert_close(again(x), small(x), rtol=0, atol=0)


def test_custom_model_needs_a_fresh_instance(tmp_path):
    def net():
        return nn.Sequential(nn.Linear(6, 5), nn.ReLU(), nn.Linear(5, 2))

    m = net()
    with torch.no_grad():
        m[0].weight[1] = 0
    small = shrink(m, torch.rand(2, 6))
    save_shrunk(tmp_path / "c", small)
    with pytest.raises(ConfigError, match="pass model="):
        load_shrunk(tmp_path / "c")
    again = load_shrunk(tmp_path / "c", model=net())
    x = torch.rand(4, 6)
    torch.testing.assert_close(again(x), small(x))


def test_tampered_checkpoint_is_detected(tmp_path):
    small = shrink(_sparse_lenet(), torch.rand(2, 1, 28, 28))
    save_shrunk(tmp_path / "l", small, base={"name": "lenet", "kwargs": {}})
    blob = next(tmp_path.glob("l-*.safetensors"))
    data = bytearray(blob.read_bytes())
    data[-1] ^= 1
    blob.write_bytes(bytes(data))
    with pytest.raises(IntegrityError, match="sha256"):
        load_shrunk(tmp_path / "l")


class MyCNN(nn.Module):
    """A user's own network class (not one of the core's models)."""

    def __init__(self, width: int = 8):
        super().__init__()
        self.conv = nn.Conv2d(1, width, 3)
        self.head = nn.Linear(width * 6 * 6, 3)

    def forward(self, x):
        return self.head(torch.relu(self.conv(x)).flatten(1))


def test_any_user_module_class_saves_and_reloads(tmp_path):
    m = MyCNN(width=6)
    with torch.no_grad():
        m.conv.weight[[1, 4]] = 0
        m.conv.bias[[1, 4]] = 0
    small = shrink(m, torch.rand(2, 1, 8, 8))
    assert small.conv.out_channels == 4
    save_shrunk(tmp_path / "mine", small, base={"kwargs": {"width": 6}})
    x = torch.rand(3, 1, 8, 8)
    for given in (MyCNN, MyCNN(width=6)):  # the class (built with the saved kwargs) or an instance
        again = load_shrunk(tmp_path / "mine", model=given)
        with torch.no_grad():
            torch.testing.assert_close(again(x), small(x), rtol=0, atol=0)
    with pytest.raises(ConfigError, match="saved from a"):
        load_shrunk(tmp_path / "mine", model=LeNet(1, 8, 10))
    with pytest.raises(ConfigError, match="pass model="):
        load_shrunk(tmp_path / "mine")
