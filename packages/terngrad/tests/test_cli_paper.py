"""CLI errors are one line with exit code 2; the smoke reproduction runs end to end."""

import json

import pytest

from dnnrepro.core.cli import main
from dnnrepro.core.paper import reproduce
from dnnrepro.terngrad.paper import CLAIMS, PAPER


def test_claims_are_declared_once_with_rules():
    ids = [c.id for c in CLAIMS]
    assert len(ids) == len(set(ids)) and PAPER.name == "terngrad"


def test_perfmodel_command(capsys):
    assert main(["terngrad", "perfmodel", "--net", "vgg-a", "--gpus", "1", "8"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 3 and out[1].split()[-1] == "1.00"


@pytest.mark.parametrize(
    "argv,message",
    [
        (["terngrad", "perfmodel", "--net", "resnet"], "unknown --net"),
        (["terngrad", "train", "--workers", "3", "--batch", "64"], "divisible"),
        (["terngrad", "train", "--workers", "130", "--batch", "130", "--wire", "int8"], "wraps"),
        (["terngrad", "train", "--wire", "a2a", "--no-scaler-sharing"], "shared scaler"),
    ],
)
def test_bad_input_is_one_clear_line(argv, message, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


@pytest.mark.slow
def test_train_command_on_two_gloo_workers(capsys):
    argv = ["terngrad", "train", "--workers", "2", "--steps", "3", "--wire", "fields"]
    assert main(argv) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["ranks_identical"] and summary["steps"] == 3
    assert summary["bytes_handed_rank0"]["fields_allreduce"] > 0


@pytest.mark.slow
def test_smoke_reproduction(tmp_path):
    doc = reproduce(
        PAPER, "smoke", out_root=tmp_path / "out", work_root=tmp_path / "runs", quiet=True
    )
    assert {r["id"] for r in doc["claims"]} == {c.id for c in CLAIMS}
    assert (tmp_path / "out" / "_smoke" / "terngrad" / "smoke" / "accuracy_vs_workers.png").exists()
    assert doc["details"]["bytes_per_element"]["curves"]["fp32 ring"][0] == 4.0
    # the check claim: the hook's counted bytes equal the formula for every wire and codec (it
    # once differed by 12 bytes: a config left its codec to the hook's default, the formula not)
    rows = {r["id"]: r for r in doc["claims"]}
    assert rows["bytes-formula-exact"]["values"] == [0], rows["bytes-formula-exact"]["values"]
