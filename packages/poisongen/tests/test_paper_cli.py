import json

import pytest

from dnnrepro.core.cli import main
from dnnrepro.core.paper import reproduce
from dnnrepro.poisongen.claims import CLAIMS
from dnnrepro.poisongen.config import PROFILES
from dnnrepro.poisongen.paper import PAPER


def test_claims_are_declared_as_data():
    ids = [c.id for c in CLAIMS]
    assert len(ids) == len(set(ids))
    assert {"speedup", "degradation_direct", "generative_vs_direct", "detect_tpr"} <= set(ids)
    assert PAPER.default_seeds["small"] >= 3
    assert all(s.n_poisons >= 1 for p in PROFILES.values() for s in p.settings)
    assert PAPER.default_seeds == {name: p.seeds for name, p in PROFILES.items()}
    assert PAPER.bench is not None  # dnnrepro poisongen bench
    paper_only = {c.id for c in CLAIMS if c.profiles == ("paper",)}
    assert paper_only == {"speedup_cifar", "detect_auc_cifar"}


@pytest.mark.slow
def test_smoke_reproduce_writes_results_and_figures(tmp_path):
    doc = reproduce(
        PAPER,
        "smoke",
        out_root=tmp_path / "out",
        work_root=tmp_path / "runs",
        threads=1,
        quiet=True,
    )
    out = tmp_path / "out" / "_smoke" / "poisongen" / "smoke"
    assert (out / "results.json").exists()
    for name in ("accuracy_vs_poisons", "time_per_poison", "detector_roc", "sample_poisons"):
        assert (out / f"{name}.png").exists() and (out / f"{name}.json").exists()
    summary = doc["details"]["mnist5k"]["summary"]
    assert set(summary["per_point_drop_pp"]) >= {
        "direct-faithful",
        "generative-faithful",
        "label-flip",
    }
    # a rerun reuses the finished stages (resume after a kill works the same way)
    again = reproduce(
        PAPER,
        "smoke",
        out_root=tmp_path / "out",
        work_root=tmp_path / "runs",
        threads=1,
        quiet=True,
    )
    assert again["details"]["mnist5k"]["summary"] == summary


def test_cli_attack_then_detect(tmp_path, capsys):
    stem = tmp_path / "poisons"
    common = ["--work-dir", str(tmp_path / "runs")]
    rc = main(
        [
            "poisongen",
            "attack",
            "--dataset",
            "digits",
            "--method",
            "direct-exact",
            "--n",
            "3",
            "--out",
            str(stem),
            "--target-steps",
            "100",
            *common,
        ]
    )
    assert rc == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["n"] == 3 and "accuracy_drop_pp" in printed
    rc = main(["poisongen", "detect", "--poisons", str(stem), "--quantile", "0.95", *common])
    assert rc == 0
    report = json.loads(capsys.readouterr().out)
    assert report["n_poison"] == 3 and 0 <= report["fpr"] <= 1


def test_cli_bad_input_is_one_line_and_exit_2(tmp_path, capsys):
    rc = main(["poisongen", "attack", "--dataset", "imagenet", "--work-dir", str(tmp_path)])
    assert rc == 2
    err = capsys.readouterr().err
    assert "--dataset must be one of" in err and err.count("\n") == 1
    rc = main(["poisongen", "attack", "--method", "magic", "--work-dir", str(tmp_path)])
    assert rc == 2
    rc = main(["poisongen", "detect", "--poisons", str(tmp_path / "missing")])
    assert rc == 2
