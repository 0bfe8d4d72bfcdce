import dataclasses
import json

import pytest

from dnnrepro.core.cli import main
from dnnrepro.core.paper import reproduce
from dnnrepro.truenorth_learn.claims import CLAIMS
from dnnrepro.truenorth_learn.paper import PAPER


def test_claims_are_declared_with_rules():
    ids = [c.id for c in CLAIMS]
    assert len(ids) == len(set(ids))
    assert "mnist_core_reduction" in ids and "mnist_tick_speedup" in ids
    paper_only = [c.id for c in CLAIMS if c.profiles == ("paper",)]
    assert paper_only == ["mnist_esser_64copy", "mnist_esser_1copy"]
    tuned = {k for c in CLAIMS for k in c.tuned}
    assert tuned == {"mnist_penalty", "digits_penalty"}


@pytest.mark.slow
def test_smoke_reproduce_runs_every_path(tmp_path):
    doc = reproduce(
        PAPER, "smoke", out_root=tmp_path / "out", work_root=tmp_path / "runs", quiet=True
    )
    assert {r["verdict"] for r in doc["claims"]} == {"not run at this profile"}
    out = tmp_path / "out" / "_smoke" / "truenorth-learn" / "smoke"
    assert (out / "mnist5k_curves.png").exists() and (out / "digits_curves.png").exists()
    record = {r["name"]: r for r in doc["tuning"]}["digits_penalty"]
    assert record["split"] == "val" and record["seeds"] == [1000]
    assert doc["details"]["digits"]["selected"] == record["choice"]
    assert record["candidates"] == ["l1_to_binary@3", "neuron_var@3"]


def test_cli_map_and_bad_input(capsys, tmp_path):
    assert main(["truenorth-learn", "map", "--arch", "mnist-5core", "--copies", "4"]) == 0
    assert "5 cores per copy" in capsys.readouterr().out
    assert main(["truenorth-learn", "map"]) == 2
    assert "exactly one" in capsys.readouterr().err
    assert main(["truenorth-learn", "deploy", "--model", str(tmp_path / "none")]) == 2
    assert "no such checkpoint" in capsys.readouterr().err
    assert (
        main(["truenorth-learn", "train", "--dataset", "cifar", "--out", str(tmp_path / "m")]) == 2
    )


@pytest.mark.slow
def test_cli_train_then_deploy(tmp_path, capsys):
    stem = str(tmp_path / "m")
    assert (
        main(["truenorth-learn", "train", "--dataset", "digits", "--epochs", "1", "--out", stem])
        == 0
    )
    assert (
        main(
            [
                "truenorth-learn",
                "deploy",
                "--model",
                stem,
                "--copies",
                "2",
                "--ticks",
                "2",
                "--limit",
                "50",
                "--backend",
                "torch",
            ]
        )
        == 0
    )
    res = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert res["cores_used"] == 4 and 0 <= res["accuracy"] <= 1
    cores = str(tmp_path / "cores.json")
    assert (
        main(["truenorth-learn", "export", "--model", stem, "--copies", "2", "--out", cores]) == 0
    )
    args = ["truenorth-learn", "deploy", "--cores", cores, "--dataset", "digits", "--limit", "50"]
    assert main([*args, "--ticks", "2"]) == 0
    from_file = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    # same crossbars (seed 0) and same input spikes (seed 0): the same accuracy as the model
    assert from_file["accuracy"] == res["accuracy"] and from_file["copies"] == 2
    assert main(["truenorth-learn", "deploy", "--model", stem, "--cores", cores]) == 2


def test_paper_profile_without_full_mnist_is_one_clear_error(tmp_path):
    from dnnrepro.core.errors import DataError

    with pytest.raises(DataError, match="train-images-idx3-ubyte.gz"):
        reproduce(
            PAPER, "paper", out_root=tmp_path, work_root=tmp_path, data_dir=tmp_path, quiet=True
        )


@pytest.mark.slow
def test_paper_profile_dry_run_on_full_mnist(full_mnist_dir, tmp_path, monkeypatch):
    """The paper profile end to end at its settings, every training cut to 2 steps, the splits to
    4,000 / 1,000 / 300 images and the simulator to 8 copies x 4 ticks, 1 draw (the full grid
    took ~2 of this suite's 20 minutes): it loads full MNIST, tunes every candidate, measures and
    records."""
    from dnnrepro.truenorth_learn import experiment
    from dnnrepro.truenorth_learn.config import PROFILES

    prof = PROFILES["paper"]
    short = dataclasses.replace(
        prof,
        datasets=tuple(
            dataclasses.replace(p, max_steps=2, test_limit=300, train_limit=4000)
            for p in prof.datasets
        ),
        copies=8,
        ticks=4,
        ticks_copies=2,
        val_copies=4,
        draws=1,
    )
    monkeypatch.setitem(experiment.PROFILES, "paper", short)
    doc = reproduce(
        PAPER,
        "paper",
        seeds=1,
        out_root=tmp_path / "out",
        work_root=tmp_path / "runs",
        data_dir=full_mnist_dir,
        quiet=True,
    )
    rows = {r["id"]: r for r in doc["claims"]}
    assert len(rows["mnist_esser_64copy"]["values"]) == 1
    assert len(rows["mnist_esser_1copy"]["values"]) == 1
    tuned = {r["name"]: r for r in doc["tuning"]}
    assert len(tuned["mnist_penalty"]["candidates"]) == len(prof.kinds) * len(prof.strengths)
    assert "mnist" in doc["details"] and "digits" in doc["details"]
