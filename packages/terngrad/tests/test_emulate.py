"""The emulator: levels, fp32 mode, NaN, the fit plug-in, the worker limit."""

import pytest
import torch

from dnnrepro.core import train
from dnnrepro.core.errors import ConfigError, DataError
from dnnrepro.terngrad import EmulatorConfig, VirtualWorkers, emulate
from dnnrepro.terngrad.emulate import emulate_stacked
from dnnrepro.terngrad.workers import check_model


def worker_grads(n, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return [
        {"w": torch.randn(50, 20, generator=gen), "b": torch.randn(20, generator=gen)}
        for _ in range(n)
    ]


@pytest.mark.parametrize("n", [1, 2, 5, 64])
def test_shared_scaler_aggregate_has_at_most_2n_plus_1_levels(n):
    grads = worker_grads(n)
    mean = emulate(grads, EmulatorConfig(clip_c=None), step=0)
    s = max(float(g["w"].abs().max()) for g in grads)
    levels = mean["w"].unique()
    assert levels.numel() <= 2 * n + 1
    units = levels * n / s  # integer multiples of s / N
    assert torch.allclose(units, units.round(), atol=1e-4)


def test_fp32_mode_is_the_plain_mean_and_exclusions_travel_as_float():
    grads = worker_grads(3)
    plain = emulate(grads, EmulatorConfig(enabled=False), step=0)
    torch.testing.assert_close(plain["w"], sum(g["w"] for g in grads) / 3)
    mixed = emulate(grads, EmulatorConfig(min_numel=21, exclude=("w",)), step=0)
    torch.testing.assert_close(mixed["b"], plain["b"])
    torch.testing.assert_close(mixed["w"], plain["w"])


def test_emulated_mean_is_unbiased_over_steps():
    grads = worker_grads(4)
    target = sum(g["b"] for g in grads) / 4
    k = 1500
    stacked = {k: torch.stack([g[k] for g in grads]) for k in grads[0]}
    config = EmulatorConfig(clip_c=None)
    acc = sum(emulate_stacked(stacked, config, step=t)["b"] for t in range(k)) / k
    s = max(float(g["b"].abs().max()) for g in grads)
    # per element the variance of the mean of 4 workers is at most s^2 / 4
    assert float((acc - target).abs().max()) < 5 * s / 2 / k**0.5


def test_nan_and_limits_are_clear_errors():
    grads = worker_grads(2)
    grads[1]["w"][0, 0] = float("nan")
    with pytest.raises(DataError, match="NaN/Inf"):
        emulate(grads, EmulatorConfig(), step=0)
    with pytest.raises(ConfigError, match="1..64"):
        emulate(worker_grads(1) * 65, EmulatorConfig(), step=0)
    with pytest.raises(ConfigError, match="shared scaler"):
        emulate(worker_grads(2), EmulatorConfig(wire="a2a", scaler_sharing=False), step=0)


def test_virtual_workers_train_inside_fit():
    torch.manual_seed(0)
    model = check_model(0)
    x = torch.randn(64, 16)
    y = (x[:, 0] > 0).long() + 2 * (x[:, 1] > 0).long()
    vw = VirtualWorkers(model, 4, EmulatorConfig(seed=1), weight_decay=5e-4)
    before = [p.detach().clone() for p in model.parameters()]
    config = train.TrainConfig(epochs=3, batch_size=16, lr=0.05, progress=False)
    result = train.fit(model, (x, y), config, grad_fn=vw.grad_fn)
    assert result.steps == 12
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))
    assert 0 < vw.zero_fraction()["fc1.weight"] < 1
    with pytest.raises(ConfigError, match="divisible"):
        vw.grad_fn(model, x[:6], y[:6], 0)


class _Killed(RuntimeError):
    pass


class _DiesAtStep5(VirtualWorkers):
    def after_step(self, model, step):
        if step == 5:
            raise _Killed


