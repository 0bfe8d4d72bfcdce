import pytest
import torch

from dnnrepro.core.errors import ConfigError
from dnnrepro.truenorth_learn import TeaLayer, build, digits_2core, mnist_5core


def _monte_carlo(layer, x, samples, gen):
    """Sample crossbar bits and input spikes, return the integer potentials (samples, B, m)."""
    s = layer.synapse_weights().double()
    p = layer.p.detach().double()
    leak = layer.integer_leak().detach().double()
    vs = []
    for _ in range(samples):
        bits = (torch.rand(p.shape, generator=gen, dtype=torch.float64) < p).double()
        spikes = (torch.rand(x.shape, generator=gen, dtype=torch.float64) < x).double()
        vs.append(spikes @ (bits * s) + leak)
    return torch.stack(vs)


def test_gaussian_moments_match_monte_carlo():
    gen = torch.Generator().manual_seed(0)
    layer = TeaLayer(40, 6)
    layer.reset_parameters(gen)
    with torch.no_grad():
        layer.leak.copy_(torch.tensor([-3.0, -1.2, 0.0, 0.4, 2.0, 5.0]))
    x = torch.rand(3, 40, generator=gen, dtype=torch.float64)
    mu, var = layer.double().moments(x)
    n = 4000
    v = _monte_carlo(layer, x, n, gen)
    mc_mean, mc_var = v.mean(0), v.var(0)
    # mean: 5 standard errors; variance: relative error of a sample variance ~ sqrt(2/n) (+ kurtosis)
    assert torch.all((mc_mean - mu).abs() <= 5 * torch.sqrt(var / n) + 1e-9)
    assert torch.all((mc_var - var).abs() <= 6 * var * (2 / n) ** 0.5 + 1e-9)
    # the firing probability is the normal approximation of P(V >= 1), close to the sampled rate
    fire = layer(x.double())
    assert torch.all((fire - (v >= 1).double().mean(0)).abs() < 0.08)


def test_deterministic_layer_is_an_exact_step():
    layer = TeaLayer(8, 3)
    with torch.no_grad():
        layer.p.copy_((torch.arange(24).view(8, 3) % 3 == 0).float())
        layer.leak.copy_(torch.tensor([0.0, 1.0, -2.0]))
    x = (torch.arange(16).view(2, 8) % 2).float()
    mu, var = layer.moments(x)
    assert torch.all(var == 0)
    out = layer(x)
    assert torch.equal(out, (mu >= 1).float())


def test_gradients_finite_at_zero_variance_and_large_mean():
    layer = TeaLayer(16, 4)
    with torch.no_grad():
        layer.p.fill_(1.0)
        layer.leak.copy_(torch.tensor([200.0, -200.0, 0.0, 3.0]))
    x = torch.ones(2, 16, requires_grad=True)
    layer(x).sum().backward()
    assert torch.isfinite(layer.p.grad).all() and torch.isfinite(x.grad).all()


def test_each_neuron_sees_at_most_four_weights_and_types_are_even():
    layer = TeaLayer(256, 10)
    s = layer.synapse_weights()
    for j in range(10):
        assert len(set(s[:, j].tolist())) <= 4
    assert torch.equal(torch.bincount(layer.axon_type), torch.full((4,), 64))


def test_leak_is_rounded_in_forward_with_straight_through_gradient():
    layer = TeaLayer(4, 2)
    with torch.no_grad():
        layer.p.zero_()
        layer.leak.copy_(torch.tensor([0.6, 0.4]))
    out = layer(torch.zeros(1, 4))
    assert out.tolist() == [[1.0, 0.0]]  # round(0.6) = 1 fires, round(0.4) = 0 does not
    layer(torch.rand(3, 4)).sum().backward()
    assert layer.leak.grad is not None


def test_clip_projects_onto_chip_ranges():
    layer = TeaLayer(4, 2)
    with torch.no_grad():
        layer.p.fill_(1.7)
        layer.leak.fill_(-900)
    layer.clip_()
    assert float(layer.p.detach().max()) == 1.0 and float(layer.leak.detach().min()) == -255


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(in_features=0, out_features=3),
        dict(in_features=3, out_features=3, axon_types=5, weights=(1, 2, 3, 4, 5)),
        dict(in_features=3, out_features=3, weights=(1, 2)),
        dict(in_features=3, out_features=3, weights=(1, 2, 3, 300)),
    ],
)
def test_bad_layer_arguments_raise(kwargs):
    with pytest.raises(ConfigError):
        TeaLayer(**kwargs)


def test_architectures_and_input_checks():
    net = mnist_5core()
    assert net(torch.rand(2, 1, 28, 28)).shape == (2, 10)
    assert digits_2core()(torch.rand(3, 1, 8, 8)).shape == (3, 10)
    with pytest.raises(ConfigError, match="shape"):
        net(torch.rand(2, 1, 8, 8))
    with pytest.raises(ConfigError, match="unknown architecture"):
        build("resnet")
