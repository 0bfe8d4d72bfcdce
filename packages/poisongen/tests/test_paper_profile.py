"""The paper profile (full MNIST) end to end, shortened: the profile's own settings with a few
target steps, a few poisons and rounds, through ``reproduce`` exactly as the full run goes.

Needs the full MNIST files: ``$DNNREPRO_DATA`` or ``../shared/data`` next to the repository (the
test skips, saying so, without them).
"""

from dataclasses import replace
from pathlib import Path

import pytest

from dnnrepro.core.paper import reproduce
from dnnrepro.core.train import TrainConfig
from dnnrepro.poisongen import config
from dnnrepro.poisongen.paper import PAPER

REPO = Path(__file__).resolve().parents[3]


def shortened(profile: config.Profile) -> config.Profile:
    """``profile`` with every cost cut to a few steps; sizes of data and models unchanged."""
    return replace(
        profile,
        settings=tuple(
            replace(
                s,
                n_poisons=4,
                direct_rounds=1,
                generator_rounds=2,
                autoencoder=TrainConfig(
                    epochs=1, batch_size=64, lr=1e-3, optimizer="adam", max_steps=5
                ),
                counts=(0, 2, 4),
                fractions=(0.0, 0.1),
                retrain_clean=36,
                target_max_steps=20,
                timing_repeats=7,
            )
            for s in profile.settings
        ),
    )


def test_paper_profile_is_full_mnist_at_the_authors_settings():
    (mnist,) = config.PAPER.settings
    assert mnist.dataset == "mnist" and config.PAPER.seeds >= 3
    assert (mnist.delta, mnist.step, mnist.direct_rounds, mnist.victim_lr) == (0.01, 0.2, 5, 0.05)
    assert (mnist.generator_rounds, mnist.generator_lr, mnist.num_normal) == (10, 0.005, 10)
    assert mnist.generator_hidden == (200, 200)


@pytest.mark.slow
def test_paper_profile_dry_run_on_full_mnist(tmp_path, monkeypatch, full_mnist_dir):
    data_dir = full_mnist_dir
    monkeypatch.setitem(config.PROFILES, "paper", shortened(config.PAPER))
    doc = reproduce(
        PAPER,
        "paper",
        seeds=1,
        out_root=tmp_path / "out",
        data_dir=data_dir,
        work_root=tmp_path / "runs",
        threads=1,
        quiet=True,
    )
    summary = doc["details"]["mnist"]["summary"]
    assert summary["target_test_accuracy"] > 0.5  # 20 steps of the 784-64-10 MLP on MNIST
    recorded = {row["id"] for row in doc["claims"] if row["values"]}
    assert {"speedup", "degradation_direct", "beats_label_flip_generative_fraction"} <= recorded
    assert (tmp_path / "out" / "poisongen" / "paper" / "results.json").exists()
