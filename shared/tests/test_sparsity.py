import pytest
import torch

from dnnrepro.core import device, models, train
from dnnrepro.core.errors import ConfigError
from dnnrepro.core.sparsity import FixedMask, magnitude_prune, prunable_layers


def test_magnitude_prune_drops_the_smallest_share_with_ties_by_position():
    w = torch.tensor([[0.5, -0.1, 0.3], [0.1, -2.0, 0.0]])
    keep = magnitude_prune(w, 0.5)
    assert keep.dtype == torch.bool and keep.shape == w.shape
    assert keep.tolist() == [[True, False, True], [False, True, False]]
    assert magnitude_prune(w, 0.0).all() and not magnitude_prune(w, 1.0).any()
    ties = magnitude_prune(torch.ones(10), 0.3)
    assert int(ties.sum()) == 7 and not ties[:3].any()
    for bad in (-0.1, 1.5, "half", True):
        with pytest.raises(ConfigError, match="sparsity"):
            magnitude_prune(w, bad)


def test_prunable_layers_finds_conv_and_linear_by_name():
    net = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3), torch.nn.ReLU(), torch.nn.Flatten())
    net.append(torch.nn.Linear(8, 2))
    assert list(prunable_layers(net)) == ["0", "3"]
    assert list(prunable_layers(net, types=(torch.nn.Linear,))) == ["3"]


def _data():
    g = torch.Generator().manual_seed(0)
    return torch.rand(32, 4, generator=g), torch.randint(0, 2, (32,), generator=g)


def test_fixed_mask_keeps_pruned_weights_at_zero_through_momentum_and_decay():
    torch.manual_seed(0)
    net = models.MLP(4, (8,), 2)
    keep = magnitude_prune(net.layers.fc1.weight, 0.75)
    mask = FixedMask({"layers.fc1.weight": keep})
    cfg = train.TrainConfig(epochs=3, batch_size=8, lr=0.5, weight_decay=0.1, optimizer="momentum")
    before = net.layers.fc1.weight.detach().clone()
    train.fit(net, _data(), cfg, callbacks=[mask])
    w = net.layers.fc1.weight.detach()
    assert (w[~keep] == 0).all()
    assert (w[keep] != before[keep]).all()  # the kept weights did train
    assert mask.nonzeros() == {"layers.fc1.weight": int(keep.sum())}
    # without the mask the same weights move off zero
    torch.manual_seed(0)
    free = models.MLP(4, (8,), 2)
    train.fit(free, _data(), cfg)
    assert (free.layers.fc1.weight.detach()[~keep] != 0).any()


def test_fixed_mask_state_round_trip_and_checkpoint(tmp_path):
    torch.manual_seed(1)
    net = models.MLP(4, (8,), 2)
    keep = magnitude_prune(net.layers.fc2.weight, 0.5)
    mask = FixedMask({"layers.fc2.weight": keep})
    state = mask.state_dict()
    assert set(state) == {"mask.layers.fc2.weight"}
    other = FixedMask({"layers.fc2.weight": torch.ones_like(keep)})
    other.load_state_dict(state)
    assert torch.equal(other.masks["layers.fc2.weight"], keep)
    with pytest.raises(ConfigError, match="other parameters"):
        FixedMask({"layers.fc1.weight": torch.ones(8, 4)}).load_state_dict(state)
    # through fit's checkpoint: a resumed fit gets the saved mask, not the one it was given
    cfg = train.TrainConfig(epochs=1, batch_size=8)
    train.fit(net, _data(), cfg, checkpoint_dir=tmp_path, callbacks=[mask])
    fresh = FixedMask({"layers.fc2.weight": torch.ones_like(keep)})
    train.fit(models.MLP(4, (8,), 2), _data(), cfg, checkpoint_dir=tmp_path, callbacks=[fresh])
    assert torch.equal(fresh.masks["layers.fc2.weight"], keep)


def test_fixed_mask_checks_names_and_shapes_when_training_starts():
    net = models.MLP(4, (8,), 2)
    cfg = train.TrainConfig(epochs=1, batch_size=8)
    with pytest.raises(ConfigError, match="no parameter 'fc9.weight'"):
        train.fit(net, _data(), cfg, callbacks=[FixedMask({"fc9.weight": torch.ones(2)})])
    with pytest.raises(ConfigError, match="shape"):
        train.fit(net, _data(), cfg, callbacks=[FixedMask({"layers.fc1.weight": torch.ones(2)})])


def test_device_choice(monkeypatch):
    monkeypatch.delenv("DNNREPRO_DEVICE", raising=False)
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert device().type == expected
    assert device("cpu") == torch.device("cpu")
    monkeypatch.setenv("DNNREPRO_DEVICE", "cpu")
    assert device() == torch.device("cpu")
    monkeypatch.setenv("DNNREPRO_DEVICE", "tpu-please")
    with pytest.raises(ConfigError, match="DNNREPRO_DEVICE"):
        device()
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="no CUDA GPU"):
            device("cuda")
