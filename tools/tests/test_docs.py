"""The API reference site builds in strict mode: any mkdocs, mkdocstrings or griffe warning fails.

`nox -s tests` installs the docs tools (constraints.txt pins them), so this runs in CI. Where
mkdocs is absent (a bare dev venv) the tests skip, saying so; `nox -s docs` builds the same site.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip(
    "mkdocs", reason="mkdocs is not installed here; `nox -s tests` and `nox -s docs` install it"
)
if importlib.util.find_spec("mkdocstrings_handlers") is None:
    pytest.skip("mkdocstrings[python] is not installed here", allow_module_level=True)

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = sorted(p.parent.name for p in (ROOT / "packages").glob("*/pyproject.toml"))


def _hooks():
    spec = importlib.util.spec_from_file_location("docs_hooks", ROOT / "docs" / "hooks.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_links_to_repository_files_are_rewritten_to_pages_or_text():
    hooks = _hooks()
    assets: dict = {}
    page = hooks._Page("packages/ssl.md", assets)
    readme = ROOT / "packages" / "ssl" / "README.md"
    link = hooks._LINK.search
    # a link resolved from packages/ssl/README.md
    as_page = page._link(link("[r](../../paper_results/ssl/README.md)"), readme)
    assert as_page == "[r](ssl.md#pinned-results)"
    assert page._link(link("[core](../../shared)"), readme) == "[core](../core.md)"
    assert page._link(link("[x](https://example.org/a)"), readme) == "[x](https://example.org/a)"
    # a repository file the site does not render becomes text naming it
    assert (
        page._link(link("[cfg](pyproject.toml)"), readme) == "cfg (`packages/ssl/pyproject.toml`)"
    )
    assert not assets


@pytest.mark.slow
def test_docs_build_strict(tmp_path):
    site = tmp_path / "site"
    proc = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-4000:]
    assert "WARNING" not in log, log[-4000:]
    for pkg in PACKAGES:
        html = (site / "packages" / pkg / "index.html").read_text()
        module = "dnnrepro." + pkg.replace("-", "_")
        assert f'id="{module}.' in html, f"{pkg}: the page has no API reference entries"
        assert "Pinned results" in html, pkg
    assert (site / "ARCHITECTURE" / "index.html").exists()
    assert 'id="dnnrepro.core.train.fit"' in (site / "core" / "index.html").read_text()
