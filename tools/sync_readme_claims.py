"""Copy each package's claims table from paper_results/<pkg>/README.md into packages/<pkg>/README.md.

    python tools/sync_readme_claims.py [--check]

The package README carries the same table as its pinned results (DESIGN: "the claims table
(copied from paper_results)"). `nox -s reproduce` runs this after writing results; `--check`
exits 1 naming every README whose table differs (a test runs it).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HEADER = "| id | claim | source | confidence | paper | ours"


def table(lines: list[str]) -> tuple[int, int] | None:
    """(start, end) line indices of the claims table (header through its last row)."""
    for i, line in enumerate(lines):
        if line.startswith(HEADER):
            j = i
            while j < len(lines) and lines[j].startswith("|"):
                j += 1
            return i, j
    return None


def sync(pkg: str, check: bool) -> bool:
    """True when the package README's table equals the results table (after writing, unless check)."""
    results = ROOT / "paper_results" / pkg / "README.md"
    readme = ROOT / "packages" / pkg / "README.md"
    if not results.exists() or not readme.exists():
        return True
    src = results.read_text().splitlines()
    dst = readme.read_text().splitlines()
    s, d = table(src), table(dst)
    if s is None or d is None:
        return d is None and s is None
    if src[s[0] : s[1]] == dst[d[0] : d[1]]:
        return True
    if not check:
        from dnnrepro.core.io import write_text

        write_text(readme, "\n".join(dst[: d[0]] + src[s[0] : s[1]] + dst[d[1] :]) + "\n")
    return False


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="report differences, change nothing")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(ROOT / "shared" / "src"))
    stale = [
        p.parent.name
        for p in sorted((ROOT / "packages").glob("*/pyproject.toml"))
        if not sync(p.parent.name, args.check)
    ]
    for pkg in stale:
        verb = "differs from" if args.check else "updated from"
        print(f"packages/{pkg}/README.md claims table {verb} paper_results/{pkg}/README.md")
    return 1 if (stale and args.check) else 0


if __name__ == "__main__":
    sys.exit(main())
