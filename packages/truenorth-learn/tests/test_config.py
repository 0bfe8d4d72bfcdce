import pytest
import torch

from dnnrepro.core.paper import BenchOptions
from dnnrepro.truenorth_learn.config import PROFILES
from dnnrepro.truenorth_learn.penalty import KINDS
from dnnrepro.truenorth_learn.protocol import COPY_GRID, TICK_GRID, iso_metrics, tuning_metric
from dnnrepro.truenorth_learn.tea import DATASET_ARCH


@pytest.mark.parametrize("name", sorted(PROFILES))
def test_profiles_are_consistent(name):
    prof = PROFILES[name]
    assert prof.command.startswith(f"dnnrepro truenorth-learn reproduce --profile {name}")
    assert prof.cost
    assert set(prof.kinds) <= set(KINDS) and prof.strengths
    for plan in prof.datasets:
        assert plan.dataset in DATASET_ARCH
        assert 0 < plan.tolerance < 0.05
        assert plan.base_epochs >= 1 and plan.finetune_epochs >= 1
    assert prof.copies in COPY_GRID and prof.ticks in TICK_GRID


def test_paper_profile_uses_full_mnist_and_every_penalty():
    prof = PROFILES["paper"]
    assert prof.datasets[0].dataset == "mnist" and prof.kinds == KINDS
    assert prof.copies == 64 and prof.ticks == 16 and prof.draws >= 2
    assert all(p.max_steps is None and p.train_limit is None for p in prof.datasets)


def test_tuning_metric_counts_copies_and_breaks_ties_by_one_copy_accuracy():
    base = [0.80, 0.84, 0.86, 0.87]
    fast = [0.85, 0.86, 0.86, 0.86]  # reaches 0.87 - 0.01 at 2 copies
    slow = [0.70, 0.75, 0.80, 0.86]  # at 4 copies
    assert tuning_metric(base, fast, 0.01) == pytest.approx(2 - 0.85)
    assert tuning_metric(base, slow, 0.01) == pytest.approx(4 - 0.70)
    never = [0.5] * 4
    assert tuning_metric(base, never, 0.01) == pytest.approx(2 * 4 - 0.5)


def test_iso_metrics_use_the_declared_tolerance():
    grid = [1, 2, 3, 4]
    base = {
        "copies_grid": grid,
        "copies_curve": [0.8, 0.85, 0.88, 0.9],
        "ticks": grid,
        "ticks_curve": [0.8, 0.85, 0.88, 0.9],
    }
    pen = dict(base, copies_curve=[0.89, 0.9, 0.9, 0.9], ticks_curve=[0.8, 0.89, 0.9, 0.9])
    tight = iso_metrics(base, pen, 0.0)
    assert tight["copies_baseline"] == 4 and tight["copies_penalised"] == 2
    assert tight["core_reduction"] == pytest.approx(0.5)
    assert tight["tick_speedup"] == pytest.approx(4 / 3)
    loose = iso_metrics(base, pen, 0.021)
    assert loose["copies_baseline"] == 3 and loose["copies_penalised"] == 1


def test_quick_bench_entries(tmp_path):
    from dnnrepro.truenorth_learn.bench import bench

    opts = BenchOptions(threads=1, quick=True, data_dir=None, out_dir=tmp_path)
    entries = bench(opts)
    names = [e["name"] for e in entries]
    assert names == [
        "deploy-simulator-batched-vs-per-copy",
        "deploy-simulator-issue-budget",
        "deploy-simulator-issue-budget-shared",
    ]
    ratio = entries[0]
    assert ratio["low"] <= ratio["ratio"] <= ratio["high"] and ratio["repeats"] >= 7
    assert entries[1]["seconds"] > 0 and entries[2]["seconds"] > 0
    assert "independent" in entries[1]["job"] and "shared" in entries[2]["job"]


def test_per_copy_baseline_equals_the_batched_simulator():
    from dnnrepro.truenorth_learn.bench import per_copy_loop
    from dnnrepro.truenorth_learn.simulate import simulate_counts_torch
    from dnnrepro.truenorth_learn.tea import build

    model = build("digits-2core")
    model.reset_parameters(0)
    x = torch.rand(9, 1, 8, 8, generator=torch.Generator().manual_seed(2))
    for inputs in ("independent", "shared"):
        ref = simulate_counts_torch(model, x, 3, 2, 5, inputs=inputs)
        assert torch.equal(per_copy_loop(model, x, 3, 2, 5, inputs=inputs), ref)
