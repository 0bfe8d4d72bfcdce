"""L1Pruning: torch-native hooks in a plain loop, removable, masks in state_dict."""

import pytest
import torch
from torch import nn

from dnnrepro.core.errors import ConfigError
from dnnrepro.holistic_sparsecnn import L1Pruning


def _loop(model, opt, steps=20):
    g = torch.Generator().manual_seed(0)
    for _ in range(steps):
        x = torch.randn(16, 8, generator=g)
        loss = model(x).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()


def test_l1_pruning_zeroes_small_weights_and_remove_stops_it():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 4))
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    pruning = L1Pruning({"0": model[0]}, strength=0.05, threshold=0.02, frozen=True).attach(opt)
    _loop(model, opt)
    d = pruning.density()["0"]
    assert d < 0.9
    assert "0.weight_mask" in model.state_dict()
    assert bool((model[0].weight[~model[0].weight_mask] == 0).all())
    assert bool((model[2].weight != 0).all())  # untouched layer
    pruning.remove()
    before = model[0].weight.detach().clone()
    opt.zero_grad()
    model(torch.ones(2, 8)).sum().backward()
    grad = model[0].weight.grad.clone()
    opt.step()
    # no hook any more: a plain SGD step, zeros may move again
    torch.testing.assert_close(model[0].weight.detach(), before - 0.05 * grad)


def test_l1_pruning_bad_input():
    with pytest.raises(ConfigError, match="at least one"):
        L1Pruning({}, 0.1)
    with pytest.raises(ConfigError, match="strength"):
        L1Pruning({"a": nn.Linear(2, 2)}, float("nan"))
    with pytest.raises(ConfigError, match="no weight"):
        L1Pruning({"a": nn.ReLU()}, 0.1)
