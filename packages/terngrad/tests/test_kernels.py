"""CUDA kernels: compile everywhere nvcc exists; exact against the torch references on a GPU."""

import pytest
import torch

from dnnrepro.core.testing import check_kernels_compile
from dnnrepro.terngrad import gpu, ternarize
from dnnrepro.terngrad.packing import pack_trits, unpack_trits


def test_kernels_compile():
    assert check_kernels_compile("dnnrepro.terngrad") == ["terngrad.cu"]


def test_counter_reference_is_a_correct_ternarizer():
    # the reference the kernels are checked against is itself unbiased and keeps signs
    g = torch.randn(200_000, generator=torch.Generator().manual_seed(0))
    s = float(g.abs().max())
    trits = unpack_trits(
        gpu.ternarize_pack_reference(g, s, seed=7, codec="base3"), g.numel(), "base3"
    )
    assert bool((trits.float() * torch.sign(g) >= 0).all())
    nonzero = float((trits != 0).float().mean())
    expect = float((g.abs() / s).mean())
    assert abs(nonzero - expect) < 0.005
    u = gpu.counter_uniform(7, 100_000, "cpu")
    assert 0 <= float(u.min()) and float(u.max()) < 1 and abs(float(u.mean()) - 0.5) < 0.005


@pytest.mark.gpu
@pytest.mark.parametrize("codec", ["2bit", "base3"])
def test_kernels_match_references_on_gpu(codec):
    g = torch.randn(1_000_003, device="cuda")
    s = float(2.5 * g.std(correction=0))
    got = gpu.ternarize_pack_cuda(g, s, 123, codec)
    assert torch.equal(got, gpu.ternarize_pack_reference(g, s, 123, codec))
    # the CPU path of the hook and emulator draws the same stream: same trits for the same seed
    cpu_trits, _ = ternarize(g.cpu(), scaler=s, seed=123)
    assert torch.equal(got.cpu(), pack_trits(cpu_trits, codec))
    rows = torch.stack([got, gpu.ternarize_pack_reference(g, s, 9, codec)])
    mean = gpu.unpack_accumulate_cuda(rows, g.numel(), 2, s / 2, codec)
    torch.testing.assert_close(
        mean, gpu.unpack_accumulate_reference(rows, g.numel(), 2, s / 2, codec), rtol=0, atol=0
    )
