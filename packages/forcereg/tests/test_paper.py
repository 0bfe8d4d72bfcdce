"""The reproduction at the smoke profile, its resume, and the CLI commands."""

import json
from pathlib import Path

import pytest

from dnnrepro.core.cli import main
from dnnrepro.core.paper import reproduce
from dnnrepro.forcereg.paper import CLAIMS, PAPER, setups

DATA = Path(__file__).resolve().parents[3] / "data"  # the repository data folder
SMALL_IDS = [c.id for c in CLAIMS if "small" in c.profiles]


def test_claims_are_declared_with_rules_and_profiles():
    ids = [c.id for c in CLAIMS]
    assert len(ids) == len(set(ids))
    assert {"alexnet_gpu", "alexnet_cpu", "rank_resnet20"} <= {
        c.id for c in CLAIMS if c.profiles == ("paper",)
    }
    assert {s.name for s in setups("small")} == {"lenet", "convnet"}
    assert {s.name for s in setups("paper")} == {"lenet", "convnet", "resnet20"}


@pytest.mark.slow
def test_smoke_reproduce_records_every_small_claim_and_resumes(tmp_path):
    kw = dict(out_root=tmp_path / "out", work_root=tmp_path / "runs", quiet=True)
    doc = reproduce(PAPER, "smoke", **kw)
    rows = {r["id"]: r for r in doc["claims"]}
    for cid in SMALL_IDS:
        assert len(rows[cid]["values"]) == 1, cid
        assert rows[cid]["verdict"] == "not run at this profile"  # smoke proves nothing
    assert not rows["alexnet_gpu"]["values"]
    out = tmp_path / "out" / "_smoke" / "forcereg" / "smoke"
    for fig in ("ranks_per_layer", "accuracy_vs_rank", "finetune_curves", "strength_sweep"):
        assert (out / f"{fig}.png").exists() and (out / f"{fig}.json").exists()
    details = json.loads((out / "results.json").read_text())["details"]
    assert details["runs"]["convnet"][0]["timing"]["speedup"] > 0
    # a second run reuses the stored stages: identical numbers
    again = reproduce(PAPER, "smoke", **kw)
    assert [r["values"] for r in again["claims"]] == [r["values"] for r in doc["claims"]]


def test_paper_profile_without_cifar_is_one_clear_error(tmp_path, capsys):
    # full MNIST/CIFAR-10 files are not in an empty data dir: exit code 2 and one line
    code = main(
        [
            "forcereg",
            "reproduce",
            "--profile",
            "paper",
            "--data-dir",
            str(tmp_path / "none"),
            "--out",
            str(tmp_path / "out"),
            "--work-dir",
            str(tmp_path / "runs"),
        ]
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "error" in err[0]


@pytest.mark.slow
def test_cli_train_decompose_report(tmp_path, capsys):
    stem = str(tmp_path / "lenet")
    assert main(["forcereg", "train", "--dataset", "digits", "--epochs", "1", "--out", stem]) == 0
    low = str(tmp_path / "lenet-lra")
    args = ["forcereg", "decompose", "--weights", stem, "--ranks", "conv1=3,conv2=5", "--out", low]
    assert main(args) == 0
    assert main(["forcereg", "report", "--weights", low]) == 0
    out = capsys.readouterr().out
    assert "3/20" in out and "5/50" in out and "test accuracy" in out


@pytest.mark.parametrize(
    "argv",
    [
        ["forcereg", "train", "--model", "vgg", "--out", "x"],
        ["forcereg", "report", "--weights", "/nonexistent/stem"],
        ["forcereg", "train", "--dataset", "digits", "--layers", "conv9", "--out", "x"],
        ["forcereg", "decompose", "--weights", "/nonexistent/stem", "--out", "y"],
    ],
)
def test_cli_bad_input_is_one_line_and_exit_2(argv, capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("DNNREPRO_DATA", str(DATA))
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("dnnrepro: error:")
