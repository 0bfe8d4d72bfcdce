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


def _bucket_case(device):
    """A bucket of 5 layers (one excluded, one with scaler 0) and what the hook hands the kernel."""
    from dnnrepro.terngrad.ternarize import stream_seed

    gen = torch.Generator().manual_seed(3)
    sizes = [1000, 7, 65_537, 12, 300_001]
    flat = torch.randn(sum(sizes), generator=gen).to(device)
    segments, off = [], 0
    for j, k in enumerate(sizes):
        if j != 3:  # layer 3 travels as float: the kernel skips it through the offsets
            segments.append((off, k))
        off += k
    scalers = torch.stack([2.5 * flat[o : o + k].std(correction=0) for o, k in segments])
    scalers[1] = 0.0  # an all-zero layer sends zeros
    seeds = [stream_seed(5, 1, 2, f"layer{j}") for j in range(len(segments))]
    return flat, segments, seeds, scalers


def test_segments_reference_is_the_hooks_cpu_path():
    flat, segments, seeds, scalers = _bucket_case("cpu")
    want = torch.cat(
        [
            ternarize(flat[o : o + k], scaler=s, seed=sd)[0]
            for (o, k), sd, s in zip(segments, seeds, scalers, strict=True)
        ]
    )
    got = gpu.ternarize_segments_reference(flat, segments, seeds, scalers)
    assert torch.equal(got, want)
    assert not bool(got[segments[0][1] : segments[0][1] + 7].any())  # scaler 0: zeros


@pytest.mark.gpu
def test_segments_kernel_draws_the_cpu_trits_on_gpu():
    flat, segments, seeds, scalers = _bucket_case("cuda")
    got = gpu.ternarize_segments_cuda(flat, segments, seeds, scalers)
    want = gpu.ternarize_segments_reference(flat.cpu(), segments, seeds, scalers.cpu())
    assert torch.equal(got.cpu(), want)


@pytest.mark.gpu
def test_kernel_trits_sum_to_the_vectorized_emulators_sums_on_gpu():
    """One stream for kernels and emulator: per rank, the bucket kernel keyed by
    stream_seed(seed, rank, step, name) draws the trits whose sum the emulator's fused CPU pass
    (ternary_sum over the stacked workers) computes."""
    from dnnrepro.terngrad.ternarize import stream_seeds, ternary_sum

    workers, n = 4, 70_001
    g = torch.randn(workers, n, generator=torch.Generator().manual_seed(6))
    s = 2.5 * g.std(dim=1, correction=0).max()
    seeds = stream_seeds(3, workers, 9, "fc1.weight")
    want, _ = ternary_sum(g, s, seeds)
    got = torch.zeros(n, dtype=torch.int16)
    for r in range(workers):
        trits = gpu.ternarize_segments_cuda(
            g[r].cuda(), [(0, n)], [int(seeds[r])], s.reshape(1).cuda()
        )
        got += trits.cpu().to(torch.int16)
    assert torch.equal(got, want)
