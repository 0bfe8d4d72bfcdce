"""Identities of stochastic ternarization on random tensors (fixed seeds, statistical bounds)."""

import math

import pytest
import torch

from dnnrepro.core.errors import ConfigError, DataError
from dnnrepro.terngrad import layer_scaler, stream_seed, ternarize
from dnnrepro.terngrad.ternarize import generator_for


def draws(g, k, **kw):
    gen = torch.Generator().manual_seed(123)
    return torch.stack([ternarize(g, generator=gen, **kw)[0] for _ in range(k)])


def test_values_signs_and_scaler():
    g = torch.randn(3, 7, 5)
    t, s = ternarize(g, generator=torch.Generator().manual_seed(0))
    assert t.dtype == torch.int8 and t.shape == g.shape
    assert set(t.unique().tolist()) <= {-1, 0, 1}
    assert float(s) == float(g.abs().max())
    # the sign is kept: a non-zero trit has the sign of its element
    nz = t != 0
    assert torch.equal(t[nz].float(), torch.sign(g[nz]))


def test_direction_of_the_comparison():
    g = torch.tensor([2.0, -2.0, 0.0, 0.0, 1.0])
    t = draws(g, 200)
    assert bool((t[:, 0] == 1).all()) and bool((t[:, 1] == -1).all())  # |g| = s: always sent
    assert bool((t[:, 2:4] == 0).all())  # zero: never
    p = float((t[:, 4] != 0).float().mean())
    assert abs(p - 0.5) < 5 * math.sqrt(0.25 / 200)  # P(non-zero) = |g|/s


def test_unbiased_and_second_moment():
    torch.manual_seed(1)
    g = torch.randn(64)
    k = 3000
    t, s = draws(g, k).float(), g.abs().max()
    est = t * s
    var = s * g.abs() - g * g  # per-element variance of one draw
    err = (est.mean(0) - g).abs()
    assert bool((err <= 5 * torch.sqrt(var / k) + 1e-6).all())
    # E||g~||^2 = ||g||_inf * ||g||_1
    sq = (est * est).sum(1)
    target = float(s * g.abs().sum())
    assert abs(float(sq.mean()) - target) < 5 * float(sq.std()) / math.sqrt(k)
    # the bound ordering of assumption A3: ||g||_2^2 <= ||g||_inf ||g||_1
    assert float((g * g).sum()) <= target


def test_clipping_is_unbiased_for_the_clipped_gradient():
    torch.manual_seed(2)
    g = torch.randn(40)
    g[0] = 9.0  # far beyond 2.5 sigma: saturates
    s = layer_scaler(g, 2.5)
    assert math.isclose(float(s), 2.5 * float(g.double().std(correction=0)), rel_tol=1e-6)
    k = 3000
    est = draws(g, k, clip_c=2.5).float() * s
    clipped = g.clamp(-float(s), float(s))
    var = s * clipped.abs() - clipped**2
    assert bool(((est.mean(0) - clipped).abs() <= 5 * torch.sqrt(var / k) + 1e-6).all())
    assert bool((est[:, 0] == s).all())


def test_gaussian_layer_at_c_2_5():
    gen = torch.Generator().manual_seed(3)
    g = torch.randn(400_000, generator=gen)
    t, s = ternarize(g, clip_c=2.5, generator=gen)
    clipped = float((g.abs() >= s).float().mean())
    zeros = float((t == 0).float().mean())
    assert abs(clipped - 0.0124) < 0.001  # 2 * (1 - Phi(2.5)) = 1.24%
    assert abs(zeros - (1 - 0.7936 / 2.5)) < 0.005  # 1 - E|clip g| / (c sigma) ~ 68%


def test_given_scaler_overrides():
    g = torch.tensor([0.5, -0.25])
    t, s = ternarize(g, scaler=1.0, clip_c=2.5)
    assert float(s) == 1.0


def test_zero_gradient_and_bad_input():
    t, s = ternarize(torch.zeros(10))
    assert float(s) == 0 and not bool(t.any())
    with pytest.raises(DataError):
        ternarize(torch.tensor([1.0, float("nan")]))
    with pytest.raises(DataError):
        ternarize(torch.tensor([1.0, float("inf")]), clip_c=2.5)
    with pytest.raises(ConfigError):
        ternarize(torch.tensor([1, 2]))
    with pytest.raises(ConfigError):
        layer_scaler(torch.ones(3), clip_c=-1.0)


