"""The monorepo's conventions, checked: layout, namespace, metadata, one package list."""

import re
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = sorted(p.parent.name for p in (ROOT / "packages").glob("*/pyproject.toml"))


def test_root_layout():
    for name in (
        "README.md",
        "noxfile.py",
        "constraints.txt",
        "CITATION.cff",
        "LICENSE",
        ".gitignore",
        "ruff.toml",
        "data.dvc",
        "dvc.yaml",
        "params.yaml",
        ".github/workflows/ci.yml",
        ".ci/run",
        "shared/pyproject.toml",
    ):
        assert (ROOT / name).exists(), name
    readme = (ROOT / "README.md").read_text()
    assert "python3 -m pip install nox && nox -s reproduce" in readme
    assert "python3 -m pip install nox && nox -s tests" in readme


def test_torch_is_pinned_for_every_session():
    assert re.search(r"^torch==2\.13\.0$", (ROOT / "constraints.txt").read_text(), re.M)


def test_dnnrepro_stays_a_namespace_package():
    offenders = [p for p in ROOT.glob("*/**/src/dnnrepro/__init__.py") if ".nox" not in p.parts]
    assert not offenders


def test_dvc_pipeline_lists_exactly_the_packages():
    text = (ROOT / "dvc.yaml").read_text()
    block = text.split("foreach:")[1].split("do:")[0]
    listed = sorted(re.findall(r"^\s*-\s*([\w-]+)\s*$", block, re.M))
    assert listed == PACKAGES


@pytest.mark.parametrize("pkg", PACKAGES)
def test_package_shape_and_metadata(pkg):
    folder = ROOT / "packages" / pkg
    for name in ("README.md", "CITATION.cff", "CHANGELOG.md", "tests"):
        assert (folder / name).exists(), f"{pkg}: missing {name}"
    meta = tomllib.loads((folder / "pyproject.toml").read_text())
    project = meta["project"]
    module = pkg.replace("-", "_")
    assert project["name"] == f"dnnrepro-{pkg}"
    assert meta["build-system"]["build-backend"] == "poetry.core.masonry.api"
    deps = " ".join(project["dependencies"])
    # the package's core range must admit the core in this repository (CONTRIBUTING.md, releases)
    from packaging.requirements import Requirement

    core = tomllib.loads((ROOT / "shared" / "pyproject.toml").read_text())["project"]
    reqs = [Requirement(r) for r in project["dependencies"] if r.startswith("dnnrepro-core")]
    assert len(reqs) == 1, deps
    assert reqs[0].specifier.contains(core["version"]), f"{pkg}: {reqs[0]} excludes the core"
    assert re.search(r"<\s*\d+\.\d+", str(reqs[0].specifier)), f"{pkg}: no upper bound on the core"
    assert "file:" not in deps and "path" not in deps
    eps = project["entry-points"]["dnnrepro.papers"]
    assert eps == {pkg: f"dnnrepro.{module}.paper:PAPER"}
    assert (folder / "src" / "dnnrepro" / module / "__init__.py").exists()


def test_package_readmes_carry_their_pinned_claims_table():
    import importlib.util

    spec = importlib.util.spec_from_file_location("sync", ROOT / "tools" / "sync_readme_claims.py")
    sync = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(sync)
    assert sync.main(["--check"]) == 0
