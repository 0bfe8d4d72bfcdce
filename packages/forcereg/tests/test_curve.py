"""Accuracy-vs-FLOPs curve: the iso-accuracy MACs rule on hand-computed examples, the MAC count,
the pays-off rule, Caffe's multistep schedule, and independent seeds."""

import copy

import pytest
import torch
from torch import nn

from dnnrepro.core.errors import ConfigError
from dnnrepro.core.models import LeNet
from dnnrepro.core.train import TrainConfig, fit
from dnnrepro.forcereg import (
    CaffeMultiStep,
    conv_macs,
    decompose,
    energy_ranks,
    iso_accuracy_ratio,
    macs_needed,
)
from dnnrepro.forcereg.config import PROFILES
from dnnrepro.forcereg.curve import pays_off
from dnnrepro.forcereg.experiment import initial_model


def _pts(*pairs):
    return [{"macs": m, "accuracy": a} for m, a in pairs]


def test_iso_accuracy_ratio_on_a_hand_computed_example():
    # dense baseline 0.990 at 100 MACs; target 0.990 - 0.005 = 0.985
    force = _pts((100, 0.991), (60, 0.988), (30, 0.986), (20, 0.970), (10, 0.60))
    base = _pts((100, 0.990), (80, 0.987), (50, 0.984), (25, 0.90))
    assert macs_needed(force, 0.985, 100) == 30  # 20 is below the target
    assert macs_needed(base, 0.985, 100) == 80  # 50 misses by 0.001
    assert iso_accuracy_ratio(force, base, 0.990, 100) == pytest.approx(30 / 80)
    # the rule is not fooled by a non-monotone curve: the cheapest qualifying point counts
    bumpy = _pts((90, 0.95), (40, 0.99), (70, 0.96))
    assert macs_needed(bumpy, 0.985, 100) == 40
    # nothing reaches the target: the dense baseline's MACs (keep the dense net)
    assert macs_needed(_pts((50, 0.5)), 0.985, 100) == 100
    assert iso_accuracy_ratio(_pts((50, 0.5)), base, 0.990, 100) == pytest.approx(100 / 80)
    # a wider band admits cheaper points
    assert iso_accuracy_ratio(force, base, 0.990, 100, tolerance=0.021) == pytest.approx(20 / 50)
    with pytest.raises(ConfigError, match="finite"):
        macs_needed(_pts((float("nan"), 0.99)), 0.9, 100)


def test_conv_macs_counts_dense_and_decomposed_convs_only():
    torch.manual_seed(0)
    model = LeNet()
    # conv1: 24*24 outputs x 20 filters x 25; conv2: 8*8 x 50 x 500; the Linears are not counted
    assert conv_macs(model, (1, 28, 28)) == 576 * 20 * 25 + 64 * 50 * 500
    dec = decompose(model, ranks={"conv2": 10})
    assert conv_macs(dec, (1, 28, 28)) == 576 * 20 * 25 + 64 * 10 * (500 + 50)


def test_energy_ranks_keep_only_layers_that_pay_off():
    conv = nn.Conv2d(20, 50, 5)  # N=50, D=500: M pays off when M * 550 < 25000, i.e. M <= 45
    assert pays_off(conv, 45) and not pays_off(conv, 46)
    torch.manual_seed(0)
    model = LeNet()
    ranks = energy_ranks(model, 0.99)
    for name, rank in ranks.items():
        assert pays_off(model.get_submodule(name), rank)
    assert "conv1" not in energy_ranks(model, 1.0)  # full rank never pays off


def _data(n=64):
    g = torch.Generator().manual_seed(0)
    return torch.rand(n, 1, 8, 8, generator=g), torch.randint(0, 3, (n,), generator=g)


class _Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3)
        self.fc = nn.Linear(4, 3)

    def forward(self, x):
        return self.fc(self.conv(x).mean((2, 3)))


def test_caffe_multistep_is_caffes_momentum_update():
    """V <- mu V + lr_t (g + wd w); w <- w - V, with lr_t = lr * gamma^k, on a full batch."""
    torch.manual_seed(0)
    model = _Net()
    ref = copy.deepcopy(model)
    lr, mu, wd, gamma, steps = 0.1, 0.9, 0.01, 0.5, 5
    cfg = TrainConfig(steps=steps, batch_size=64, lr=lr, momentum=mu, weight_decay=wd)
    sched = CaffeMultiStep((2, 4), gamma)
    fit(model, _data(), cfg, callbacks=[sched])
    x, y = _data()
    v = [torch.zeros_like(p) for p in ref.parameters()]
    for step in range(steps):
        ref.zero_grad()
        nn.functional.cross_entropy(ref(x), y).backward()
        rate = lr * gamma ** sum(step >= m for m in (2, 4))
        with torch.no_grad():
            for p, vi in zip(ref.parameters(), v, strict=True):
                vi.mul_(mu).add_(rate * (p.grad + wd * p))
                p.sub_(vi)
    for a, b in zip(model.parameters(), ref.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    assert sched.scale(1) == 1 and sched.scale(2) == 0.5 and sched.scale(9) == 0.25
    with pytest.raises(ConfigError, match="increasing"):
        CaffeMultiStep((5, 3), 0.9)
    with pytest.raises(ConfigError, match="gamma"):
        CaffeMultiStep((5,), 0.0)


def test_paper_seeds_start_from_independent_initializations():
    recipe = PROFILES["paper"].scratch
    a, b, a2 = initial_model(recipe, 0), initial_model(recipe, 1), initial_model(recipe, 0)
    for pa, pb, pa2 in zip(a.parameters(), b.parameters(), a2.parameters(), strict=True):
        assert not torch.equal(pa, pb)
        assert torch.equal(pa, pa2)
    # and each arm of one seed starts from that seed's init (same start across arms)
    assert recipe.arms[0].strength == 0 and {a.kind for a in recipe.arms[1:]} == {
        "constant",
        "degradation",
    }


def test_paper_recipe_is_the_authors_lenet_recipe():
    recipe = PROFILES["paper"].scratch
    assert recipe.dataset == "mnist" and recipe.train.steps == 10_000
    assert (recipe.train.lr, recipe.train.momentum, recipe.train.weight_decay) == (0.01, 0.9, 5e-4)
    assert recipe.milestones == (5000, 7000, 8000, 9000, 9500) and recipe.gamma == 0.9
    constant = next(a for a in recipe.arms if a.name == "constant")
    assert constant.strength == 1e-3 and recipe.force_layers == ("conv1", "conv2")
