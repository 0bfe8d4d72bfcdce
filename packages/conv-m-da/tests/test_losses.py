import math

import pytest
import torch

from dnnrepro.conv_m_da import (
    AdaptationNet,
    AdaptationObjective,
    GradientReversal,
    conditional_map,
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


def _direct_linear_mk_mmd(s, t, scales):
    """DAN's linear-time MK-MMD written out element by element (Gretton et al. 2012, eq. for
    MMD_l): mean over i of h(z_i), z_i = (s_{2i}, s_{2i+1}, t_{2i}, t_{2i+1}),
    h = k(s, s') + k(t, t') - k(s, t') - k(s', t), with k the MEAN of the Gaussian kernels and
    sigma^2 the mean squared distance over all distinct pairs of the joint batch."""
    joint = [row for row in s.tolist()] + [row for row in t.tolist()]
    n = len(joint)
    d2 = [[sum((a - b) ** 2 for a, b in zip(p, q, strict=True)) for q in joint] for p in joint]
    sigma2 = sum(d2[i][j] for i in range(n) for j in range(n) if i != j) / (n * (n - 1))

    def k(p, q):
        d = sum((a - b) ** 2 for a, b in zip(p, q, strict=True))
        return sum(math.exp(-d / (2 * sc * sigma2)) for sc in scales) / len(scales)

    s, t = s.tolist(), t.tolist()
    terms = [
        k(s[i], s[i + 1]) + k(t[i], t[i + 1]) - k(s[i], t[i + 1]) - k(s[i + 1], t[i])
        for i in range(0, len(s), 2)
    ]
    return sum(terms) / len(terms)


def test_linear_mk_mmd_equals_a_direct_computation_on_a_tiny_batch():
    s, t = _normal(6, 3, seed=3), _normal(6, 3, 0.7, seed=4)
    scales = (0.125, 0.25, 0.5, 1.0, 2.0)
    ours = float(mk_mmd(s, t, scales, estimator="linear"))
    assert ours == pytest.approx(_direct_linear_mk_mmd(s, t, scales), rel=1e-5, abs=1e-7)
    # averaged kernels: every estimate lies in [-2, 2], whatever the number of kernels
    far = float(mk_mmd(s, t + 100.0, scales, estimator="biased"))
    assert 1.0 < far <= 2.0 + 1e-6


def test_conditional_map_is_the_outer_product_with_the_softmax():
    z, logits = torch.randn(4, 3), torch.randn(4, 5)
    h = conditional_map(z, logits)
    p = torch.softmax(logits, 1)
    assert h.shape == (4, 15)
    assert torch.allclose(h.view(4, 5, 3), p[:, :, None] * z[:, None, :])
    with pytest.raises(ConfigError):
        conditional_map(torch.randn(4, 3), torch.randn(3, 5))


def test_objective_and_head_train_any_backbone_in_a_plain_loop():
    backbone = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 8), torch.nn.ReLU())
    model = AdaptationNet(backbone, 8, 3, bottleneck=4, residual=True, discriminator_hidden=6)
    objective = AdaptationObjective(
        lambda_domain=1.0, lambda_mmd=1.0, lambda_entropy=0.1, total_steps=4
    )
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    xs, ys, xt = torch.rand(8, 1, 4, 4), torch.arange(8) % 3, torch.rand(8, 1, 4, 4) + 0.5
    for step in range(4):
        loss = objective(model, xs, ys, xt, step)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert set(objective.terms) == {"ce", "mmd", "domain", "domain_acc", "entropy"}
    assert model(xs).shape == (8, 3)
    # all weights zero: the target batch is never forwarded (source-only training)
    plain = AdaptationObjective()
    assert not plain.uses_target and float(plain(model, xs, ys, None, 0).detach()) > 0
    with pytest.raises(ConfigError):
        AdaptationObjective(lambda_mmd=-1.0)
