import json
import subprocess
import sys

import pytest

from dnnrepro.conv_m_da.paper import CLAIMS, PAPER
from dnnrepro.core.errors import DataError
from dnnrepro.core.paper import reproduce


def test_claims_are_declared_once_with_rules():
    ids = [c.id for c in CLAIMS]
    assert len(ids) == len(set(ids)) and PAPER.name == "conv-m-da"
    assert any(c.profiles == ("paper",) for c in CLAIMS)


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


def test_paper_profile_without_office_data_is_one_clear_error(tmp_path):
    with pytest.raises(DataError, match="office31"):
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


def test_bench_quick_writes_ratios(tmp_path, monkeypatch):
    from dnnrepro.conv_m_da import bench

    monkeypatch.setitem(
        bench.SETUPS, "paper", {**bench.SETUPS["paper"], "shape": (3, 32, 32), "batch": 1}
    )
    assert bench.main(["--out", str(tmp_path), "--threads", "1", "--quick"]) == 0
    doc = json.loads((tmp_path / "bench.json").read_text())
    rows = [e for e in doc["entries"] if e["network"] == "inception"]
    assert all(r["train_speedup_vs_inception"] == 1.0 for r in rows)
    assert {e["network"] for e in doc["entries"]} == {"compact", "squeeze", "inception"}
