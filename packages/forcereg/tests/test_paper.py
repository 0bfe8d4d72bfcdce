"""The reproduction at the smoke profile, its resume, and the CLI commands."""

import json
from dataclasses import replace
from pathlib import Path

import pytest

from dnnrepro.core.cli import main
from dnnrepro.core.paper import reproduce
from dnnrepro.forcereg import config
from dnnrepro.forcereg.claims import CLAIMS
from dnnrepro.forcereg.paper import PAPER

DATA = Path(__file__).resolve().parents[3] / "data"  # the repository data folder
SMALL_IDS = [c.id for c in CLAIMS if "small" in c.profiles]


def test_claims_are_declared_with_rules_and_profiles():
    ids = [c.id for c in CLAIMS]
    assert len(ids) == len(set(ids))
    paper_only = {c.id for c in CLAIMS if c.profiles == ("paper",)}
    assert {"alexnet_gpu", "alexnet_cpu", "rank_resnet20", "alexnet_conv_speedup"} <= paper_only
    assert {"flops_lenet_mnist", "posthoc_lenet_mnist", "accuracy_lenet_mnist"} <= paper_only
    assert {s.name for s in config.PROFILES["small"].setups} == {"lenet", "convnet"}
    assert config.PROFILES["paper"].scratch.dataset == "mnist"
    assert {c.id for c in CLAIMS if c.timing} == {
        "cpu_speedup",
        "alexnet_gpu",
        "alexnet_cpu",
        "alexnet_conv_speedup",
    }
    for profile in config.PROFILES.values():
        assert profile.command.startswith("dnnrepro forcereg reproduce --profile " + profile.name)


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
    figures = ("ranks_per_layer", "accuracy_vs_rank", "finetune_curves", "strength_sweep")
    for fig in (*figures, "accuracy_vs_flops"):
        assert (out / f"{fig}.png").exists() and (out / f"{fig}.json").exists()
    doc_json = json.loads((out / "results.json").read_text())
    details = doc_json["details"]
    assert details["runs"]["convnet"][0]["timing"]["measurement"]["ratio"] > 0
    curves = details["scratch"]["runs"][0]["curves"]
    assert set(curves) == {
        "control",
        "constant",
        "degradation",
        "posthoc-constant",
        "posthoc-degradation",
    }
    # the post-hoc arm has exactly the force arm's MACs at every energy
    for arm in ("constant", "degradation"):
        assert [p["macs"] for p in curves[arm][1:]] == [
            p["macs"] for p in curves[f"posthoc-{arm}"][1:]
        ]
    assert len(rows["alexnet_conv_speedup"]["values"]) == 1
    assert len(rows["flops_lenet_mnist"]["values"]) == 1
    # a second run reuses the stored stages: identical numbers
    again = reproduce(PAPER, "smoke", **kw)
    assert [r["values"] for r in again["claims"]] == [r["values"] for r in doc["claims"]]


@pytest.mark.slow
def test_paper_profile_dry_run_on_full_mnist(full_mnist_dir, tmp_path, monkeypatch):
    """The paper profile end to end at its own settings, each training truncated to a few steps
    (max_steps keeps the schedule), one seed, AlexNet timed at batch 1."""
    paper = config.PROFILES["paper"]
    r = paper.scratch
    dry = replace(
        paper,
        scratch=replace(
            r,
            train=replace(r.train, max_steps=3),
            finetune=replace(r.finetune, max_steps=1),
            energies=r.energies[-2:],
        ),
        speed=replace(paper.speed, input_size=99, batches=(1,), claim_batch=1, repeats=7),
    )
    monkeypatch.setitem(config.PROFILES, "paper", dry)
    kw = dict(out_root=tmp_path / "out", work_root=tmp_path / "runs", quiet=True)
    doc = reproduce(PAPER, "paper", seeds=1, data_dir=full_mnist_dir, **kw)
    rows = {r["id"]: r for r in doc["claims"]}
    for cid in ("accuracy_lenet_mnist", "flops_lenet_mnist", "posthoc_lenet_mnist"):
        assert len(rows[cid]["values"]) == 1, cid
    assert len(rows["alexnet_conv_speedup"]["values"]) == 1
    assert (tmp_path / "out" / "forcereg" / "paper" / "accuracy_vs_flops.png").exists()


def test_paper_profile_without_mnist_is_one_clear_error(tmp_path, capsys):
    # the full MNIST files are not in an empty data dir: exit code 2 and one line
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
