import pytest
import torch

from dnnrepro.core.errors import ConfigError
from dnnrepro.truenorth_learn import PENALTY_KINDS, TeaLayer, VariancePenalty
from dnnrepro.truenorth_learn.penalty import synapse_penalty


@pytest.mark.parametrize("kind", PENALTY_KINDS)
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
    with torch.no_grad():
        layer.p.copy_((torch.rand(8, 4) > 0.5).float())
    assert float(VariancePenalty(kind, 5.0)(layer).detach()) == 0.0
    with torch.no_grad():
        layer.p.fill_(0.5)
    value = VariancePenalty(kind, 2.0)(layer)
    value.backward()
    assert float(value.detach()) > 0 and torch.isfinite(layer.p.grad).all()


def test_var_penalty_is_the_sampled_weight_variance():
    layer = TeaLayer(4, 1, weights=(-2, -1, 1, 2))
    with torch.no_grad():
        layer.p.fill_(0.5)
    # mean of s^2 * 0.25 over s in (-2, -1, 1, 2) = 0.25 * 10 / 4
    assert float(VariancePenalty("var", 1.0)(layer).detach()) == pytest.approx(0.625)


@pytest.mark.parametrize("args", [("nope", 1.0), ("var", -1.0), ("var", float("nan"))])
def test_bad_penalty_arguments(args):
    with pytest.raises(ConfigError):
        VariancePenalty(*args)
