"""reproduce() and the dnnrepro CLI, driven by a fake paper package."""

import json

import pytest

from dnnrepro.core import cli, paper, results
from dnnrepro.core.errors import ConfigError

CALLS = []


def _run(ctx):
    CALLS.append(ctx.profile)
    x, _ = ctx.load("digits", "test")
    for seed in ctx.seeds:
        value = ctx.stage(f"measure-{seed}", lambda seed=seed: len(x) + seed)
        ctx.record("size", value)
    ctx.note("size", "measured on the test split")
    ctx.detail("table", {"rows": 1})


FAKE = paper.Paper(
    name="fake",
    title="A fake paper",
    arxiv="0000.00000",
    version="0.0.1",
    claims=[
        results.Claim(
            id="size",
            statement="the test split has at least 300 images",
            paper_value="364",
            unit="images",
            source="§1",
            confidence="verified",
            metric="len(test)",
            rule=results.at_least(300),
        )
    ],
    run=_run,
    default_seeds={"smoke": 1, "small": 2},
    source_module="dnnrepro.core",
)


class _EP:
    name = "fake"

    def load(self):
        return FAKE


@pytest.fixture
def fake_cli(monkeypatch, data_dir):
    monkeypatch.setattr(cli, "discover", lambda: {"fake": _EP()})
    monkeypatch.setenv("DNNREPRO_DATA", str(data_dir))


def test_reproduce_writes_results_and_memoizes_stages(tmp_path, data_dir, capsys):
    CALLS.clear()
    doc = paper.reproduce(FAKE, "small", None, tmp_path / "out", data_dir, tmp_path / "runs")
    row = doc["claims"][0]
    assert row["values"] == [364.0, 365.0] and row["verdict"] == "reproduced"
    assert doc["provenance"]["seeds"] == [0, 1]
    assert "digits-test.npz" in doc["provenance"]["data_sha256"]
    assert doc["details"]["table"] == {"rows": 1}
    assert (tmp_path / "out" / "fake" / "small" / "results.json").exists()
    assert "fake:size" in capsys.readouterr().out
    # a rerun reuses the stored stage results (as after a kill), found through run_folder
    stage = paper.run_folder(FAKE, "small", tmp_path / "runs") / "stages" / "measure-1.json"
    stored = json.loads(stage.read_text())
    stored["value"] = 999
    stage.write_text(json.dumps(stored))
    doc = paper.reproduce(FAKE, "small", None, tmp_path / "out", data_dir, tmp_path / "runs")
    assert doc["claims"][0]["values"] == [364.0, 999.0]


def test_work_dir_is_keyed_by_code_fingerprint(tmp_path, data_dir, monkeypatch):
    paper.reproduce(FAKE, "smoke", None, tmp_path / "out", data_dir, tmp_path / "runs", quiet=True)
    monkeypatch.setattr(paper, "package_fingerprint", lambda p: "f" * 64)
    paper.reproduce(FAKE, "smoke", None, tmp_path / "out", data_dir, tmp_path / "runs", quiet=True)
    folders = sorted(p.name for p in (tmp_path / "runs" / "fake" / "smoke").iterdir())
    assert len(folders) == 2 and "f" * 16 in folders


def test_list_reports_a_broken_package_and_goes_on(monkeypatch, capsys):
    class Broken:
        name = "broken"

        def load(self):
            raise ImportError("no module named zzz")

    monkeypatch.setattr(cli, "discover", lambda: {"fake": _EP(), "broken": Broken()})
    assert cli.main(["list"]) == 2
    out = capsys.readouterr().out
    assert "broken" in out and "BROKEN" in out and "fake" in out


def test_smoke_results_never_overwrite_pinned_results(tmp_path, data_dir):
    paper.reproduce(FAKE, "smoke", None, tmp_path / "out", data_dir, tmp_path / "runs", quiet=True)
    assert (tmp_path / "out" / "_smoke" / "fake" / "smoke" / "results.json").exists()
    assert not (tmp_path / "out" / "fake").exists()


def test_bad_profile_and_seeds_fail_before_work(tmp_path):
    CALLS.clear()
    with pytest.raises(ConfigError, match="unknown profile"):
        paper.reproduce(FAKE, "huge", None, tmp_path, None, tmp_path)
    with pytest.raises(ConfigError, match="seeds"):
        paper.reproduce(FAKE, "small", 0, tmp_path, None, tmp_path)
    assert CALLS == []


def test_cli_list_and_reproduce(fake_cli, tmp_path, capsys):
    assert cli.main(["list"]) == 0
    assert "fake" in capsys.readouterr().out
    args = [
        "fake",
        "reproduce",
        "--profile",
        "small",
        "--seeds",
        "1",
        "--out",
        str(tmp_path / "o"),
        "--work-dir",
        str(tmp_path / "w"),
    ]
    assert cli.main(args) == 0
    saved = json.loads((tmp_path / "o" / "fake" / "small" / "results.json").read_text())
    assert saved["package"] == "fake"


@pytest.mark.parametrize(
    "argv,fragment",
    [
        (["nosuchpaper", "reproduce"], "invalid choice"),
        (["fake", "reproduce", "--profile", "huge"], "unknown profile"),
        (["fake", "reproduce", "--seeds", "zero"], "invalid int value"),
        (["fake", "reproduce", "--seeds", "0"], "--seeds must be"),
        (["data", "frobnicate"], "invalid choice"),
    ],
)
def test_cli_bad_input_is_one_line_and_exit_2(fake_cli, capsys, argv, fragment, tmp_path):
    with pytest.raises(SystemExit) as exc:
        code = cli.main([*argv, *([] if argv[0] != "fake" else ["--out", str(tmp_path)])])
        raise SystemExit(code)
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip()
    assert fragment in err and len(err.splitlines()) == 1 and "Traceback" not in err


def test_cli_missing_full_data_is_one_line_and_exit_2(fake_cli, tmp_path, capsys, monkeypatch):
    def needs_mnist(ctx):
        ctx.load("mnist", "train")

    monkeypatch.setattr(FAKE, "run", needs_mnist)
    (tmp_path / "empty").mkdir()
    code = cli.main(
        [
            "fake",
            "reproduce",
            "--data-dir",
            str(tmp_path / "empty"),
            "--out",
            str(tmp_path / "o"),
            "--work-dir",
            str(tmp_path / "w"),
        ]
    )
    err = capsys.readouterr().err.strip()
    assert code == 2 and "train-images-idx3-ubyte" in err and len(err.splitlines()) == 1


def test_cli_data_verify(fake_cli, capsys, data_dir):
    from dnnrepro.core import data

    data.materialize(["digits"], data_dir)  # verify fails on a folder holding none of the files
    assert cli.main(["data", "verify", "--data-dir", str(data_dir)]) == 0
    assert "digits-test.npz" in capsys.readouterr().out
