"""The direct sparse conv equals F.conv2d on the dense weights, on many shapes."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from dnnrepro.core.errors import ConfigError
from dnnrepro.holistic_sparsecnn import direct_sparse_conv2d, reference_sparse_conv2d, to_csr


def _sparse(shape, x, g):
    w = torch.randn(shape, generator=g)
    return w * (torch.rand(shape, generator=g) < x)


CASES = [
    # batch, c_in, c_out, h, w, kernel, stride, padding, dilation, density
    (2, 3, 5, 9, 9, 3, 1, 1, 1, 0.3),
    (1, 4, 6, 11, 13, 3, 2, 0, 2, 0.5),  # stride 2, dilation 2, batch 1, non-square
    (3, 2, 4, 12, 12, 1, 1, 0, 1, 0.7),  # 1x1
    (1, 3, 2, 31, 31, 11, 4, 2, 1, 0.2),  # 11x11 stride 4 (AlexNet conv1 pattern)
    (2, 5, 3, 8, 7, (3, 1), (1, 2), (1, 0), (2, 1), 0.4),  # rectangular kernel / pairs
    (2, 16, 24, 13, 13, 3, 1, 1, 1, 0.09),  # AlexNet conv3-like
    (1, 8, 9, 6, 6, 5, 1, 2, 1, 1.0),  # fully dense
]


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("relu", [False, True])
def test_equals_conv2d(case, relu):
    b, c, n, h, w, k, s, p, d, x = case
    g = torch.Generator().manual_seed(hash(case) % 2**31)
    kk = k if isinstance(k, tuple) else (k, k)
    inp = torch.randn(b, c, h, w, generator=g)
    weight = _sparse((n, c, *kk), x, g)
    bias = torch.randn(n, generator=g)
    ref = F.conv2d(inp, weight, bias, s, p, d)
    if relu:
        ref = ref.clamp(min=0)
    csr = to_csr(weight, inp.shape, p, d)
    out = direct_sparse_conv2d(inp, csr, bias, s, p, d, relu=relu)
    assert out.shape == ref.shape
    torch.testing.assert_close(out, ref, rtol=1e-4, atol=1e-4)
    out2 = reference_sparse_conv2d(inp, csr, bias, s, p, d, relu=relu)
    torch.testing.assert_close(out2, ref, rtol=1e-4, atol=1e-4)


def test_all_zero_weights_give_bias_and_empty_rows_work():
    g = torch.Generator().manual_seed(1)
    inp = torch.randn(2, 3, 7, 7, generator=g)
    weight = torch.zeros(4, 3, 3, 3)
    bias = torch.tensor([1.0, -2.0, 0.5, 0.0])
    out = direct_sparse_conv2d(inp, to_csr(weight, inp.shape, 1), bias, padding=1)
    torch.testing.assert_close(out, bias.view(1, 4, 1, 1).expand(2, 4, 7, 7))
    weight[1, 2, 1, 1] = 3.0  # rows 0, 2, 3 empty, row 1 a single non-zero
    out = direct_sparse_conv2d(inp, to_csr(weight, inp.shape, 1), None, padding=1)
    torch.testing.assert_close(out, F.conv2d(inp, weight, None, 1, 1))


def test_csr_is_rebound_to_other_input_sizes():
    g = torch.Generator().manual_seed(2)
    weight = _sparse((3, 2, 3, 3), 0.5, g)
    csr = to_csr(weight, (2, 5, 5), padding=1)
    inp = torch.randn(1, 2, 9, 6, generator=g)
    out = direct_sparse_conv2d(inp, csr, None, 1, 1)
    torch.testing.assert_close(out, F.conv2d(inp, weight, None, 1, 1), rtol=1e-4, atol=1e-4)


def test_dense_tensor_accepted_as_weight():
    g = torch.Generator().manual_seed(3)
    inp, weight = torch.randn(1, 2, 6, 6, generator=g), _sparse((2, 2, 3, 3), 0.5, g)
    torch.testing.assert_close(
        direct_sparse_conv2d(inp, weight), F.conv2d(inp, weight), rtol=1e-4, atol=1e-5
    )


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: (torch.randn(1, 3, 5, 5).double(), torch.randn(2, 3, 3, 3)), "float32"),
        (lambda: (torch.randn(1, 4, 5, 5), torch.randn(2, 3, 3, 3)), "channels"),
        (lambda: (torch.randn(3, 5, 5), torch.randn(2, 3, 3, 3)), "4-D"),
        (lambda: (torch.randn(1, 3, 2, 2), torch.randn(2, 3, 3, 3)), "does not fit"),
    ],
)
def test_bad_inputs_raise_config_error(make, match):
    inp, weight = make()
    with pytest.raises(ConfigError, match=match):
        direct_sparse_conv2d(inp, weight)


def test_bad_bias_and_stride():
    inp, weight = torch.randn(1, 3, 5, 5), torch.randn(2, 3, 3, 3)
    with pytest.raises(ConfigError, match="bias"):
        direct_sparse_conv2d(inp, weight, torch.zeros(3))
    with pytest.raises(ConfigError, match="stride"):
        direct_sparse_conv2d(inp, weight, stride=0)
    with pytest.raises(ConfigError, match="CSRWeight"):
        direct_sparse_conv2d(inp, np.zeros((2, 3, 3, 3)))


@pytest.mark.parametrize("stride", [1, 2])
def test_parallel_and_serial_kernels_agree(monkeypatch, stride):
    from dnnrepro.holistic_sparsecnn import cpu_kernel

    g = torch.Generator().manual_seed(4)
    inp = torch.randn(3, 6, 10, 10, generator=g)
    weight = _sparse((20, 6, 3, 3), 0.3, g)
    ref = F.conv2d(inp, weight, None, stride, 1)
    for min_flops in (0.0, float("inf")):  # force the threaded, then the serial kernel
        monkeypatch.setattr(cpu_kernel, "PARALLEL_MIN_FLOPS", min_flops)
        torch.set_num_threads(2)
        out = direct_sparse_conv2d(inp, to_csr(weight, inp.shape, 1), None, stride, 1)
        torch.testing.assert_close(out, ref, rtol=1e-4, atol=1e-4)


@pytest.mark.slow
def test_kernel_leaves_torch_thread_count_alone():
    """numba's OpenMP pool start resets the OpenMP thread count; a dense baseline timed after
    the first sparse call must still run on the threads the caller set (fresh process)."""
    import subprocess
    import sys

    code = (
        "import torch\n"
        "torch.set_num_threads(1)\n"
        "from dnnrepro.holistic_sparsecnn import direct_sparse_conv2d\n"
        "x, w = torch.rand(2, 8, 9, 9), torch.randn(16, 8, 3, 3)\n"
        "direct_sparse_conv2d(x, w, padding=1)\n"
        "print(torch.get_num_threads())\n"
    )
    env = {"OMP_NUM_THREADS": "1", "NUMBA_NUM_THREADS": "2", "PATH": "/usr/bin:/bin"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "1"


def _geometries_by_tile_width(max_nv):
    """{nv: (hw, kernel, padding)} covering every tile width of the unit-stride kernel."""
    from dnnrepro.holistic_sparsecnn import cpu_kernel

    found = {}
    for hw in range(1, 48):
        for kernel, pad in ((1, 0), (3, 1), (3, 0)):
            hout = hw + 2 * pad - kernel + 1
            if hout >= 1:
                found.setdefault(cpu_kernel.plan(hout, hout, hw + pad)[0], (hw, kernel, pad))
        if len(found) == max_nv:
            break
    return found


def test_unit_stride_every_tile_width_and_channel_blocks(monkeypatch):
    """Every register-tile width (1..MAXNV vectors), the zero tail read past the run, and
    input-channel blocks smaller than the channel count (the L1 blocking) give F.conv2d."""
    from dnnrepro.holistic_sparsecnn import cpu_kernel

    geometries = _geometries_by_tile_width(cpu_kernel.MAXNV)
    assert sorted(geometries) == list(range(1, cpu_kernel.MAXNV + 1))
    g = torch.Generator().manual_seed(7)
    monkeypatch.setattr(cpu_kernel, "MIN_BLOCK_NNZ", 1)  # let the slab size set the blocks
    for nv, (hw, kernel, pad) in sorted(geometries.items()):
        # three input channels per block (shared_pad: (H+2p)*(W+p)+p floats per channel),
        # so 7 channels make blocks of 3, 3 and 1
        monkeypatch.setattr(cpu_kernel, "L1_BYTES", 3 * 4 * ((hw + 2 * pad) * (hw + pad) + pad))
        inp = torch.randn(2, 7, hw, hw, generator=g)
        weight = _sparse((5, 7, kernel, kernel), 0.4, g)
        bias = torch.randn(5, generator=g)
        out = direct_sparse_conv2d(inp, weight, bias, 1, pad)
        ref = F.conv2d(inp, weight, bias, 1, pad)
        torch.testing.assert_close(out, ref, rtol=1e-4, atol=1e-4, msg=f"tile width {nv}")


def test_block_pointers_partition_each_row():
    from dnnrepro.holistic_sparsecnn import cpu_kernel

    g = torch.Generator().manual_seed(8)
    csr = to_csr(_sparse((6, 10, 3, 3), 0.3, g), (10, 5, 5), 1)
    bp = cpu_kernel.block_pointers(csr.rowptr, csr.kidx, 9, 4, 3)  # channel blocks 0-3, 4-7, 8-9
    assert bp.shape == (6, 4)
    np.testing.assert_array_equal(bp[:, 0], csr.rowptr[:-1])
    np.testing.assert_array_equal(bp[:, -1], csr.rowptr[1:])
    for n in range(6):
        for k in range(3):
            channels = csr.kidx[bp[n, k] : bp[n, k + 1]] // 9
            assert ((channels >= 4 * k) & (channels < 4 * (k + 1))).all()


def test_shared_pad_layout():
    """One pad column between rows (pitch W + pad_w) and the documented pixel positions."""
    from dnnrepro.holistic_sparsecnn import cpu_kernel

    x = np.arange(2 * 3 * 4 * 5, dtype=np.float32).reshape(2, 3, 4, 5) + 1
    buf, ws, chan = cpu_kernel.shared_pad(x, (2, 1), tail=7)
    assert (ws, chan) == (6, (4 + 4) * 6 + 1)
    assert buf.shape == (2, 3 * chan + 7)
    b, c, i, j = 1, 2, 3, 4
    assert buf[b, c * chan + (i + 2) * ws + 1 + j] == x[b, c, i, j]
    assert np.count_nonzero(buf) == x.size  # everything else is padding
