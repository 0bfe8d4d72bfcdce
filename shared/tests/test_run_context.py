"""RunContext (private state, stages keyed by arguments, inputs, tuning), run_folder and the
code fingerprint that keys it."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from dnnrepro.core import bench, paper, results
from dnnrepro.core.errors import ConfigError, DataError

CORE = Path(paper.__file__).parent


def _claims():
    return [
        results.Claim(
            id="acc",
            statement="accuracy is at least 0.5",
            paper_value="0.9",
            unit="",
            source="§1",
            confidence="verified",
            metric="accuracy",
            rule=results.at_least(0.5),
        ),
        results.Claim(
            id="fast",
            statement="the candidate is faster",
            paper_value="2x",
            unit="x",
            source="§2",
            confidence="verified",
            metric="baseline / candidate time",
            rule=results.at_least(1.0),
            timing=True,
        ),
    ]


def _paper(run=lambda ctx: None, **kw) -> paper.Paper:
    return paper.Paper(
        name="ctxtest",
        title="t",
        arxiv="0",
        version="0",
        claims=_claims(),
        run=run,
        source_module="dnnrepro.core",
        **kw,
    )


@pytest.fixture
def ctx(tmp_path):
    return paper.RunContext(
        _paper(), "small", [0, 1], tmp_path / "out", tmp_path / "work", fingerprint="abc"
    )


def test_state_is_read_only_and_records_are_checked(ctx, tmp_path):
    with pytest.raises(AttributeError):
        ctx.out_dir = tmp_path
    with pytest.raises(AttributeError):
        ctx.details  # noqa: B018  (no mutable field is public any more)
    ctx.seeds.append(7)  # a copy: the run's seeds do not change
    assert ctx.seeds == [0, 1]
    with pytest.raises(ConfigError, match="no claim 'nope'"):
        ctx.record("nope", 1.0)
    with pytest.raises(ConfigError, match="detail key"):
        ctx.detail("", 1)
    ctx.record("acc", 0.7)
    ctx.detail("table", {"a": 1})
    ctx.note("acc", "on val")
    got = ctx._collected()
    assert got["measurements"] == {"acc": [0.7]} and got["details"] == {"table": {"a": 1}}
    assert got["notes"] == {"acc": "on val"}


def test_stage_is_keyed_by_name_and_arguments(ctx):
    calls = []

    def fn(v):
        calls.append(v)
        return {"v": v}

    assert ctx.stage("train", lambda: fn(1), lr=0.1, seed=0) == {"v": 1}
    assert ctx.stage("train", lambda: fn(2), seed=0, lr=0.1) == {"v": 1}  # same key, any order
    assert ctx.stage("train", lambda: fn(3), lr=0.2, seed=0) == {"v": 3}  # other arguments
    assert ctx.stage("train", lambda: fn(4)) == {"v": 4}  # no key: its own stage
    assert calls == [1, 3, 4]
    stored = sorted(p.name for p in (ctx.work_dir / "stages").iterdir())
    assert len(stored) == 3 and "train.json" in stored
    doc = json.loads(next(p for p in (ctx.work_dir / "stages").glob("train-*.json")).read_text())
    assert doc["key"] in ({"lr": 0.1, "seed": 0}, {"lr": 0.2, "seed": 0})
    with pytest.raises(ConfigError, match="JSON"):
        ctx.stage("bad", lambda: 1, model=object())
    with pytest.raises(ConfigError, match="plain file name"):
        ctx.stage("../escape", lambda: 1)


def test_stage_from_other_code_is_recomputed(tmp_path):
    def make(fp):
        return paper.RunContext(_paper(), "small", [0], tmp_path, tmp_path / "w", fingerprint=fp)

    assert make("one").stage("s", lambda: 1, k=1) == 1
    assert make("one").stage("s", lambda: 2, k=1) == 1
    assert make("two").stage("s", lambda: 3, k=1) == 3


def test_input_records_sha256_and_refuses_a_missing_file(ctx, tmp_path):
    f = tmp_path / "net.json"
    f.write_text("{}")
    assert ctx.input(f) == f
    from dnnrepro.core.io import sha256_file

    assert ctx._collected()["inputs"] == {str(f): sha256_file(f)}
    with pytest.raises(DataError, match="does not exist"):
        ctx.input(tmp_path / "missing.json")


def test_figure_from_an_existing_png(ctx, tmp_path):
    png = tmp_path / "made-elsewhere.png"
    png.write_bytes(b"\x89PNG fake")
    ctx.figure("net", png, {"rows": 2})
    assert (ctx.out_dir / "net.png").read_bytes() == b"\x89PNG fake"
    assert json.loads((ctx.out_dir / "net.json").read_text()) == {"rows": 2}
    assert ctx._collected()["figures"] == ["net.png"] and str(png) in ctx._collected()["inputs"]


def test_record_timing_keeps_the_measurement(ctx):
    m = bench.RatioMeasurement(2.0, 1.8, 2.2, 0.1, 0.2, 9, 1, 0.05, False)
    with pytest.raises(ConfigError, match="not a timing claim"):
        ctx.record_timing("acc", m)
    ctx.record_timing("fast", m.as_dict())  # as stored by a stage
    with pytest.raises(ConfigError, match="already recorded"):
        ctx.record_timing("fast", m)
    got = ctx._collected()
    assert got["timings"]["fast"]["low"] == 1.8 and got["measurements"]["fast"] == [2.0]


def test_tune_uses_tuning_seeds_and_the_val_split(ctx):
    seen = []

    def evaluate(candidate, seed, split):
        seen.append((candidate, seed, split))
        return -abs(candidate - 3)

    record = ctx.tune("strength", [1, 3, 5], evaluate, objective="max", n_seeds=2)
    assert record.choice == 3
    assert {s for _, s, _ in seen} == {1000, 1001} and {sp for *_, sp in seen} == {"val"}
    assert ctx._collected()["tuning"][0]["name"] == "strength"
    with pytest.raises(ConfigError, match="already tuned"):
        ctx.tune("strength", [1], evaluate)


def test_reproduce_passes_timings_tuning_and_inputs(tmp_path):
    src = tmp_path / "in.txt"
    src.write_text("x")

    def run(ctx):
        ctx.input(src)
        for s in ctx.seeds:
            ctx.record("acc", 0.9 + 0.01 * s)
        ctx.record_timing(
            "fast", bench.RatioMeasurement(2.0, 1.8, 2.2, 0.1, 0.2, 9, 1, 0.05, False)
        )
        ctx.tune("k", [0, 1], lambda c, seed, split: c)

    doc = paper.reproduce(_paper(run), "small", 2, tmp_path / "o", None, tmp_path / "r", 1, True)
    fast = next(r for r in doc["claims"] if r["id"] == "fast")
    assert fast["verdict"] == "reproduced"
    assert json.dumps(doc).count("in.txt") >= 1 and "code_fingerprint" in doc["provenance"]
    assert (tmp_path / "o" / "ctxtest" / "small" / "results.json").exists()


def test_run_folder_is_deterministic_and_is_the_run_work_folder(tmp_path):
    p = _paper(lambda ctx: ctx.stage("s", lambda: 1))
    a = paper.run_folder(p, "small", tmp_path)
    assert a == paper.run_folder(p, "small", tmp_path) and not a.exists()
    paper.reproduce(p, "small", 1, tmp_path / "o", None, tmp_path, 1, True)
    assert (a / "stages" / "s.json").exists()
    assert paper.run_folder(p, "paper", tmp_path) != a
    with pytest.raises(ConfigError, match="unknown profile"):
        paper.run_folder(p, "huge", tmp_path)


def test_unwritable_folders_fail_before_work(tmp_path):
    calls = []
    p = _paper(lambda ctx: calls.append(1))
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(ConfigError, match="results folder .* not writable.*--out"):
        paper.reproduce(p, "small", 1, blocker, None, tmp_path / "r", 1, True)
    with pytest.raises(ConfigError, match="work folder .* not writable.*--work-dir"):
        paper.reproduce(p, "small", 1, tmp_path / "o", None, blocker, 1, True)
    assert calls == []


def test_a_held_run_folder_is_refused(tmp_path):
    from dnnrepro.core.errors import DnnreproError
    from dnnrepro.core.lock import RunLock

    p = _paper()
    folder = paper.run_folder(p, "small", tmp_path)
    folder.mkdir(parents=True)
    with RunLock(folder), pytest.raises(DnnreproError, match="another run"):
        paper.reproduce(p, "small", 1, tmp_path / "o", None, tmp_path, 1, True)


def _fake_tree(tmp_path: Path) -> tuple[Path, Path]:
    """A copy of the real core and a tiny package that imports io (lazily) and errors."""
    core = tmp_path / "core"
    shutil.copytree(CORE, core, ignore=shutil.ignore_patterns("__pycache__"))
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("from dnnrepro.core.errors import ConfigError\n")
    (pkg / "run.py").write_text(
        "from . import helpers\n\ndef go():\n    from dnnrepro.core import io\n    return io\n"
    )
    (pkg / "helpers.py").write_text("X = 1\n")
    return pkg, core


def test_fingerprint_covers_only_the_modules_the_package_imports(tmp_path):
    pkg, core = _fake_tree(tmp_path)
    names = {p.name for p in paper.fingerprint_files(pkg, core)}
    assert {"io.py", "errors.py", "__init__.py", "run.py", "helpers.py"} <= names
    assert "kernels.py" not in names and "train.py" not in names
    before = paper.source_fingerprint(pkg, core)
    kernels = core / "kernels.py"
    kernels.write_text('"""An edited docstring."""\n' + kernels.read_text())
    assert paper.source_fingerprint(pkg, core) == before  # unrelated core module: no recompute
    (core / "io.py").write_text((core / "io.py").read_text() + "\n# edited\n")
    assert paper.source_fingerprint(pkg, core) != before  # a module the package uses
    after_io = paper.source_fingerprint(pkg, core)
    (pkg / "helpers.py").write_text("X = 2\n")
    assert paper.source_fingerprint(pkg, core) != after_io  # the package's own file


def test_fingerprint_follows_core_imports_transitively(tmp_path):
    pkg, core = _fake_tree(tmp_path)
    (pkg / "run.py").write_text("from dnnrepro.core.paper import Paper\n")
    names = {p.name for p in paper.fingerprint_files(pkg, core)}
    # paper.py imports results, data, bench, io, errors (and lock, tuning inside functions)
    assert {"paper.py", "results.py", "data.py", "bench.py", "lock.py", "tuning.py"} <= names
