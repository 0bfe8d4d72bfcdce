"""SparseConv2d / SparseLinear behave like nn.Conv2d / nn.Linear modules: buffers in state_dict,
.to(), deepcopy, safetensors across processes, torch.compile, torch.export, groups."""

import copy
import subprocess
import sys

import pytest
import torch
from torch import nn

from dnnrepro.holistic_sparsecnn import SparseConv2d, SparseLinear, densify


def _pruned(module, keep=0.3, seed=0):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        module.weight.mul_(torch.rand(module.weight.shape, generator=g) < keep)
        if module.bias is not None:
            module.bias.copy_(torch.randn(module.bias.shape, generator=g))
    return module


CASES = [  # in, out, kernel, stride, padding, dilation, groups
    (3, 6, 3, 1, 1, 1, 1),
    (4, 8, 3, 2, 0, 1, 2),
    (6, 6, 3, 1, 2, 2, 6),  # depthwise, dilated
    (4, 4, (3, 5), (2, 1), (1, 2), (1, 2), 4),
    (8, 4, 1, 1, 0, 1, 4),
]


@pytest.mark.parametrize("case", CASES)
def test_equals_conv2d_over_strides_padding_dilation_groups(case):
    cin, cout, k, s, p, d, g = case
    torch.manual_seed(0)
    conv = _pruned(nn.Conv2d(cin, cout, k, s, p, d, g))
    sparse = SparseConv2d.from_dense(conv)
    assert (sparse.stride, sparse.groups) == (conv.stride, conv.groups)
    assert (sparse.padding, sparse.dilation) == (conv.padding, conv.dilation)
    x = torch.randn(2, cin, 11, 9)
    torch.testing.assert_close(sparse(x), conv(x).detach(), rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(sparse.to_dense().weight, conv.weight.detach())


def test_linear_equals_nn_linear_and_densify_inverts():
    torch.manual_seed(0)
    lin = _pruned(nn.Linear(20, 7))
    sparse = SparseLinear.from_dense(lin)
    x = torch.randn(3, 5, 20)
    torch.testing.assert_close(sparse(x), lin(x).detach(), rtol=1e-5, atol=1e-5)
    model = nn.Sequential(SparseConv2d.from_dense(_pruned(nn.Conv2d(2, 3, 3))), sparse)
    dense = densify(model)
    assert isinstance(dense[0], nn.Conv2d) and isinstance(dense[1], nn.Linear)
    torch.testing.assert_close(dense[1].weight, lin.weight.detach())


def test_state_dict_holds_the_csr_and_loads_into_another_nnz():
    conv = _pruned(nn.Conv2d(4, 6, 3, padding=1))
    a = SparseConv2d.from_dense(conv)
    sd = a.state_dict()
    assert {"values", "kidx", "rowptr", "bias"} <= set(sd)
    b = SparseConv2d(4, 6, 3, padding=1)  # empty: 0 non-zeros
    b.load_state_dict(sd)
    x = torch.randn(1, 4, 7, 7)
    torch.testing.assert_close(b(x), a(x))
    c = copy.deepcopy(a)
    torch.testing.assert_close(c(x), a(x))
    meta = a.to("meta")
    assert meta.values.device.type == "meta" and meta.rowptr.device.type == "meta"


@pytest.mark.slow
def test_safetensors_round_trip_across_processes(tmp_path):
    from safetensors.torch import save_file

    torch.manual_seed(0)
    conv = _pruned(nn.Conv2d(4, 6, 3, padding=1, groups=2))
    sparse = SparseConv2d.from_dense(conv)
    save_file(sparse.state_dict(), str(tmp_path / "w.safetensors"))
    x = torch.randn(2, 4, 8, 8)
    torch.save(x, tmp_path / "x.pt")
    torch.save(sparse(x), tmp_path / "y.pt")
    code = f"""
import torch
from safetensors.torch import load_file
from dnnrepro.holistic_sparsecnn import SparseConv2d
m = SparseConv2d(4, 6, 3, padding=1, groups=2)
m.load_state_dict(load_file({str(tmp_path / "w.safetensors")!r}))
x = torch.load({str(tmp_path / "x.pt")!r})
torch.testing.assert_close(m(x), torch.load({str(tmp_path / "y.pt")!r}))
print("ok")
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0 and "ok" in out.stdout, out.stderr[-2000:]


def _net():
    torch.manual_seed(0)
    return nn.Sequential(
        SparseConv2d.from_dense(_pruned(nn.Conv2d(2, 4, 3, padding=1))),
        nn.ReLU(),
        nn.Flatten(),
        SparseLinear.from_dense(_pruned(nn.Linear(4 * 6 * 6, 5))),
    ).eval()


def test_export_and_compile():
    model = _net()
    x = torch.randn(3, 2, 6, 6)
    ref = model(x)
    exported = torch.export.export(model, (x,))
    torch.testing.assert_close(exported.module()(x), ref)
    compiled = torch.compile(model, backend="eager", fullgraph=True)
    torch.testing.assert_close(compiled(x), ref)
