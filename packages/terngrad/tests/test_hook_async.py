"""The asynchronous hook on real gloo DDP: bit-identical to the synchronous hook on every wire and to
the emulator; bf16/fp16 buckets, no_sync(), static_graph, gradient_as_bucket_view, register();
bounded failure when a rank dies mid-run."""

import time

import pytest
import torch

from dnnrepro.core.errors import DnnreproError
from dnnrepro.terngrad.emulate import emulated_check_run
from dnnrepro.terngrad.launch import launch
from dnnrepro.terngrad.workers import check_worker, hook_return_worker

pytestmark = pytest.mark.slow

BUCKET_MB = 0.0001  # splits check_model's 256 parameters into 2 buckets: the chain is exercised
STEPS = 3
WIRES = {
    "int8": {"wire": "int8"},
    "fields": {"wire": "fields"},
    "a2a-2bit": {"wire": "a2a", "codec": "2bit"},
    "a2a-base3": {"wire": "a2a", "codec": "base3", "clip_c": None},
    "allgather": {"wire": "allgather", "codec": "base3"},
    "allgather-noshare": {"wire": "allgather", "scaler_sharing": False},
    "a2a-reternarize": {"wire": "a2a-reternarize"},
    "auto": {},
    "a2a-excl": {"wire": "a2a", "min_numel": 13, "exclude": ("fc2.weight",)},
}


def test_async_equals_sync_bit_for_bit_on_every_wire():
    configs = {}
    for label, options in WIRES.items():
        configs[f"{label}/async"] = {**options, "async_op": True}
        configs[f"{label}/sync"] = {**options, "async_op": False}
    args = {"configs": configs, "steps": STEPS, "bucket_cap_mb": BUCKET_MB}
    results = launch(check_worker, 2, args, timeout_s=400)
    for label, options in WIRES.items():
        a = [r[f"{label}/async"] for r in results]
        s = [r[f"{label}/sync"] for r in results]
        assert all(r["buckets"] == 2 for r in a + s), label  # two buckets chained per step
        for ra, rs in zip(a, s, strict=True):
            assert ra["grads"] == rs["grads"], f"{label}: async and sync hooks differ"
            assert ra["digest"] == rs["digest"], label
            assert ra["wire_steps"] == rs["wire_steps"], label
        assert len({r["digest"] for r in a}) == 1, f"{label}: ranks differ"
        expected, digest = emulated_check_run(2, options, STEPS)
        for step in range(STEPS):
            for name, want in expected[step].items():
                got = torch.tensor(a[0]["grads"][step][name])
                assert torch.equal(got, want), f"{label} step {step} {name}"
        assert a[0]["digest"] == digest, label  # N = 2: float sums are order-free, all exact


REAL_JOB = {
    "bf16": {"dtype": "bfloat16", "register": True, "wire": "a2a"},
    "fp16": {"dtype": "float16", "register": True},
    "no_sync": {"accumulate": 3, "register": True, "wire": "fields"},
    "static_graph": {"ddp": {"static_graph": True}, "register": True},
    "bucket_view": {"ddp": {"gradient_as_bucket_view": True}, "register": True, "wire": "a2a"},
    "find_unused": {"ddp": {"find_unused_parameters": True}, "register": True, "wire": "a2a"},
    "excluded": {"register": True, "min_numel": 13, "exclude": ("fc2.weight",), "wire": "a2a"},
    "hook_only_bucket_view": {"ddp": {"gradient_as_bucket_view": True}, "wire": "int8"},
}


def test_real_job_options_match_the_emulator_bit_for_bit():
    args = {"configs": REAL_JOB, "steps": STEPS, "bucket_cap_mb": BUCKET_MB}
    results = launch(check_worker, 2, args, timeout_s=400)
    for label, options in REAL_JOB.items():
        runs = [r[label] for r in results]
        assert len({r["digest"] for r in runs}) == 1, f"{label}: ranks differ"
        assert all(len(r["grads"]) == STEPS and r["error"] is None for r in runs), label
        expected, digest = emulated_check_run(2, options, STEPS)
        for step in range(STEPS):
            for name, want in expected[step].items():
                got = torch.tensor(runs[0]["grads"][step][name])
                assert torch.equal(got, want), f"{label} step {step} {name}"
        assert runs[0]["digest"] == digest, label
        # the hook counts synced steps only: no_sync micro-batches draw no random streams
        assert len(runs[0]["wire_steps"]) == STEPS, label


def test_a_rank_dying_mid_run_fails_the_survivor_inside_the_hook_in_bounded_time():
    t0 = time.monotonic()
    args = {
        "configs": {"a2a": {"register": True, "wire": "a2a"}},
        "die_rank": 1,
        "die_step": 2,  # after DDP rebuilt its buckets: the survivor is inside the hook's chain
        "steps": 4,
        "bucket_cap_mb": BUCKET_MB,
    }
    with pytest.raises(DnnreproError) as info:
        launch(check_worker, 2, args, timeout_s=120, collective_timeout_s=20, grace_s=15)
    message = str(info.value)
    assert "rank 1: process died with exit code 3" in message
    # rank 0 reports its own error (the failed collective, raised out of backward by DDP), not
    # "stopped after rank 1 failed": the async chain passes the failure on instead of hanging
    rank0 = message.split("rank 0: ", 1)[1].split("; rank 1", 1)[0]
    assert "stopped after" not in rank0 and "no result within" not in rank0, rank0
    assert time.monotonic() - t0 < 120


def test_the_async_hook_returns_before_its_bucket_is_exchanged():
    args = {"steps": STEPS, "bucket_cap_mb": BUCKET_MB, "delay_s": 1.0}
    r0, r1 = launch(hook_return_worker, 2, args, timeout_s=180)
    calls = len(r0["sync"])  # DDP's first step has one bucket, later steps two
    assert calls == 2 * STEPS - 1 and all(r0["sync"]) and all(r1["sync"])  # waited in the hook
    # async: rank 0's hook hands back a pending Future for every bucket (its peer is still in
    # forward), and backward goes on meanwhile
    assert len(r0["async"]) == calls and not any(r0["async"]), r0["async"]
