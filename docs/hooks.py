"""mkdocs hooks: the site's pages that are made from files outside docs/.

Nothing here is copied by hand, so the site cannot drift from the repository:

- `index.md` is the root README, `contributing.md` is CONTRIBUTING.md, `core.md` is the core's
  README followed by the API reference of every core module;
- `packages/<pkg>.md` is the package README, then its pinned results
  (paper_results/<pkg>/README.md, the overview with one claims table per profile), then the API
  reference of its public names (`dnnrepro.<mod>.__all__`, read by mkdocstrings statically);
- `results/index.md` is paper_results/README.md and `results/<pkg>/<profile>.md` each profile's
  full table (paper_results/<pkg>/<profile>/README.md);
- figures those pages show are copied under `assets/`.

Links between these files are rewritten to point at their pages; a link to any other repository
file becomes plain text naming the path (the site has no copy of it), so strict mode never sees a
dangling link. The navigation is generated here too, from packages/*/pyproject.toml.
"""

from __future__ import annotations

import posixpath
import re
from pathlib import Path

from mkdocs.structure.files import File

ROOT = Path(__file__).resolve().parents[1]
ASSET_SUFFIXES = {".png", ".svg", ".jpg", ".jpeg", ".gif"}
_LINK = re.compile(r"(!?)\[([^\]]*)\]\(([^)\s]+)\)")
_FENCE = re.compile(r"^(```|~~~)")


def _packages() -> list[str]:
    return sorted(p.parent.name for p in (ROOT / "packages").glob("*/pyproject.toml"))


def _profiles(pkg: str) -> list[str]:
    folder = ROOT / "paper_results" / pkg
    return sorted(p.parent.name for p in folder.glob("*/README.md"))


def _page_of(rel: str) -> str | None:
    """The site page (with an optional #anchor) that renders a repository path, or None."""
    rel = rel.rstrip("/")
    if rel.endswith("/README.md"):
        rel = rel[: -len("/README.md")]
    fixed = {
        "README.md": "index.md",
        "": "index.md",
        "CONTRIBUTING.md": "contributing.md",
        "shared": "core.md",
        "docs/ARCHITECTURE.md": "ARCHITECTURE.md",
        "paper_results": "results/index.md",
    }
    if rel in fixed:
        return fixed[rel]
    parts = rel.split("/")
    if len(parts) == 2 and parts[0] == "packages" and parts[1] in _packages():
        return f"packages/{parts[1]}.md"
    if len(parts) >= 2 and parts[0] == "paper_results" and parts[1] in _packages():
        if len(parts) == 2:
            return f"packages/{parts[1]}.md#pinned-results"
        if len(parts) == 3 and parts[2] in _profiles(parts[1]):
            return f"results/{parts[1]}/{parts[2]}.md"
    return None


class _Page:
    """Markdown assembled from repository files, its links made relative to the page's uri."""

    def __init__(self, uri: str, assets: dict[str, Path]):
        self.uri = uri
        self.assets = assets  # site uri -> source file, shared by every page
        self.parts: list[str] = []

    def add(self, text: str) -> None:
        self.parts.append(text.rstrip() + "\n")

    def include(self, src: Path, shift: int = 0) -> None:
        """Append a repository markdown file, its headings moved `shift` levels down."""
        lines, in_fence = [], False
        for line in src.read_text().splitlines():
            if _FENCE.match(line):
                in_fence = not in_fence
            elif not in_fence:
                if shift and line.startswith("#"):
                    line = "#" * shift + line
                line = _LINK.sub(lambda m: self._link(m, src), line)
            lines.append(line)
        self.add("\n".join(lines))

    def _link(self, m: re.Match, src: Path) -> str:
        bang, text, target = m.groups()
        if re.match(r"^[a-z]+:", target) or target.startswith("#"):
            return m.group(0)  # external URL or an anchor on the same page
        path, _, anchor = target.partition("#")
        resolved = (src.parent / path).resolve()
        try:
            rel = resolved.relative_to(ROOT).as_posix()
        except ValueError:
            return text
        rel = "" if rel == "." else rel
        page = _page_of(rel)
        if page is None and resolved.suffix.lower() in ASSET_SUFFIXES and resolved.is_file():
            page = f"assets/{rel}"
            self.assets[page] = resolved
        if page is None:
            return f"{text} (`{rel}`)" if not bang else f"*[figure: `{rel}`]*"
        if anchor and "#" not in page:
            page += "#" + anchor
        return f"{bang}[{text}]({self._relative(page)})"

    def _relative(self, target: str) -> str:
        base = posixpath.dirname(self.uri) or "."
        page, _, anchor = target.partition("#")
        return posixpath.relpath(page, base) + (f"#{anchor}" if anchor else "")

    def text(self) -> str:
        return "\n".join(self.parts)