def test_streams_are_reproducible_and_distinct():
    g = torch.randn(1000)
    a = ternarize(g, generator=generator_for("cpu", stream_seed(0, 1, 5, "fc1.weight")))[0]
    b = ternarize(g, generator=generator_for("cpu", stream_seed(0, 1, 5, "fc1.weight")))[0]
    c = ternarize(g, generator=generator_for("cpu", stream_seed(0, 2, 5, "fc1.weight")))[0]
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_counter_stream_is_one_definition_for_cpu_numba_and_kernels():
    """Issue 17 item 1: the hook, emulator and kernels share the counter-based stream keyed by
    (seed, rank, step, parameter, element): the numba loop, the torch path and the kernels'
    reference give the same trits."""
    import importlib

    from dnnrepro.terngrad import gpu
    from dnnrepro.terngrad.packing import pack_trits

    tmod = importlib.import_module("dnnrepro.terngrad.ternarize")
    g = torch.randn(70_001, generator=torch.Generator().manual_seed(4))
    s = float(2.5 * g.std(correction=0))
    seed = stream_seed(3, 1, 5, "fc1.weight")
    fast, _ = ternarize(g, scaler=s, seed=seed)
    saved = tmod._NUMBA
    tmod._NUMBA = None  # the plain-torch path, chunked
    try:
        plain, _ = ternarize(g, scaler=s, seed=seed)
    finally:
        tmod._NUMBA = saved
    assert torch.equal(fast, plain)
    for codec in ("2bit", "base3"):
        assert torch.equal(pack_trits(fast, codec), gpu.ternarize_pack_reference(g, s, seed, codec))
    # element i's draw depends on i only: a slice of the stream is the stream of the slice
    u = tmod.counter_uniform(seed, 100, "cpu", start=50)
    assert torch.equal(u, tmod.counter_uniform(seed, 150, "cpu")[50:])
    other, _ = ternarize(g, scaler=s, seed=stream_seed(3, 2, 5, "fc1.weight"))
    assert not torch.equal(fast, other)
    with pytest.raises(ConfigError, match="not both"):
        ternarize(g, seed=1, generator=torch.Generator())


def test_fused_ternary_sum_equals_the_per_worker_sum():
    import importlib

    from dnnrepro.terngrad.ternarize import ternary_sum

    tmod = importlib.import_module("dnnrepro.terngrad.ternarize")
    g = torch.randn(5, 3001, generator=torch.Generator().manual_seed(8))
    s = 2.5 * g.std(correction=0, dim=1).max()
    seeds = [stream_seed(1, r, 2, "w") for r in range(5)]
    sigma, nz = ternary_sum(g, s, seeds)
    trits = [ternarize(row, scaler=s, seed=sd)[0] for row, sd in zip(g, seeds, strict=True)]
    assert torch.equal(sigma, sum(t.to(torch.int16) for t in trits))
    assert nz == sum(int(t.count_nonzero()) for t in trits)
    saved = tmod._NUMBA
    tmod._NUMBA = None
    try:
        plain, plain_nz = ternary_sum(g, s, seeds)  # the torch loop
        assert torch.equal(plain, sigma) and plain_nz == nz
    finally:
        tmod._NUMBA = saved
    zero, nz0 = ternary_sum(torch.ones(2, 7), torch.tensor(0.0), seeds[:2])  # s = 0: nothing sent
    assert nz0 == 0 and not bool(zero.any())


def test_stream_seeds_and_the_rows_kernels_match_the_scalar_definitions():
    """The vectorized emulator's pieces: stream_seeds == stream_seed per rank; the fused scaled
    sum (the allgather decode) == per-row ternarize in row order, zero scaler rows sending
    nothing; numba and the torch fallback agree."""
    import importlib

    import numpy as np

    from dnnrepro.terngrad.ternarize import stream_seeds, ternary_scaled_sum

    tmod = importlib.import_module("dnnrepro.terngrad.ternarize")
    seeds = stream_seeds(7, 16, 3, "conv1.weight")
    assert seeds.dtype == np.uint64
    assert [int(v) for v in seeds] == [stream_seed(7, r, 3, "conv1.weight") for r in range(16)]
    g = torch.randn(5, 3001, generator=torch.Generator().manual_seed(2))
    g[3] = 0.25  # a constant row: its c*std scaler is 0, so it sends nothing
    scalers = torch.stack([tmod.layer_scaler(row, 2.5) for row in g])
    assert float(scalers[3]) == 0.0
    want = torch.zeros(3001)
    for row, sd, s in zip(g, seeds[:5], scalers, strict=True):
        if float(s) > 0:
            want += ternarize(row, scaler=s, seed=int(sd))[0].to(torch.float32) * s
    got, nz = ternary_scaled_sum(g, scalers, seeds[:5])
    assert torch.equal(got, want) and 0 < nz < 4 * 3001
    saved = tmod._NUMBA
    tmod._NUMBA = None
    try:
        plain, plain_nz = ternary_scaled_sum(g, scalers, seeds[:5])
    finally:
        tmod._NUMBA = saved
    assert torch.equal(plain, want) and plain_nz == nz
