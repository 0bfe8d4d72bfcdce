"""The CSR layout: row pointers, kernel indices, and input offsets into the padded input."""

import numpy as np
import pytest
import torch

from dnnrepro.core.errors import ConfigError
from dnnrepro.holistic_sparsecnn import to_csr


def test_offsets_follow_the_documented_layout():
    w = torch.zeros(2, 3, 3, 3)
    w[0, 1, 2, 0] = 1.5  # c=1, r=2, s=0
    w[0, 2, 0, 2] = -1.0  # c=2, r=0, s=2
    w[1, 0, 1, 1] = 2.0
    c, h, wd, pad, dil = 3, 7, 9, 1, 2
    csr = to_csr(w, (c, h, wd), padding=pad, dilation=dil)
    hp, wp = h + 2 * pad, wd + 2 * pad
    assert csr.rowptr.tolist() == [0, 2, 3]
    assert csr.values.tolist() == [1.5, -1.0, 2.0]
    assert csr.kidx.tolist() == [1 * 9 + 2 * 3 + 0, 2 * 9 + 0 * 3 + 2, 0 * 9 + 1 * 3 + 1]
    expected = [
        (1 * hp + 2 * dil) * wp + 0 * dil,
        (2 * hp + 0 * dil) * wp + 2 * dil,
        (0 * hp + 1 * dil) * wp + 1 * dil,
    ]
    assert csr.colidx.tolist() == expected
    assert csr.colidx.dtype == np.int32 and csr.rowptr.dtype == np.int32


def test_unpadded_offsets_are_c_h_plus_r_times_w_plus_s():
    g = torch.Generator().manual_seed(0)
    w = torch.randn(4, 3, 2, 3, generator=g) * (torch.rand(4, 3, 2, 3, generator=g) < 0.5)
    csr = to_csr(w, (3, 6, 5))
    n, c, r, s = np.nonzero(w.numpy())
    assert csr.colidx.tolist() == ((c * 6 + r) * 5 + s).tolist()
    assert csr.nnz == int((w != 0).sum())
    assert csr.density == pytest.approx(csr.nnz / w.numel())


def test_round_trip_is_exact_and_threshold_drops_small_weights():
    g = torch.Generator().manual_seed(1)
    w = torch.randn(5, 4, 3, 3, generator=g) * (torch.rand(5, 4, 3, 3, generator=g) < 0.3)
    assert torch.equal(to_csr(w, (4, 8, 8), 1).to_dense(), w)
    w2 = w.clone()
    w2[w2.abs() < 0.5] = 0
    assert torch.equal(to_csr(w, (4, 8, 8), threshold=0.5).to_dense(), w2)


def test_bytes_count_values_indices_and_rowptr():
    w = torch.zeros(3, 2, 3, 3)
    w[0, 0, 0, 0] = w[2, 1, 2, 2] = 1.0
    assert to_csr(w, (2, 4, 4)).nbytes() == 2 * 8 + 4 * 4


def test_bad_weight_inputs():
    with pytest.raises(ConfigError, match="4-D"):
        to_csr(torch.randn(3, 3), (3, 4, 4))
    with pytest.raises(ConfigError, match="float32"):
        to_csr(torch.randn(2, 3, 3, 3, dtype=torch.float64), (3, 4, 4))
    with pytest.raises(ConfigError, match="channels"):
        to_csr(torch.randn(2, 3, 3, 3), (4, 4, 4))
