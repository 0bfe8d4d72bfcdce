"""The force update: autograd identity, no radial part, loop vs vectorized, thresholds, hook order."""

import copy

import pytest
import torch
from torch import nn

from dnnrepro.core.errors import ConfigError
from dnnrepro.core.train import TrainConfig, fit
from dnnrepro.forcereg import ForceRegularizer, distance_energy, force, force_loop


def _weight(n=7, c=3, k=3, seed=0, dtype=torch.float64):
    return torch.randn(n, c, k, k, generator=torch.Generator().manual_seed(seed), dtype=dtype)


@pytest.mark.parametrize("kind", ["degradation", "constant"])
def test_force_is_norm_squared_times_energy_gradient(kind):
    w = _weight().requires_grad_(True)
    (grad,) = torch.autograd.grad(distance_energy(w, kind), w)
    norms2 = w.detach().flatten(1).norm(dim=1) ** 2
    expected = norms2[:, None, None, None] * grad
    torch.testing.assert_close(force(w.detach(), kind), expected, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("kind", ["degradation", "constant"])
def test_force_matches_finite_differences_of_the_energy(kind):
    w = _weight(n=5, c=2, k=2, seed=3)
    g = force(w, kind).flatten(1)
    norms2 = w.flatten(1).norm(dim=1) ** 2
    eps = 1e-6
    flat = w.flatten()
    for idx in [0, 5, 11, 19, 39]:
        plus, minus = flat.clone(), flat.clone()
        plus[idx] += eps
        minus[idx] -= eps
        fd = (distance_energy(plus.view_as(w), kind) - distance_energy(minus.view_as(w), kind)) / (
            2 * eps
        )
        row = idx // w[0].numel()
        assert float(g.flatten()[idx]) == pytest.approx(float(norms2[row] * fd), rel=1e-6, abs=1e-9)


@pytest.mark.parametrize("kind", ["degradation", "constant"])
def test_force_has_no_radial_part(kind):
    w = _weight(n=20, c=8, k=3, seed=1)
    g = force(w, kind).flatten(1)
    radial = (g * w.flatten(1)).sum(1) / (g.norm(dim=1) * w.flatten(1).norm(dim=1))
    assert radial.abs().max() < 1e-10


@pytest.mark.parametrize("kind", ["degradation", "constant"])
def test_vectorized_equals_pairwise_loop(kind):
    w = _weight(n=9, c=4, k=3, seed=2, dtype=torch.float32)
    w[3] = 0.0  # a dead filter: neither feels nor exerts force
    w[5] = w[1] * 2.0  # same direction as filter 1: the constant force skips this pair
    torch.testing.assert_close(force(w, kind), force_loop(w, kind), rtol=1e-4, atol=1e-5)
    assert force(w, kind)[3].abs().max() == 0


@pytest.mark.parametrize("kind", ["degradation", "constant"])
def test_scaling_a_filter_scales_its_force(kind):
    w = _weight(n=6, seed=4)
    scaled = w.clone()
    scaled[2] *= 3.5
    torch.testing.assert_close(force(scaled, kind)[2], 3.5 * force(w, kind)[2])
    torch.testing.assert_close(force(scaled, kind)[0], force(w, kind)[0])


def test_identical_directions_are_a_fixed_point():
    w = torch.randn(1, 12, dtype=torch.float64) * torch.tensor([[1.0], [2.0], [0.5]])
    for kind in ("degradation", "constant"):
        assert force(w, kind).abs().max() < 1e-12


@pytest.mark.parametrize("kind", ["degradation", "constant"])
def test_small_descent_steps_reduce_energy_and_keep_norms(kind):
    w = _weight(n=10, c=3, k=3, seed=5)
    norms = w.flatten(1).norm(dim=1)
    energy = float(distance_energy(w, kind))
    for _ in range(20):
        w = w - 1e-3 * force(w, kind)
    assert float(distance_energy(w, kind)) < energy
    # first-order norm preservation: drift is second order in the (small) step
    torch.testing.assert_close(w.flatten(1).norm(dim=1), norms, rtol=1e-3, atol=0)


def test_bad_inputs_raise_config_error():
    with pytest.raises(ConfigError, match="kind"):
        force(torch.randn(3, 4), "gravity")
    with pytest.raises(ConfigError, match="2 axes"):
        force(torch.randn(5), "constant")
    with pytest.raises(ConfigError, match="floating"):
        force(torch.ones(3, 4, dtype=torch.int64))


class _Tiny(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 4, 3)
        self.conv2 = nn.Conv2d(4, 6, 3)
        self.bn = nn.BatchNorm2d(6)
        self.fc = nn.Linear(6, 3)

    def forward(self, x):
        return self.fc(self.bn(self.conv2(self.conv1(x))).mean((2, 3)))


def test_regularizer_defaults_to_all_convs_and_respects_opt_in():
    model = _Tiny()
    assert ForceRegularizer(model, 1e-3).layer_names == ["conv1", "conv2"]
    reg = ForceRegularizer(model, 1e-3, per_layer={"conv2": 2.0, "fc": 1.0, "conv1": 0.0})
    assert reg.layer_names == ["conv2", "fc"]
    for p in model.parameters():
        p.grad = torch.zeros_like(p)
    reg(model, 0)
    assert model.conv1.weight.grad.abs().max() == 0
    torch.testing.assert_close(
        model.conv2.weight.grad, 2e-3 * force(model.conv2.weight, "degradation")
    )
    assert model.fc.weight.grad.abs().max() > 0
    assert model.conv2.bias.grad.abs().max() == 0  # biases are not filters


def test_regularizer_bad_layers_raise():
    model = _Tiny()
    with pytest.raises(ConfigError, match="BatchNorm2d"):
        ForceRegularizer(model, 1e-3, per_layer={"bn": 1.0})
    with pytest.raises(ConfigError, match="not a layer"):
        ForceRegularizer(model, 1e-3, per_layer={"conv9": 1.0})
    with pytest.raises(ConfigError, match="finite"):
        ForceRegularizer(model, float("nan"))
    with pytest.raises(ConfigError, match="kind"):
        ForceRegularizer(model, 1e-3, kind="linear")


def _data(n=32):
    g = torch.Generator().manual_seed(0)
    return torch.rand(n, 1, 8, 8, generator=g), torch.randint(0, 3, (n,), generator=g)


def test_hook_runs_after_weight_decay_and_before_momentum():
    """One momentum step: w1 = w0 - lr * (grad + wd*w0 + lam*force(w0)) exactly."""
    torch.manual_seed(0)
    model = _Tiny()
    ref = copy.deepcopy(model)
    cfg = TrainConfig(epochs=1, batch_size=32, lr=0.1, momentum=0.9, weight_decay=0.01, max_steps=1)
    reg = ForceRegularizer(model, 0.05, "constant")
    w0 = model.conv2.weight.detach().clone()
    fit(model, _data(), cfg, callbacks=[reg])
    x, y = _data()
    loss = nn.functional.cross_entropy(ref(x), y)
    loss.backward()
    expected = w0 - 0.1 * (ref.conv2.weight.grad + 0.01 * w0 + 0.05 * force(w0, "constant"))
    torch.testing.assert_close(model.conv2.weight.detach(), expected, rtol=1e-5, atol=1e-6)


def test_zero_strength_and_until_step_leave_plain_sgd():
    torch.manual_seed(0)
    a = _Tiny()
    b, c = copy.deepcopy(a), copy.deepcopy(a)
    cfg = TrainConfig(epochs=1, batch_size=8, lr=0.1, weight_decay=1e-3, max_steps=3)
    fit(a, _data(), cfg)
    fit(b, _data(), cfg, callbacks=[ForceRegularizer(b, 0.0)])
    fit(c, _data(), cfg, callbacks=[ForceRegularizer(c, 0.5, until_step=0)])
    for pa, pb, pc in zip(a.parameters(), b.parameters(), c.parameters(), strict=True):
        assert torch.equal(pa, pb) and torch.equal(pa, pc)


def test_training_with_force_lowers_the_distance_energy():
    torch.manual_seed(0)
    a = _Tiny()
    b = copy.deepcopy(a)
    cfg = TrainConfig(epochs=2, batch_size=8, lr=0.05)
    fit(a, _data(), cfg)
    fit(b, _data(), cfg, callbacks=[ForceRegularizer(b, 0.05, "degradation")])
    assert distance_energy(b.conv2.weight) < distance_energy(a.conv2.weight)


def test_attach_adds_the_force_in_a_plain_torch_loop_and_remove_detaches_it():
    """With the hook, torch SGD gives w - lr * (grad + wd * w + s * force(w)); after remove(),
    plain SGD again. until_step counts backward passes."""
    torch.manual_seed(0)
    model = _Tiny()
    ref = copy.deepcopy(model)
    x, y = _data()
    reg = ForceRegularizer(model, 0.05, "constant", per_layer={"conv2": 1.0}, until_step=1)
    handle = reg.attach()
    opt = torch.optim.SGD(model.parameters(), lr=0.1, weight_decay=0.01)
    w0 = model.conv2.weight.detach().clone()
    nn.functional.cross_entropy(model(x), y).backward()
    opt.step()
    assert handle.step == 1
    nn.functional.cross_entropy(ref(x), y).backward()
    expected = w0 - 0.1 * (ref.conv2.weight.grad + 0.01 * w0 + 0.05 * force(w0, "constant"))
    torch.testing.assert_close(model.conv2.weight.detach(), expected, rtol=1e-5, atol=1e-6)
    # step 1 >= until_step: the hook no longer adds anything
    opt.zero_grad()
    nn.functional.cross_entropy(model(x), y).backward()
    plain = model.conv2.weight.grad.clone()
    handle.remove()
    opt.zero_grad()
    nn.functional.cross_entropy(model(x), y).backward()
    torch.testing.assert_close(model.conv2.weight.grad, plain)
    assert not handle.hooks
