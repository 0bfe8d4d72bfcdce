import math

import pytest
import torch

from dnnrepro.core.errors import ConfigError
from dnnrepro.ssl import group_norms, sqrt_multiplier


def test_conv_group_norms_match_direct_formulas():
    w = torch.randn(4, 3, 2, 5)
    torch.testing.assert_close(
        group_norms(w, "filter"), torch.stack([w[n].pow(2).sum().sqrt() for n in range(4)])
    )
    torch.testing.assert_close(
        group_norms(w, "channel"), torch.stack([w[:, c].pow(2).sum().sqrt() for c in range(3)])
    )
    fibres = [
        w[:, c, r, s].pow(2).sum().sqrt() for c in range(3) for r in range(2) for s in range(5)
    ]
    torch.testing.assert_close(group_norms(w, "shape"), torch.stack(fibres))
    torch.testing.assert_close(group_norms(w, "layer"), w.pow(2).sum().sqrt().reshape(1))
    # the GEMM view: rows are filters, columns are shape fibres
    torch.testing.assert_close(group_norms(w, "row"), group_norms(w, "filter"))
    torch.testing.assert_close(group_norms(w, "column"), group_norms(w, "shape"))


def test_norm_has_the_square_root_and_is_homogeneous():
    w = torch.full((2, 8), 3.0)
    assert torch.allclose(group_norms(w, "row"), torch.full((2,), 3.0 * math.sqrt(8)))
    torch.testing.assert_close(group_norms(-2.5 * w, "row"), 2.5 * group_norms(w, "row"))


def test_linear_rows_and_columns():
    w = torch.randn(5, 7)
    torch.testing.assert_close(group_norms(w, "row"), w.norm(dim=1))
    torch.testing.assert_close(group_norms(w, "column"), w.norm(dim=0))
    torch.testing.assert_close(group_norms(w, "channel"), w.norm(dim=0))


def test_gradient_is_w_over_norm_and_zero_for_a_zero_group():
    w = torch.randn(3, 2, 3, 3)
    with torch.no_grad():
        w[1] = 0
    w.requires_grad_(True)
    group_norms(w, "filter").sum().backward()
    assert torch.isfinite(w.grad).all()
    assert torch.equal(w.grad[1], torch.zeros_like(w.grad[1]))
    for n in (0, 2):
        torch.testing.assert_close(w.grad[n], w[n].detach() / w[n].detach().norm())
        assert abs(float(w.grad[n].norm()) - 1.0) < 1e-5  # ||dR/dw_g|| = 1 for any non-zero group


def test_autograd_check_away_from_zero():
    w = torch.randn(3, 2, 2, 2, dtype=torch.float64, requires_grad=True)
    for kind in ("filter", "channel", "shape", "layer"):
        assert torch.autograd.gradcheck(lambda t, k=kind: group_norms(t, k), (w,))


def test_grouped_conv_channels_are_per_group():
    w = torch.randn(4, 2, 3, 3)  # 2 conv groups of 2 filters, each sees 2 channels
    norms = group_norms(w, "channel", conv_groups=2)
    expected = [w[g * 2 : g * 2 + 2, c].norm() for g in range(2) for c in range(2)]
    torch.testing.assert_close(norms, torch.stack(expected))


def test_sqrt_multiplier_reproduces_caffenet_columns():
    assert round(sqrt_multiplier(384, 128), 4) == 1.7321
    assert round(sqrt_multiplier(192, 128), 4) == 1.2247


def test_bad_kind_and_shape():
    with pytest.raises(ConfigError, match="unknown group kind"):
        group_norms(torch.randn(2, 2), "diagonal")
    with pytest.raises(ConfigError, match="Conv2d"):
        group_norms(torch.randn(2, 2, 2), "filter")
