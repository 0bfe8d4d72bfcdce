import json

import pytest

from dnnrepro.core.cli import main
from dnnrepro.core.paper import reproduce
from dnnrepro.truenorth_learn.paper import CLAIMS, PAPER


def test_claims_are_declared_with_rules():
    ids = [c.id for c in CLAIMS]
    assert len(ids) == len(set(ids))
    assert "mnist_core_reduction" in ids and "mnist_tick_speedup" in ids
    paper_only = [c.id for c in CLAIMS if c.profiles == ("paper",)]
    assert paper_only == ["mnist_esser_64copy"]


@pytest.mark.slow
def test_smoke_reproduce_runs_every_path(tmp_path):
    doc = reproduce(
        PAPER, "smoke", out_root=tmp_path / "out", work_root=tmp_path / "runs", quiet=True
    )
    assert {r["verdict"] for r in doc["claims"]} == {"not run at this profile"}
    out = tmp_path / "out" / "_smoke" / "truenorth-learn" / "smoke"
    assert (out / "mnist5k_curves.png").exists() and (out / "digits_curves.png").exists()
    assert doc["details"]["digits"]["selected"] == "l1_to_binary@3"


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


def test_paper_profile_without_full_mnist_is_one_clear_error(tmp_path):
    from dnnrepro.core.errors import DataError

    with pytest.raises(DataError, match="train-images-idx3-ubyte.gz"):
        reproduce(
            PAPER, "paper", out_root=tmp_path, work_root=tmp_path, data_dir=tmp_path, quiet=True
        )
