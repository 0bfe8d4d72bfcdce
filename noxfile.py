"""Every workflow of dnnrepro is a nox session.

    nox -s tests                 every test (core and all packages)
    nox -s reproduce             every package at the small profile; prints the claims table
    nox -s tests-<pkg>           one package's tests
    nox -s tests-tools           tools/tests: layout, wheels in a bare venv, README blocks, docs
    nox -s reproduce-<pkg>       one package (-- --profile smoke|small|paper --seeds N ...)
    nox -s data                  materialize data/ and the baselines; check them against data.dvc
    nox -s lint                  ruff check and ruff format --check
    nox -s install-alone-<pkg>   fresh venv, core + that package from their folders (not editable)
    nox -s bench-<pkg>           the package's benchmark -> paper_results/<pkg>/bench.json
    nox -s gpu                   gpu-marked tests and tools/gpu_check.py (needs CUDA + CuPy)
    nox -s docs                  the API reference site (mkdocs --strict) -> site/

Sessions use virtualenv + pip with constraints.txt (torch==2.13.0 CPU from the local wheel);
poetry-core is only the build backend. Per-package sessions are generated from packages/*/.
Every session that reproduces or tests installs the core's `reproduce` extra (data, figures,
progress bars) and reads and writes data under <repo>/data ($DNNREPRO_DATA), the folder data.dvc
pins; the library's own default is the user cache directory.
"""

from __future__ import annotations

import os
from pathlib import Path

import nox

ROOT = Path(__file__).parent
nox.options.default_venv_backend = "virtualenv"
nox.options.reuse_existing_virtualenvs = True
nox.options.sessions = ["tests"]
PYTHON = "3.11"


def _packages() -> list[str]:
    """Folder names under packages/ that hold a pyproject.toml: the one list sessions come from."""
    return sorted(p.parent.name for p in (ROOT / "packages").glob("*/pyproject.toml"))


PACKAGES = _packages()


def _module(pkg: str) -> str:
    return "dnnrepro." + pkg.replace("-", "_")


# The core with what reproduction needs (materialized data, figures, progress bars); the packages
# with their own `reproduce` extra, which pulls the same.
CORE = "shared[reproduce]"
# ruff: mkdocstrings formats the signatures it shows with it
DOCS_DEPS = ("mkdocs", "mkdocstrings[python]", "ruff")
# pytest, and poetry-core so tools/tests/test_wheels.py builds wheels without a build env each
TEST_DEPS = ("pytest", "poetry-core")


def _pkg_target(pkg: str) -> str:
    return f"packages/{pkg}[reproduce]"


def _install(session: nox.Session, *folders: str, editable: bool = True, extra=()) -> None:
    """torch first (pinned CPU build), then the given folders (relative to the repository, with
    optional [extras]), all under constraints.txt."""
    c = ("-c", str(ROOT / "constraints.txt"))
    session.install(*c, "torch==2.13.0")
    targets = []
    for folder in folders:
        # an absolute path: pip would read a bare "shared" as a project name on the index
        path = folder if folder.startswith("/") else f"{ROOT}/{folder}"
        targets += ["-e", path] if editable else [path]
    session.install(*c, *targets, *extra)


def _env(session: nox.Session) -> dict[str, str]:
    return {
        "PYTHONHASHSEED": "0",
        "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "2"),
        # inside the repository data lives in data/ (pinned by data.dvc), not the user cache
        "DNNREPRO_DATA": str(ROOT / "data"),
    }


@nox.session(python=PYTHON)
def tests(session: nox.Session) -> None:
    """Every test: the core's and every package's, the wheel installs and the strict docs build."""
    _install(session, CORE, *[_pkg_target(p) for p in PACKAGES], extra=(*TEST_DEPS, *DOCS_DEPS))
    session.run("pytest", *session.posargs, env=_env(session))


@nox.session(name="tests-core", python=PYTHON)
def tests_core(session: nox.Session) -> None:
    """The core's tests only."""
    _install(session, CORE, extra=("pytest",))
    session.run("pytest", "shared/tests", *session.posargs, env=_env(session))


@nox.session(name="tests-tools", python=PYTHON)
def tests_tools(session: nox.Session) -> None:
    """The repository's own tests (tools/tests): layout, wheels in a bare venv, README blocks, docs."""
    _install(session, CORE, *[_pkg_target(p) for p in PACKAGES], extra=(*TEST_DEPS, *DOCS_DEPS))
    session.run("pytest", "tools/tests", *session.posargs, env=_env(session))


@nox.session(python=PYTHON)
def reproduce(session: nox.Session) -> None:
    """Reproduce every package at the small profile (or -- --profile X) and print all claims."""
    _install(session, CORE, *[_pkg_target(p) for p in PACKAGES])
    args = session.posargs or ["--profile", "small"]
    failed = []
    for pkg in PACKAGES:
        # one package failing must not hide the others' results; the session still fails
        try:
            session.run("dnnrepro", pkg, "reproduce", *args, env=_env(session))
        except nox.command.CommandFailed:
            failed.append(pkg)
    if "--profile" not in args or "small" in args:  # pinned results: keep package READMEs in step
        session.run("python", str(ROOT / "tools" / "sync_readme_claims.py"))
    session.run("python", str(ROOT / "tools" / "claims_table.py"), *args)
    if failed:
        session.error(f"reproduce failed for: {', '.join(failed)}")


