"""Bit-exact round trips and sizes of the trit and field encodings."""

import pytest
import torch

from dnnrepro.core.errors import ConfigError
from dnnrepro.terngrad import pack_fields, pack_trits, unpack_fields, unpack_trits
from dnnrepro.terngrad.packing import field_bits, fields_per_word, packed_trit_bytes


@pytest.mark.parametrize("codec,per", [("2bit", 4), ("base3", 5)])
@pytest.mark.parametrize("n", [0, 1, 4, 5, 7, 9, 1000, 1003])
def test_trit_round_trip_and_size(codec, per, n):
    t = torch.randint(-1, 2, (n,), generator=torch.Generator().manual_seed(n)).to(torch.int8)
    p = pack_trits(t, codec)
    assert p.dtype == torch.uint8 and p.numel() == -(-n // per) == packed_trit_bytes(n, codec)
    assert torch.equal(unpack_trits(p, n, codec), t)


def test_base3_uses_all_243_codes_and_rejects_others():
    t = torch.tensor([1] * 5, dtype=torch.int8)
    assert int(pack_trits(t, "base3")[0]) == 242
    with pytest.raises(ConfigError, match="above 242"):
        unpack_trits(torch.tensor([243], dtype=torch.uint8), 5, "base3")
    with pytest.raises(ConfigError, match="codec"):
        pack_trits(t, "3bit")
    with pytest.raises(ConfigError, match="need"):
        unpack_trits(torch.zeros(1, dtype=torch.uint8), 6, "2bit")


@pytest.mark.parametrize("workers", [1, 2, 3, 4, 8, 16, 64, 512])
def test_field_sums_never_carry(workers):
    b = field_bits(workers)
    assert 2 * workers < 2**b <= 4 * workers + 1
    gen = torch.Generator().manual_seed(workers)
    n = 97
    offs = [torch.randint(0, 3, (n,), generator=gen) for _ in range(min(workers, 8))]
    offs += [torch.full((n,), 2)] * (workers - len(offs))  # the worst case: every trit +1
    words = sum(pack_fields(o, b) for o in offs)
    assert words.numel() == -(-n // fields_per_word(b))
    assert bool((words >= 0).all())  # the sign bit is never reached
    assert torch.equal(unpack_fields(words, n, b), sum(offs))


def test_int8_sums_wrap_silently_which_is_why_int8_is_guarded():
    # the same arithmetic gloo and NCCL do on int8 buffers: 4 x 100 wraps to -112
    assert int(torch.full((4,), 100, dtype=torch.int8).sum(dtype=torch.int8)) == -112


def test_row_packing_is_the_per_shard_packing():
    """Issue 17 item 5: all shards of a bucket packed in one pass equal each shard packed alone."""
    import importlib

    from dnnrepro.terngrad.packing import (
        pack_trit_rows,
        unpack_field_rows,
        unpack_mean_rows,
        unpack_sum_rows,
        unpack_trit_rows,
    )

    pmod = importlib.import_module("dnnrepro.terngrad.packing")

    rows = torch.randint(-1, 2, (4, 23), generator=torch.Generator().manual_seed(0)).to(torch.int8)
    for codec in ("2bit", "base3"):
        packed = pack_trit_rows(rows, codec)
        assert torch.equal(packed, torch.stack([pack_trits(r, codec) for r in rows]))
        assert torch.equal(unpack_trit_rows(packed, 23, codec), rows)
        want = rows.sum(dim=0, dtype=torch.int16)
        assert torch.equal(unpack_sum_rows(packed, 23, codec), want)  # numba when installed
        mean = want.to(torch.float32) * torch.tensor(0.3 / 4, dtype=torch.float32)
        assert torch.equal(unpack_mean_rows(packed, 23, 0.3 / 4, codec), mean)
        saved, pmod._UNPACK = pmod._UNPACK, None  # the torch path
        try:
            assert torch.equal(unpack_sum_rows(packed, 23, codec), want)
            assert torch.equal(unpack_mean_rows(packed, 23, 0.3 / 4, codec), mean)
        finally:
            pmod._UNPACK = saved
    with pytest.raises(ConfigError, match="above 242"):
        unpack_sum_rows(torch.full((2, 5), 250, dtype=torch.uint8), 23, "base3")
    words = torch.stack([pack_fields(r.to(torch.int64) + 1, 3) for r in rows])
    assert torch.equal(unpack_field_rows(words, 23, 3), rows.to(torch.int64) + 1)
