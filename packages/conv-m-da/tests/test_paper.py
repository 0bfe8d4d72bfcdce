import json
import subprocess
import sys

import pytest

from dnnrepro.conv_m_da.claims import CLAIMS
from dnnrepro.conv_m_da.config import PROFILES
from dnnrepro.conv_m_da.paper import PAPER
from dnnrepro.conv_m_da.tasks import FULL_MNIST_TASKS, SMALL_TASKS
from dnnrepro.core.errors import DataError
from dnnrepro.core.paper import BenchOptions, reproduce


def test_claims_are_declared_once_with_rules():
    ids = [c.id for c in CLAIMS]
    assert len(ids) == len(set(ids)) and PAPER.name == "conv-m-da"
    assert any(c.profiles == ("paper",) for c in CLAIMS)
    # per-task claims for every task of the profile that records them
    for profile, tasks in (("small", SMALL_TASKS), ("paper", FULL_MNIST_TASKS)):
        for t in tasks:
            tid = t.replace("->", "-to-")
            for kind in ("beats-adabn", "beats-dan-dann"):
                claim = next(c for c in CLAIMS if c.id == f"{kind}-{tid}")
                assert claim.profiles == (profile,) and claim.test_difference
    assert {c.id for c in CLAIMS if c.kind == "by-construction"} == {
        "param-count",
        "param-ratio-googlenet",
    }


def test_profiles_are_frozen_and_paper_uses_full_mnist():
    import dataclasses

    assert set(PROFILES) == {"smoke", "small", "paper"}
    assert PROFILES["paper"].tasks == FULL_MNIST_TASKS and PROFILES["paper"].office
    with pytest.raises(dataclasses.FrozenInstanceError):
        PROFILES["small"].steps = 1


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
    out = tmp_path / "out" / "_smoke" / "conv-m-da" / "smoke"
    saved = json.loads((out / "results.json").read_text())
    assert saved["package"] == "conv-m-da" and (out / "accuracy.png").exists()
    assert (out / "features_pca.png").exists()
    assert "target_accuracy_percent" in doc["details"]
    # the squeeze-like net was pre-trained until it fit the source as well as the Conv-M net,
    # or for the most chunks the profile allows
    nets = doc["details"]["networks_on_syndigits->mnist5k"]
    (chunks,) = nets["squeeze"]["pretrain_chunks"]
    fit = {k: nets[k]["pretrain_source_train"]["mean"] for k in ("compact", "squeeze")}
    assert chunks in (1, 2) and (chunks == 2 or fit["squeeze"] >= fit["compact"])
    assert nets["compact"]["pretrain_chunks"] == [1]
    # a second run reuses every stage (resumable) and gives the same table
    again = reproduce(
        PAPER,
        "smoke",
        out_root=tmp_path / "out",
        work_root=tmp_path / "runs",
        threads=1,
        quiet=True,
    )
    assert again["details"]["target_accuracy_percent"] == doc["details"]["target_accuracy_percent"]


def test_paper_profile_without_mnist_files_is_one_clear_error(tmp_path):
    with pytest.raises(DataError, match="mnist"):
        reproduce(
            PAPER,
            "paper",
            out_root=tmp_path / "o",
            work_root=tmp_path / "r",
            data_dir=tmp_path,
            quiet=True,
        )


def test_cli_count_and_bad_input():
    out = subprocess.run(
        [sys.executable, "-m", "dnnrepro.core.cli", "conv-m-da", "count", "--json"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    rows = json.loads(out.stdout)
    assert {r["network"] for r in rows} == {"compact", "squeeze", "inception"}
    bad = subprocess.run(
        [sys.executable, "-m", "dnnrepro.core.cli", "conv-m-da", "adapt", "--threads", "0"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert bad.returncode == 2 and "threads" in bad.stderr and "Traceback" not in bad.stderr


def test_bench_quick_gives_ratio_entries(tmp_path):
    opts = BenchOptions(threads=1, quick=True, data_dir=None, out_dir=tmp_path, paper=PAPER)
    entries = PAPER.bench(opts)
    assert {e["network"] for e in entries} == {"compact", "squeeze"}
    assert {(e["size"], e["mode"]) for e in entries} == {
        (s, m) for s in ("small", "paper") for m in ("train", "infer")
    }
    for e in entries:
        assert e["low"] <= e["ratio"] <= e["high"] and e["ratio"] > 0
        assert e["params"] < e["baseline_params"]  # both nets are smaller than inception


@pytest.mark.slow
def test_paper_profile_dry_run_on_full_mnist(tmp_path, monkeypatch, full_mnist_dir):
    """The paper profile end to end at a few steps: all four full-MNIST tasks, every method,
    the per-task claims recorded, the Office claim noted as not run (no Office folders)."""
    import dataclasses

    from dnnrepro.conv_m_da import experiment

    short = dataclasses.replace(PROFILES["paper"], pretrain=3, steps=2, limit=300, batch_size=16)
    monkeypatch.setitem(experiment.PROFILES, "paper", short)
    doc = reproduce(
        PAPER,
        "paper",
        seeds=1,
        out_root=tmp_path / "out",
        work_root=tmp_path / "runs",
        data_dir=full_mnist_dir,
        threads=1,
        quiet=True,
    )
    rows = {r["id"]: r for r in doc["claims"]}
    for t in FULL_MNIST_TASKS:
        tid = t.replace("->", "-to-")
        assert len(rows[f"beats-adabn-{tid}"]["values"]) == 1
        assert len(rows[f"beats-dan-dann-{tid}"]["values"]) == 1
    assert set(doc["details"]["target_accuracy_percent"]) == set(FULL_MNIST_TASKS)
    assert "office31" in doc["details"]["office"]
