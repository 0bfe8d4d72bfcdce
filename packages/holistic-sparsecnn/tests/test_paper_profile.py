"""The paper profile (full MNIST) end to end, shortened to a few steps per phase (a dry run)."""

import json

import pytest
import torch

from dnnrepro.core.paper import reproduce
from dnnrepro.holistic_sparsecnn import config
from dnnrepro.holistic_sparsecnn.paper import PAPER


def test_paper_profile_states_its_settings():
    p = config.PAPER
    assert "--data-dir" in p.command and "h" in p.cost
    assert p.pruning.dataset == "mnist" and PAPER.default_seeds["paper"] >= 3
    assert p.pruning.retrain.lr == pytest.approx(p.pruning.train.lr / 10)
    gsl, esl = p.pruning.methods["gsl"], p.pruning.methods["esl"]
    assert gsl.strength * gsl.conv_factor == esl.strength  # same conv strength: a fair ablation
    assert {"gsl", "esl", "gdns"} <= set(p.pruning.methods)
    short = p.shortened(3, config.SMOKE.kernel)
    assert short.pruning.train.max_steps == 3 and short.kernel == config.SMOKE.kernel
    assert short.pruning.train.epochs == p.pruning.train.epochs  # schedule length unchanged


@pytest.mark.slow
def test_paper_profile_dry_run_on_full_mnist(full_mnist_dir, tmp_path, monkeypatch):
    data_dir = full_mnist_dir
    monkeypatch.setitem(config.PROFILES, "paper", config.PAPER.shortened(3, config.SMOKE.kernel))
    torch.set_num_threads(1)
    doc = reproduce(
        PAPER,
        "paper",
        out_root=tmp_path / "out",
        work_root=tmp_path / "runs",
        data_dir=data_dir,
        seeds=1,
        threads=1,
        quiet=True,
    )
    values = {r["id"]: r["values"] for r in doc["claims"]}
    assert len(values["gsl_conv1_dense"]) == 1 and len(values["e2e_accuracy"]) == 1
    pruning = doc["details"]["pruning_seed0"]
    assert set(pruning) == {"gsl", "esl", "gdns"}
    assert doc["details"]["dense"]["steps"] == 3
    stages = {p.stem for p in (tmp_path / "runs").rglob("stages/*.json")}
    assert {"dense", "prune_gsl_seed0", "prune_gdns_seed0"} <= stages
    assert json.loads(
        (tmp_path / "out" / "holistic-sparsecnn" / "paper" / "results.json").read_text()
    )
