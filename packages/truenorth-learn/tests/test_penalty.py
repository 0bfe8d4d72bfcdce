import pytest
import torch

from dnnrepro.core.errors import ConfigError
from dnnrepro.truenorth_learn import PENALTY_KINDS, TeaLayer, VariancePenalty, build
from dnnrepro.truenorth_learn.penalty import SYNAPSE_KINDS, synapse_penalty


@pytest.mark.parametrize("kind", SYNAPSE_KINDS)
def test_penalty_zero_at_binary_and_maximal_at_half(kind):
    s = torch.full((101,), 2)
    p = torch.linspace(0, 1, 101)
    r = synapse_penalty(kind, p, s)
    assert float(r[0]) == 0 and float(r[-1]) == 0
    assert torch.all(r >= 0)
    assert int(r.argmax()) == 50  # p = 0.5
    assert torch.all(r[1:51] > r[:50])  # rises toward 0.5


@pytest.mark.parametrize("kind", PENALTY_KINDS)
def test_penalty_on_a_layer(kind):
    layer = TeaLayer(8, 4)
    x = (torch.rand(5, 8, generator=torch.Generator().manual_seed(0)) > 0.5).float()
    with torch.no_grad():
        layer.p.copy_((torch.rand(8, 4) > 0.5).float())
    assert float(VariancePenalty(kind, 5.0)(layer, x).detach()) == 0.0
    with torch.no_grad():
        layer.p.fill_(0.3)  # not 0.5: the maximum of var, where its gradient is 0
    value = VariancePenalty(kind, 2.0)(layer, x)
    value.backward()
    assert float(value.detach()) > 0 and torch.isfinite(layer.p.grad).all()
    assert layer.p.grad.abs().sum() > 0


def test_var_penalty_is_the_sampled_weight_variance():
    layer = TeaLayer(4, 1, weights=(-2, -1, 1, 2))
    with torch.no_grad():
        layer.p.fill_(0.5)
    # mean of s^2 * 0.25 over s in (-2, -1, 1, 2) = 0.25 * 10 / 4
    assert float(VariancePenalty("var", 1.0)(layer).detach()) == pytest.approx(0.625)


def _sampled_potentials(layer, x, samples, gen):
    """Monte Carlo of one tick: sampled crossbar bits and input spikes -> V (samples, B, m)."""
    s = layer.synapse_weights().double()
    p = layer.p.detach().double()
    leak = layer.integer_leak().detach().double()
    out = []
    for _ in range(samples):
        bits = (torch.rand(p.shape, generator=gen, dtype=torch.float64) < p).double()
        spikes = (torch.rand(x.shape, generator=gen, dtype=torch.float64) < x).double()
        out.append(spikes @ (bits * s) + leak)
    return torch.stack(out)


def test_neuron_var_penalty_matches_monte_carlo():
    gen = torch.Generator().manual_seed(1)
    layer = TeaLayer(64, 8).double()
    layer.reset_parameters(gen)
    x = torch.rand(6, 64, generator=gen, dtype=torch.float64)
    value = float(VariancePenalty("neuron_var", 1.0)(layer, x).detach())
    v = _sampled_potentials(layer, x, 3000, gen)
    mc = float(v.var(0).mean())
    # the mean of 48 sample variances of 3,000 draws: relative error well under 2%
    assert value == pytest.approx(mc, rel=0.02)
    # and it is not the synapse-only variance (input spikes add their own)
    p = layer.p.detach()
    syn_only = float((x @ (p * (1 - p) * layer.synapse_weights() ** 2)).mean())
    assert abs(value - syn_only) > 0.05 * value


def test_spike_var_penalty_matches_monte_carlo():
    gen = torch.Generator().manual_seed(2)
    layer = TeaLayer(256, 16).double()
    layer.reset_parameters(gen)
    with torch.no_grad():
        layer.leak.copy_(torch.linspace(-12, 10, 16, dtype=torch.float64))
    x = torch.rand(4, 256, generator=gen, dtype=torch.float64)
    value = float(VariancePenalty("spike_var", 1.0)(layer, x).detach())
    spikes = (_sampled_potentials(layer, x, 3000, gen) >= 1).double()
    mc = float(spikes.var(0).mean())
    # y comes from the normal approximation of P(V >= 1): close, not exact, at a fan-in of 256
    assert value == pytest.approx(mc, abs=0.005)
    assert 0.05 < mc < 0.25  # a regime where the variance is neither 0 nor saturated


@pytest.mark.parametrize("kind", ["neuron_var", "spike_var"])
def test_activation_penalty_reads_the_latest_forward_pass(kind):
    model = build("digits-2core")
    model.reset_parameters(0)
    pen = VariancePenalty(kind, 1.0)
    with pytest.raises(ConfigError, match="attach"):
        pen(model)
    handle = pen.attach(model)
    x = torch.rand(5, 1, 8, 8)
    model(x)
    value = pen(model)
    h0 = x.reshape(5, -1)
    first = model.stages[0].layers[0]
    out = model.stages[1].layers[0]
    if kind == "neuron_var":
        v0, v1 = first.moments(h0)[1], out.moments(first(h0))[1]
        expected = (v0.sum() + v1.sum()) / (v0.numel() + v1.numel())
    else:
        y = out(first(h0))
        expected = (y * (1 - y)).mean()
    assert float(value.detach()) == pytest.approx(float(expected.detach()), rel=1e-5)
    handle.remove()
    with pytest.raises(ConfigError):
        pen(model)


@pytest.mark.parametrize("args", [("nope", 1.0), ("var", -1.0), ("var", float("nan"))])
def test_bad_penalty_arguments(args):
    with pytest.raises(ConfigError):
        VariancePenalty(*args)


def test_penalty_is_a_module():
    pen = VariancePenalty("l1_to_binary", 3.0)
    assert isinstance(pen, torch.nn.Module) and "l1_to_binary" in repr(pen)