@nox.session(python=PYTHON)
def data(session: nox.Session) -> None:
    """Materialize the embedded datasets and train the baselines into data/, then check data.dvc."""
    _install(session, CORE, extra=("dvc",))
    session.run("dnnrepro", "data", "materialize", env=_env(session))
    # lenet-mnist trains on full MNIST: read it from the shared folder when it is there (the
    # baselines are written into data/, DNNREPRO_DATA); without it that baseline is skipped
    mnist = ROOT.parent / "shared" / "data"
    where = ("--data-dir", str(mnist)) if (mnist / "mnist").is_dir() else ()
    session.run("dnnrepro", "data", "baselines", *where, env=_env(session))
    session.run("dnnrepro", "data", "verify", env=_env(session))
    session.run("python", str(ROOT / "tools" / "dvc_check.py"))


@nox.session(python=PYTHON)
def lint(session: nox.Session) -> None:
    """ruff check and ruff format --check over the whole repository."""
    session.install("-c", str(ROOT / "constraints.txt"), "ruff")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session(python=PYTHON)
def gpu(session: nox.Session) -> None:
    """GPU-marked tests and the kernel check (needs CUDA and CuPy); see tools/gpu_check.py."""
    _install(session, CORE, *[_pkg_target(p) for p in PACKAGES], extra=("pytest", "cupy-cuda12x"))
    session.run("pytest", "-m", "gpu", *session.posargs, env=_env(session))
    session.run("python", str(ROOT / "tools" / "gpu_check.py"))


@nox.session(python=PYTHON)
def docs(session: nox.Session) -> None:
    """The API reference site: mkdocs + mkdocstrings in strict mode (a warning fails) -> site/.

    Nothing is installed but the docs tools: mkdocstrings reads the sources statically (griffe),
    and docs/hooks.py builds the package pages from the READMEs and paper_results/.
    """
    session.install("-c", str(ROOT / "constraints.txt"), *DOCS_DEPS)
    session.run("mkdocs", "build", "--strict", "--site-dir", "site", *session.posargs)


def _make_package_sessions(pkg: str) -> None:
    module = _module(pkg)

    @nox.session(name=f"tests-{pkg}", python=PYTHON)
    def tests_pkg(session: nox.Session) -> None:
        _install(session, CORE, _pkg_target(pkg), extra=("pytest",))
        session.run("pytest", f"packages/{pkg}/tests", *session.posargs, env=_env(session))

    @nox.session(name=f"reproduce-{pkg}", python=PYTHON)
    def reproduce_pkg(session: nox.Session) -> None:
        _install(session, CORE, _pkg_target(pkg))
        args = session.posargs or ["--profile", "small"]
        session.run("dnnrepro", pkg, "reproduce", *args, env=_env(session))

    @nox.session(name=f"install-alone-{pkg}", python=PYTHON, reuse_venv=False)
    def install_alone(session: nox.Session) -> None:
        # Non-editable installs from the folders, into a fresh venv, run from a temp dir so
        # nothing is imported from the source tree.
        _install(session, CORE, _pkg_target(pkg), editable=False)
        tmp = session.create_tmp()
        session.chdir(tmp)
        session.run("python", "-c", f"import {module}; print({module}.__name__, 'imports')")
        env = _env(session)
        session.run("dnnrepro", "list", env=env)
        session.run(
            "dnnrepro",
            pkg,
            "reproduce",
            "--profile",
            "smoke",
            "--out",
            "results",
            "--work-dir",
            "runs",
            env=env,
        )

    bench = ROOT / "packages" / pkg / "src" / module.replace(".", "/") / "bench.py"
    # core 0.2: benchmarks are registered on Paper and run by `dnnrepro <pkg> bench`; a package
    # not yet ported still has its own `python -m dnnrepro.<mod>.bench` entry point.
    legacy = bench.exists() and "__main__" in bench.read_text()

    @nox.session(name=f"bench-{pkg}", python=PYTHON)
    def bench_pkg(session: nox.Session) -> None:
        _install(session, CORE, _pkg_target(pkg))
        command = ("python", "-m", f"{module}.bench") if legacy else ("dnnrepro", pkg, "bench")
        session.run(*command, "--out", f"paper_results/{pkg}", *session.posargs, env=_env(session))


for _pkg in PACKAGES:
    _make_package_sessions(_pkg)


if "terngrad" in PACKAGES:

    @nox.session(name="bench-terngrad-net", python=PYTHON)
    def bench_terngrad_net(session: nox.Session) -> None:
        """TernGrad on a slow network of namespaces (needs root, ip and tc; issue 4)."""
        _install(session, CORE, _pkg_target("terngrad"))
        session.run(
            "dnnrepro",
            "terngrad",
            "netbench",
            "--out",
            "paper_results/terngrad",
            *session.posargs,
            env=_env(session),
        )