def _zero_run(folder, x, y, cls=VirtualWorkers) -> VirtualWorkers:
    model = check_model(0)
    vw = cls(model, 2, EmulatorConfig(seed=3))
    config = train.TrainConfig(steps=8, batch_size=16, lr=0.05, checkpoint_every=2, progress=False)
    train.fit(model, (x, y), config, grad_fn=vw.grad_fn, callbacks=[vw], checkpoint_dir=folder)
    return vw


def test_zero_counts_survive_a_resume(tmp_path):
    """Issue 25 item 1: a resume from a finished checkpoint runs no step; the zero fractions must
    still cover the whole run (they were NaN), and a mid-run resume must count every step once."""
    x = torch.randn(64, 16, generator=torch.Generator().manual_seed(0))
    y = (x[:, 0] > 0).long()
    clean = _zero_run(tmp_path / "clean", x, y)
    again = _zero_run(tmp_path / "clean", x, y)  # finished checkpoint: no step runs here
    assert again.stats == clean.stats and clean.stats["elements"]["fc1.weight"] == 8 * 2 * 192
    with pytest.raises(_Killed):
        _zero_run(tmp_path / "cut", x, y, _DiesAtStep5)
    resumed = _zero_run(tmp_path / "cut", x, y)
    assert resumed.stats == clean.stats


EVERY_WIRE = {
    "int8": {"wire": "int8"},
    "fields": {"wire": "fields", "clip_c": None},
    "a2a": {"wire": "a2a", "codec": "2bit"},
    "allgather": {"wire": "allgather"},
    "allgather-noshare": {"wire": "allgather", "scaler_sharing": False},
    "a2a-reternarize": {"wire": "a2a-reternarize"},
    "auto-excl": {"min_numel": 13, "exclude": ("w",)},
    "fp32": {"enabled": False},
}


@pytest.mark.parametrize("n", [2, 4, 16])
def test_vectorized_emulator_equals_the_reference_bit_for_bit(n):
    """Issue 17 item 1: emulate_stacked (one fused pass per parameter) == emulate (one worker at
    a time), on every wire, also for a constant layer (c*std scaler 0) and an all-zero one."""
    gen = torch.Generator().manual_seed(n)
    grads = [
        {
            "w": torch.randn(30, 20, generator=gen),
            "b": torch.randn(20, generator=gen) * 1e-3,
            "const": torch.full((5,), 0.5),
            "zero": torch.zeros(4, 3),
        }
        for _ in range(n)
    ]
    stacked = {k: torch.stack([g[k] for g in grads]) for k in grads[0]}
    for label, options in EVERY_WIRE.items():
        config = EmulatorConfig(seed=11, **options)
        for step in (0, 7):
            ref_stats, vec_stats = {}, {}
            want = emulate(grads, config, step, ref_stats)
            got = emulate_stacked(stacked, config, step, vec_stats)
            for name, w in want.items():
                assert got[name].shape == w.shape and torch.equal(got[name], w), (label, name)
            assert vec_stats == ref_stats, label
    stacked["w"][1, 0, 0] = float("inf")
    with pytest.raises(DataError, match="NaN/Inf"):
        emulate_stacked(stacked, EmulatorConfig(), step=0)


def test_virtual_workers_vectorized_and_reference_install_the_same_gradients():
    x = torch.randn(32, 16, generator=torch.Generator().manual_seed(1))
    y = torch.randint(0, 4, (32,), generator=torch.Generator().manual_seed(2))
    got = {}
    for emulator in ("vectorized", "reference"):
        model = check_model(0)
        vw = VirtualWorkers(model, 8, EmulatorConfig(seed=4), 5e-4, emulator=emulator)
        loss = vw.grad_fn(model, x, y, step=3)
        got[emulator] = (loss, {n: p.grad for n, p in model.named_parameters()}, vw.stats)
    (la, ga, sa), (lb, gb, sb) = got["vectorized"], got["reference"]
    assert torch.equal(la, lb) and sa == sb
    assert all(torch.equal(ga[k], gb[k]) for k in ga)
    with pytest.raises(ConfigError, match="emulator"):
        VirtualWorkers(check_model(0), 2, EmulatorConfig(), emulator="fast")
