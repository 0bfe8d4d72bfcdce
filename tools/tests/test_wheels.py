"""The install a PyPI user gets: wheels built from the folders, installed into a fresh venv.

The wheels of the core and of every package are built (poetry-core, `pip wheel --no-deps`) into
a temporary folder. A fresh venv (no system site-packages) first gets the third-party
requirements the pyprojects declare as required, nothing else (torch under constraints.txt, as
every session installs it); then our distributions are installed with `--no-index --find-links`,
so a requirement missing from that list, or a dnnrepro-core range that the built core does not
satisfy, fails the install. The core's `reproduce` extra (matplotlib, pillow, scikit-learn,
mlxtend, tqdm) is never installed there: every package's public API must import without it.

Slow (about a minute on 2 cores, most of it installing torch into the venv); it runs inside
`nox -s tests` and in CI.
"""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = sorted(p.parent.name for p in (ROOT / "packages").glob("*/pyproject.toml"))
PROJECTS = [ROOT / "shared"] + [ROOT / "packages" / p for p in PACKAGES]
# the core's `reproduce` extra and other heavy packages no library import may need
EXTRAS = ("matplotlib", "PIL", "sklearn", "mlxtend", "tqdm", "scipy", "pandas")
ONE_PACKAGE = (
    "forcereg"  # the example: `import dnnrepro.forcereg` with the core's deps only
)
TIMEOUT_S = 900


def _meta(project: Path) -> dict:
    return tomllib.loads((project / "pyproject.toml").read_text())["project"]


def _name(requirement: str) -> str:
    return re.split(r"[\s<>=!~\[;(]", requirement, maxsplit=1)[0].lower()


def _env() -> dict[str, str]:
    # nothing of the calling venv or the source tree may leak into the fresh one
    drop = ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME", "PIP_REQUIRE_VIRTUALENV")
    return {k: v for k, v in os.environ.items() if k not in drop} | {"OMP_NUM_THREADS": "1"}


def _run(args: list[str], cwd: Path) -> str:
    proc = subprocess.run(
        args, cwd=cwd, env=_env(), capture_output=True, text=True, timeout=TIMEOUT_S
    )
    if proc.returncode != 0:
        raise AssertionError(
            f"{' '.join(map(str, args))} exited {proc.returncode}\n{proc.stdout[-3000:]}\n"
            f"{proc.stderr[-3000:]}"
        )
    return proc.stdout


def test_every_wheel_project_declares_a_license_file_identical_to_the_root_one():
    root = (ROOT / "LICENSE").read_bytes()
    for project in PROJECTS:
        meta = _meta(project)
        assert meta.get("license-files") == ["LICENSE"], project.name
        assert (project / "LICENSE").read_bytes() == root, f"{project}/LICENSE differs from LICENSE"


def test_required_dependencies_are_the_slim_set():
    core = _meta(ROOT / "shared")
    assert sorted(_name(r) for r in core["dependencies"]) == ["numpy", "safetensors", "torch"]
    reproduce = {_name(r) for r in core["optional-dependencies"]["reproduce"]}
    assert {"matplotlib", "pillow", "scikit-learn", "mlxtend", "tqdm"} <= reproduce
    for pkg in PACKAGES:
        meta = _meta(ROOT / "packages" / pkg)
        names = {_name(r) for r in meta["dependencies"]}
        assert not names & {"matplotlib", "pillow", "scikit-learn", "mlxtend", "tqdm"}, pkg
        assert any(
            r.startswith("dnnrepro-core[reproduce]")
            for r in meta["optional-dependencies"]["reproduce"]
        ), pkg


