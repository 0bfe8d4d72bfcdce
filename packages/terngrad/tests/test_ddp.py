"""Real gloo DDP runs of the hook: bit-identical ranks, emulator equality, bytes, NaN, dead worker."""

import time

import pytest
import torch

from dnnrepro.core.errors import DnnreproError
from dnnrepro.terngrad import DEFAULT_CODEC, collective_bytes
from dnnrepro.terngrad.emulate import emulated_check_run
from dnnrepro.terngrad.launch import launch
from dnnrepro.terngrad.workers import check_model, check_worker

pytestmark = pytest.mark.slow

CONFIGS = {
    "int8": {"wire": "int8"},
    "fields": {"wire": "fields"},
    "a2a-2bit": {"wire": "a2a", "codec": "2bit"},
    "a2a-base3": {"wire": "a2a", "codec": "base3", "clip_c": None},
    "allgather": {"wire": "allgather", "codec": "base3"},
    "allgather-noshare": {"wire": "allgather", "scaler_sharing": False},
    "a2a-reternarize": {"wire": "a2a-reternarize"},
    # exclusion rules: biases (< 13 elements) and the named logits weight travel as float
    "a2a-excl": {"wire": "a2a", "min_numel": 13, "exclude": ("fc2.weight",)},
}
STEPS = 2


def is_float_layer(options, name, numel):
    return numel < options.get("min_numel", 0) or name in options.get("exclude", ())


@pytest.mark.parametrize("world", [2, 3, 4])
def test_every_wire_is_exact_and_rank_identical(world):
    torch.set_num_threads(1)
    results = launch(check_worker, world, {"configs": CONFIGS, "steps": STEPS}, timeout_s=240)
    sizes = {n: p.numel() for n, p in check_model(0).named_parameters()}
    exact_digests = set()
    for label, options in CONFIGS.items():
        digests = {r[label]["digest"] for r in results}
        assert len(digests) == 1, f"{label}: ranks differ after {STEPS} steps"
        expected, digest = emulated_check_run(world, options, STEPS)
        vectorized = emulated_check_run(world, options, STEPS, vectorized=True)
        for step in range(STEPS):  # vectorized == reference == hook (the hook is compared below)
            for name in sizes:
                assert torch.equal(vectorized[0][step][name], expected[step][name]), (label, name)
        assert vectorized[1] == digest, f"{label}: vectorized and reference emulators differ"
        for step in range(STEPS):
            for name, numel in sizes.items():
                got = torch.tensor(results[0][label]["grads"][step][name])
                want = expected[step][name]
                if is_float_layer(options, name, numel):
                    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-7)
                else:  # integer sums and the same decode: bit-identical to the emulator
                    assert torch.equal(got, want), f"{label} step {step} {name}"
                    if options["wire"] != "a2a-reternarize" and options.get("scaler_sharing", True):
                        levels = got.unique().numel()
                        assert levels <= 2 * world + 1
        if world == 2:  # float sums of two ranks are order-free: the whole run is bit-identical
            assert digest in digests, label
        if label in ("int8", "fields", "a2a-2bit"):
            exact_digests |= digests
        # bytes handed to each collective: the formula equals what the hook counted
        tern = [n for n, k in sizes.items() if not is_float_layer(options, n, k)]
        per_step = collective_bytes(
            options["wire"],
            options.get("codec", DEFAULT_CODEC),
            sum(sizes[n] for n in tern),
            world,
            len(tern),
            float_numel=sum(k for n, k in sizes.items() if n not in tern),
            scaler_sharing=options.get("scaler_sharing", True),
        )
        for r in results:
            assert r[label]["wire_steps"] == [per_step] * STEPS, label
    assert len(exact_digests) == 1  # int8, fields and a2a deliver the very same gradients


def test_nonfinite_skip_is_consistent_and_raise_is_clear():
    configs = {
        "skip": {"wire": "a2a", "nonfinite": "skip", "nan_rank": 1},
        "raise": {"wire": "fields", "nonfinite": "raise", "nan_rank": 0, "expect_error": True},
    }
    results = launch(check_worker, 2, {"configs": configs}, timeout_s=120)
    assert [r["skip"]["skipped"] for r in results] == [1, 1]
    assert len({r["skip"]["digest"] for r in results}) == 1
    assert all(g == 0.0 for g in results[0]["skip"]["grads"][0]["fc1.weight"])
    assert len(results[0]["skip"]["grads"]) == STEPS  # the run went on after the skipped step
    for r in results:  # both ranks, the one with the NaN and the other, raise the same clear error
        assert "DataError" in r["raise"]["error"] and "NaN/Inf" in r["raise"]["error"]
        assert r["raise"]["grads"] == []


def test_a_dead_worker_fails_the_others_quickly():
    t0 = time.monotonic()
    with pytest.raises(DnnreproError, match="rank 1: process died with exit code 3"):
        launch(
            check_worker,
            2,
            {"configs": {"a2a": {}}, "die_rank": 1},
            timeout_s=90,
            collective_timeout_s=20,
        )
    assert time.monotonic() - t0 < 90