def _api(module: str, heading_level: int = 3) -> str:
    return (
        f"::: {module}\n"
        "    options:\n"
        "      show_root_heading: false\n"
        f"      heading_level: {heading_level}\n"
    )


def _core_modules() -> list[str]:
    folder = ROOT / "shared" / "src" / "dnnrepro" / "core"
    return sorted(p.stem for p in folder.glob("*.py") if not p.stem.startswith("_"))


def build_pages() -> tuple[dict[str, str], dict[str, Path]]:
    """uri -> markdown of every generated page, and uri -> source of every copied figure."""
    assets: dict[str, Path] = {}
    pages: dict[str, str] = {}

    def page(uri: str) -> _Page:
        return _Page(uri, assets)

    index = page("index.md")
    index.include(ROOT / "README.md")
    pages[index.uri] = index.text()

    contributing = page("contributing.md")
    contributing.include(ROOT / "CONTRIBUTING.md")
    pages[contributing.uri] = contributing.text()

    core = page("core.md")
    core.include(ROOT / "shared" / "README.md")
    core.add("## API reference")
    for name in _core_modules():
        core.add(f"### dnnrepro.core.{name}")
        core.add(_api(f"dnnrepro.core.{name}", heading_level=4))
    pages[core.uri] = core.text()

    results_index = ROOT / "paper_results" / "README.md"
    if results_index.exists():
        results = page("results/index.md")
        results.include(results_index)
        pages[results.uri] = results.text()

    for pkg in _packages():
        module = "dnnrepro." + pkg.replace("-", "_")
        p = page(f"packages/{pkg}.md")
        p.include(ROOT / "packages" / pkg / "README.md")
        overview = ROOT / "paper_results" / pkg / "README.md"
        p.add("## Pinned results")
        if overview.exists():
            p.include(overview, shift=2)
        else:
            p.add("No pinned results yet (`nox -s reproduce-" + pkg + "` writes them).")
        p.add(f"## API reference\n\nThe public names of `{module}` (its `__all__`).")
        p.add(_api(module))
        pages[p.uri] = p.text()
        for profile in _profiles(pkg):
            r = page(f"results/{pkg}/{profile}.md")
            r.include(ROOT / "paper_results" / pkg / profile / "README.md")
            pages[r.uri] = r.text()
    return pages, assets


_BUILT: tuple[dict[str, str], dict[str, Path]] | None = None


def _built():
    global _BUILT
    if _BUILT is None:
        _BUILT = build_pages()
    return _BUILT


def on_config(config):
    global _BUILT
    _BUILT = None  # `mkdocs serve` rebuilds: read the files again
    pages, _ = _built()
    packages = [{pkg: f"packages/{pkg}.md"} for pkg in _packages()]
    results = [{"Index": "results/index.md"}] if "results/index.md" in pages else []
    for pkg in _packages():
        for profile in _profiles(pkg):
            results.append({f"{pkg} ({profile})": f"results/{pkg}/{profile}.md"})
    config["nav"] = [
        {"Home": "index.md"},
        {"Architecture": "ARCHITECTURE.md"},
        {"Core": "core.md"},
        {"Packages": packages},
        {"Results": results},
        {"Contributing": "contributing.md"},
    ]
    return config


def on_files(files, config):
    pages, assets = _built()
    for uri, content in pages.items():
        files.append(File.generated(config, uri, content=content))
    for uri, source in assets.items():
        files.append(File.generated(config, uri, abs_src_path=str(source)))
    return files
