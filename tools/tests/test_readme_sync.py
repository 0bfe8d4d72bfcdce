"""README/JSON drift: the package README's results block is rendered from the pinned JSON."""

import importlib.util
from pathlib import Path

from dnnrepro.core import results
from dnnrepro.core.results import Claim

ROOT = Path(__file__).resolve().parents[2]


def _sync():
    spec = importlib.util.spec_from_file_location("sync", ROOT / "tools" / "sync_readme_claims.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _pin(root: Path, values: list[float]) -> None:
    claim = Claim(
        id="acc",
        statement="accuracy stays high",
        paper_value="99.1",
        unit="%",
        source="Table 1",
        confidence="verified",
        metric="test accuracy (fraction)",
        rule=results.at_least(0.9),
    )
    prov = results.provenance("small", [0, 1, 2], {}, 1.0, {})
    doc = results.build_results("demo", "Demo", [claim], {"acc": values}, {}, "small", prov, [], {})
    results.write_results(root / "paper_results" / "demo" / "small", doc)


def _package(root: Path, readme: str) -> Path:
    folder = root / "packages" / "demo"
    folder.mkdir(parents=True)
    (folder / "pyproject.toml").write_text("[project]\nname = 'dnnrepro-demo'\n")
    (folder / "README.md").write_text(readme)
    return folder / "README.md"


OLD = """# demo

## Claims (small profile)

Profile `small`, seeds [0], commit `abc`, 2026-01-01T00:00:00Z, 12.0 s on X (1 threads).
Reproduced 13 of 18 claims tested at this profile (23 declared).

| id | claim | source | confidence | paper | ours (mean over seeds) | rule | verdict |
|---|---|---|---|---|---|---|---|
| acc | accuracy | T1 | verified | 99.1 % | 0.95 | >= 0.9 | **reproduced** |

## Prose after the table
"""


def test_sync_replaces_an_old_table_and_then_detects_drift(tmp_path):
    sync = _sync()
    _pin(tmp_path, [0.95, 0.96, 0.97])
    readme = _package(tmp_path, OLD)
    assert sync.main(["--check"], root=tmp_path) == 1  # the old hand-copied table differs
    assert sync.main([], root=tmp_path) == 0
    text = readme.read_text()
    assert sync.BEGIN in text and "13 of 18" not in text and "## Prose after the table" in text
    assert "Paper claims: 1 reproduced" in text and text.count("| acc |") == 1
    assert sync.main(["--check"], root=tmp_path) == 0

    # a hand edit of a number inside the block is drift
    readme.write_text(text.replace("Paper claims: 1 reproduced", "Paper claims: 2 reproduced"))
    assert sync.main(["--check"], root=tmp_path) == 1
    readme.write_text(text)

    # so is a new pin that the README does not show yet
    _pin(tmp_path, [0.5, 0.51, 0.52])
    assert sync.main(["--check"], root=tmp_path) == 1
    assert sync.main([], root=tmp_path) == 0
    assert "**not reproduced**" in readme.read_text()
    assert sync.main(["--check"], root=tmp_path) == 0


def test_the_repository_readmes_match_their_pins():
    assert _sync().main(["--check"]) == 0


def test_migration_moves_figures_and_redecides_old_pins(tmp_path):
    import json
    from types import SimpleNamespace

    spec = importlib.util.spec_from_file_location("mig", ROOT / "tools" / "migrate_results.py")
    mig = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mig)
    fields = dict(statement="s", paper_value="1", unit="", source="T1", confidence="verified")
    claims = [
        Claim(id="acc", metric="m", rule=results.at_least(0.5), **fields),
        Claim(id="speed", metric="x", rule=results.at_least(2.0), timing=True, **fields),
    ]
    pkg = tmp_path / "demo"
    pkg.mkdir()
    old_rows = [
        {"id": "acc", "values": [6.69, -2.51, -2.53], "note": "n", "verdict": "reproduced"},
        {"id": "speed", "values": [3.0, 3.1, 2.9], "note": "", "verdict": "reproduced"},
    ]
    prov = results.provenance("small", [0, 1, 2], {}, 1.0, {})
    old = {"package": "demo", "title": "Demo", "claims": old_rows, "provenance": prov}
    (pkg / "results.json").write_text(json.dumps({**old, "figures": ["f.png"], "details": {}}))
    for name in ("f.png", "f.json", "bench.json"):
        (pkg / name).write_text("x")
    mig.migrate_package(pkg, SimpleNamespace(name="demo", title="Demo", claims=claims))
    assert not (pkg / "results.json").exists() and (pkg / "bench.json").exists()
    assert (pkg / "small" / "f.png").exists() and (pkg / "small" / "f.json").exists()
    rows = {r["id"]: r for r in json.loads((pkg / "small" / "results.json").read_text())["claims"]}
    assert rows["acc"]["verdict"] == "inconclusive" and rows["acc"]["note"] == "n"
    assert rows["speed"]["reason"] == mig.PINNED_BEFORE
    assert "### Profile `small`" in (pkg / "README.md").read_text()
