import math

import pytest
import torch

from dnnrepro.conv_m_da import (
    GradientReversal,
    entropy_loss,
    mk_mmd,
    reverse_gradient,
    warm_start_coeff,
)
from dnnrepro.core.errors import ConfigError


def _normal(n, d, shift=0.0, seed=0):
    return torch.randn(n, d, generator=torch.Generator().manual_seed(seed)) + shift


def test_mmd_zero_for_identical_samples():
    a = _normal(32, 5)
    assert float(mk_mmd(a, a.clone())) == pytest.approx(0.0, abs=1e-6)


def test_mmd_grows_with_mean_shift():
    a = _normal(64, 4, seed=1)
    values = [float(mk_mmd(a, _normal(64, 4, shift, seed=2))) for shift in (0.0, 0.5, 1.0, 2.0)]
    assert all(v >= 0 for v in values)
    assert values == sorted(values) and values[-1] > 10 * values[0]


@pytest.mark.parametrize("estimator", ["unbiased", "linear"])
def test_unbiased_estimators_center_on_zero_for_one_distribution(estimator):
    same = [
        float(mk_mmd(_normal(32, 3, seed=s), _normal(32, 3, seed=100 + s), estimator=estimator))
        for s in range(40)
    ]
    shifted = [
        float(
            mk_mmd(_normal(32, 3, seed=s), _normal(32, 3, 1.5, seed=100 + s), estimator=estimator)
        )
        for s in range(40)
    ]
    mean_same = sum(same) / len(same)
    assert abs(mean_same) < 0.25 * (sum(shifted) / len(shifted))
    assert min(same) < 0 < sum(shifted)  # unbiased estimates can go negative


def test_mmd_bad_inputs():
    with pytest.raises(ConfigError):
        mk_mmd(torch.rand(4, 3), torch.rand(4, 2))
    with pytest.raises(ConfigError):
        mk_mmd(torch.rand(4, 3), torch.rand(4, 3), estimator="cubic")
    with pytest.raises(ConfigError):
        mk_mmd(torch.rand(4, 3), torch.rand(6, 3), estimator="linear")
    with pytest.raises(ConfigError):
        mk_mmd(torch.rand(4, 3), torch.rand(4, 3), kernels=())


def test_gradient_reversal_is_identity_forward_and_flips_gradient():
    x = torch.randn(5, 3, requires_grad=True)
    w = torch.randn(5, 3)
    y = GradientReversal(0.7)(x)
    assert torch.equal(y, x)
    (y * w).sum().backward()
    assert torch.allclose(x.grad, -0.7 * w)
    x2 = torch.randn(2, requires_grad=True)
    reverse_gradient(x2, 0.0).sum().backward()
    assert torch.equal(x2.grad, torch.zeros(2))


def test_warm_start_schedule():
    values = [warm_start_coeff(i, max_iters=100) for i in range(0, 2000, 50)]
    assert values[0] == 0.0
    assert all(b > a for a, b in zip(values, values[1:], strict=False))
    assert values[-1] == pytest.approx(1.0, abs=1e-6)
    assert warm_start_coeff(10**6, lo=0.2, hi=0.5) == pytest.approx(0.5)


def test_entropy_bounds():
    k = 7
    assert float(entropy_loss(torch.zeros(3, k))) == pytest.approx(math.log(k))
    one_hot = torch.full((3, k), -1e4)
    one_hot[:, 2] = 1e4
    assert float(entropy_loss(one_hot)) == pytest.approx(0.0, abs=1e-6)
    rand = float(entropy_loss(torch.randn(16, k) * 3))
    assert 0 <= rand <= math.log(k)
    with pytest.raises(ConfigError):
        entropy_loss(torch.zeros(0, k))