@pytest.fixture(scope="module")
def wheelhouse(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheels")
    # with poetry-core here (the nox test sessions install it) skip a build env per project
    isolation = [] if importlib.util.find_spec("poetry") is None else ["--no-build-isolation"]
    pip = [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", *isolation]
    _run([*pip, "-w", str(out), *map(str, PROJECTS)], out)
    return out


@pytest.fixture(scope="module")
def bare_venv(tmp_path_factory, wheelhouse) -> Path:
    """A fresh venv holding only the core's required third-party dependencies (and the one
    package's, which are a subset)."""
    venv = tmp_path_factory.mktemp("venv")
    _run([sys.executable, "-m", "venv", "--clear", str(venv)], venv)
    _install_required(venv, [ROOT / "shared", ROOT / "packages" / ONE_PACKAGE])
    return venv


def _install_required(venv: Path, projects: list[Path]) -> None:
    """The third-party requirements the projects declare required, under constraints.txt."""
    required = sorted(
        {r for p in projects for r in _meta(p)["dependencies"] if not r.startswith("dnnrepro-")}
    )
    # --no-compile: byte-compiling torch's sources is most of an install's time, and unneeded here
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "--no-compile"]
    _run([*pip, "-c", str(ROOT / "constraints.txt"), *required], venv)


def _install(venv: Path, wheelhouse: Path, *dists: str) -> None:
    """Our distributions from the wheel folder only: any requirement not yet there fails."""
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "-q"]
    _run([*pip, "--no-index", "--find-links", str(wheelhouse), *dists], wheelhouse)


@pytest.mark.slow
def test_wheels_carry_py_typed_and_the_license(wheelhouse):
    wheels = sorted(wheelhouse.glob("*.whl"))
    assert len(wheels) == len(PROJECTS), [w.name for w in wheels]
    for wheel in wheels:
        names = zipfile.ZipFile(wheel).namelist()
        assert any(n.endswith("/py.typed") for n in names), f"{wheel.name}: no py.typed"
        assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names), (
            f"{wheel.name}: no LICENSE"
        )


@pytest.mark.slow
def test_core_and_one_package_install_from_wheels_and_import(bare_venv, wheelhouse, tmp_path):
    _install(bare_venv, wheelhouse, f"dnnrepro-{ONE_PACKAGE}")
    module = "dnnrepro." + ONE_PACKAGE.replace("-", "_")
    code = (
        "import importlib.util as u\n"
        f"extra = [n for n in {(*EXTRAS, 'numba')!r} if u.find_spec(n) is not None]\n"
        "assert not extra, f'not only the core deps: {extra}'\n"
        f"import importlib.metadata as md, {module} as m, dnnrepro.core as c\n"
        "print(m.__file__); print(c.__file__)\n"
        "print(md.version('dnnrepro-core'))\n"
    )
    out = _run([str(bare_venv / "bin" / "python"), "-c", code], tmp_path).split()
    assert all(str(bare_venv) in path for path in out[:2]), out  # the wheel, not the source tree
    assert out[2] == _meta(ROOT / "shared")["version"]
    assert not list(tmp_path.iterdir())


@pytest.mark.slow
def test_every_package_public_api_imports_without_the_core_extras(bare_venv, wheelhouse, tmp_path):
    _install_required(bare_venv, PROJECTS)  # e.g. numba for holistic-sparsecnn
    _install(bare_venv, wheelhouse, *[f"dnnrepro-{p}" for p in PACKAGES])
    modules = ["dnnrepro.core"] + ["dnnrepro." + p.replace("-", "_") for p in PACKAGES]
    code = f"""
import importlib, importlib.util, pkgutil
present = [name for name in {EXTRAS!r} if importlib.util.find_spec(name) is not None]
assert not present, f"the venv is not bare: {{present}} installed"
for name in {modules!r}:
    module = importlib.import_module(name)
    if name == "dnnrepro.core":
        # the core's public surface is its modules (testing: the pytest plugin, for test envs)
        public = [m.name for m in pkgutil.iter_modules(module.__path__) if m.name != "testing"]
        for sub in public:
            importlib.import_module(name + "." + sub)
    else:
        public = getattr(module, "__all__", None)
        assert public, f"{{name}} has no __all__"
    for attr in public:
        getattr(module, attr)  # a lazily imported name that fails to import fails here
    print(name, len(public), "public names")
"""
    out = _run([str(bare_venv / "bin" / "python"), "-c", code], tmp_path)
    assert out.count("public names") == len(modules), out
    assert not list(tmp_path.iterdir())
