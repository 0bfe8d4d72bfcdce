"""The per-seed experiment on the code paths the small profile does not reach (CIFAR-10's tanh
LeNet with crops and a deep generator; CUDA)."""

import json

import pytest
import torch

from dnnrepro.core.train import TrainConfig
from dnnrepro.poisongen.config import CIFAR10, Setting
from dnnrepro.poisongen.experiment import run_seed

TINY = dict(
    n_poisons=2,
    direct_rounds=1,
    generator_rounds=1,
    generator_hidden=(16, 16),
    autoencoder=TrainConfig(epochs=1, batch_size=16, lr=1e-3, optimizer="adam", max_steps=2),
    holdout=20,
    counts=(0, 2),
    fractions=(0.0, 0.1),
    retrain_clean=18,
    target_max_steps=3,
    amortize_over=10,
    timing_repeats=7,
)


def _fake(n, shape, seed):
    gen = torch.Generator().manual_seed(seed)
    return torch.rand(n, *shape, generator=gen), torch.arange(n) % 10


@pytest.mark.slow
def test_cifar_setting_runs_end_to_end_on_fake_images(tmp_path, monkeypatch):
    # The finite-difference sweep over 2352 coordinates of a conv net takes minutes on a CPU; it is
    # tested on small models elsewhere. Here the pipeline matters, so the sweep uses the exact sign.
    from dnnrepro.poisongen.direct import DirectGradientAttack

    monkeypatch.setattr(
        DirectGradientAttack,
        "fd_direction",
        lambda self, x, y, prev: self.hypergradient(x, y).sign(),
    )
    cifar = CIFAR10
    setting = Setting(
        "cifar10",
        delta=cifar.delta,
        step=cifar.step,
        victim_lr=cifar.victim_lr,
        generator_victim_lr=cifar.generator_victim_lr,
        **TINY,
    )
    data = (_fake(60, (3, 32, 32), 0), _fake(40, (3, 32, 32), 1))
    out = run_seed(setting, data, 0, tmp_path, log=lambda _m: None, device="cpu")
    assert out["image_shape"] == [3, 28, 28]  # the target sees center crops
    assert out["speed"]["seconds_per_poison"]["direct-faithful"] > 0
    assert set(out["damage"]) >= {"direct-faithful", "generative-faithful", "label-flip"}
    json.dumps(out, allow_nan=False)  # storable as a stage


@pytest.mark.gpu
def test_experiment_runs_on_cuda(tmp_path):
    from dnnrepro.core.data import load

    setting = Setting("digits", **TINY)
    data = (load("digits", "train"), load("digits", "test"))
    out = run_seed(setting, data, 0, tmp_path, log=lambda _m: None, device="cuda")
    assert out["speed"]["speedup"] > 0
    json.dumps(out, allow_nan=False)
