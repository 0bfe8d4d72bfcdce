import json
import subprocess
import sys

import pytest

from dnnrepro.core.errors import DataError
from dnnrepro.core.paper import reproduce, run_bench, run_folder
from dnnrepro.core.results import NOT_RUN
from dnnrepro.ssl import load_shrunk
from dnnrepro.ssl.paper import CLAIMS, PAPER
from dnnrepro.ssl.pruner_comparison import layer_widths


def test_claims_are_declared_once_with_rules():
    ids = [c.id for c in CLAIMS]
    assert len(ids) == len(set(ids))
    assert any(c.profiles == ("paper",) for c in CLAIMS)
    assert PAPER.default_seeds["small"] >= 3 and PAPER.default_seeds["paper"] >= 3
    # each table row has its combined structure-at-error claim, tuned like the row
    combined = {c.id: c for c in CLAIMS if c.id.endswith("_structure_at_error")}
    assert len(combined) == 6
    assert all(c.tuned == (f"strength_{c.id.split('_structure')[0]}",) for c in combined.values())


@pytest.mark.slow
def test_smoke_reproduce_runs_every_row(tmp_path):
    doc = reproduce(
        PAPER, "smoke", out_root=tmp_path / "out", work_root=tmp_path / "runs", quiet=True
    )
    assert {r["verdict"] for r in doc["claims"]} == {NOT_RUN}
    saved = json.loads((tmp_path / "out" / "_smoke" / "ssl" / "smoke" / "results.json").read_text())
    assert saved["package"] == "ssl"
    rows = doc["details"]["rows"]
    assert set(rows) == {"lenet2", "lenet3", "lenet4", "lenet5", "mlp_a", "mlp_b", "depth"}
    for results in rows.values():
        assert results[0]["max_output_gap"] < 1e-4
    # every lambda is chosen by the tuning protocol, on the validation split, never on test
    tuned = {r["name"]: r for r in saved["tuning"]}
    assert set(tuned) == {f"strength_{row}" for row in rows}
    for r in tuned.values():
        assert r["split"] == "val" and "test" not in json.dumps(r)
        assert r["choice"] in r["candidates"] and min(r["seeds"]) >= 1000
    assert saved["details"]["strength"]["lenet3"] == tuned["strength_lenet3"]["choice"]
    conv2 = next(r for r in saved["details"]["speed"]["lenet3"]["layers"] if r["layer"] == "conv2")
    assert conv2["gemm_low"] <= conv2["gemm_speedup"] <= conv2["gemm_high"]
    # `dnnrepro ssl bench --quick` reads that run's nets through run_folder (no search by time)
    path = run_bench(PAPER, out_dir=tmp_path / "bench", quick=True, work_root=tmp_path / "runs")
    entries = {e["name"]: e for e in json.loads(path.read_text())["entries"]}
    assert "lenet3.network.batch1" in entries and "lenet3.structured_vs_csr" in entries
    assert entries["summary"]["error_increase_pp"] == rows["lenet3"][0]["error_increase_pp"]
    assert (tmp_path / "out" / "_smoke" / "ssl" / "smoke" / "error_vs_speedup.png").exists()
    # the side by side (issue 16 item 6) pruned the other arms to SSL's own widths, seed by seed
    models = run_folder(PAPER, "smoke", work_root=tmp_path / "runs") / "models"
    arms = saved["details"]["comparison"]["lenet3"]
    assert "magnitude" in arms
    for seed, ssl in enumerate(rows["lenet3"]):
        widths = layer_widths(load_shrunk(models / ssl["model"]))
        assert all(arm[seed]["widths"] == widths for arm in arms.values())


def test_paper_profile_without_full_data_is_one_clear_error(tmp_path):
    with pytest.raises(DataError):
        reproduce(
            PAPER,
            "paper",
            out_root=tmp_path / "o",
            work_root=tmp_path / "r",
            data_dir=tmp_path / "empty",
            quiet=True,
        )


def _cli(*args, cwd):
    return subprocess.run(
        [sys.executable, "-m", "dnnrepro.core.cli", "ssl", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=300,
    )


@pytest.mark.slow
def test_cli_train_shrink_report(tmp_path):
    out = tmp_path / "mlp"
    r = _cli(
        "train",
        "--model",
        "mlp",
        "--data",
        "digits",
        "--groups",
        "row,column",
        "--strength",
        "0.05",
        "--epochs",
        "1",
        "--finetune-epochs",
        "1",
        "--base-epochs",
        "1",
        "--threads",
        "1",
        "--out",
        str(out),
        cwd=tmp_path,
    )
    assert r.returncode == 0, r.stderr
    r = _cli("shrink", str(out / "sparse"), "--out", str(out / "shrunk"), cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "max |shrunk - sparse|" in r.stdout
    r = _cli("report", str(out / "shrunk"), cwd=tmp_path)
    assert r.returncode == 0 and "layers.fc1" in r.stdout


def test_cli_bad_input_is_one_line_and_exit_2(tmp_path):
    r = _cli("shrink", str(tmp_path / "missing"), "--out", str(tmp_path / "x"), cwd=tmp_path)
    assert r.returncode == 2
    assert r.stderr.strip().count("\n") == 0 and "no such checkpoint" in r.stderr
    r = _cli(
        "train", "--model", "vgg", "--data", "digits", "--out", str(tmp_path / "v"), cwd=tmp_path
    )
    assert r.returncode == 2 and "--model must be" in r.stderr
