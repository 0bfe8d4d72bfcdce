"""Move pinned results to the per-profile layout and re-decide them under the current rules.

    python tools/migrate_results.py [--root paper_results] [--package NAME ...]

Nothing is re-run. For each ``<root>/<pkg>/results.json`` of the old layout (claims rows with
per-seed ``values``), the package's current claim declarations (entry-point group
``dnnrepro.papers``) re-decide every claim from the stored values (intervals, kinds; timing claims
have no timing-protocol record, so they become inconclusive), and the tool writes
``<root>/<pkg>/<profile>/`` (results.json, README.md, the figures moved there), the package
overview and the index. ``bench.json`` stays at ``<root>/<pkg>/``. Running it again re-decides
from ``<root>/<pkg>/<profile>/results.json`` (after a claim declaration changed).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PINNED_BEFORE = "no timing-protocol record (pinned before the protocol)"
# files a package reads from its results folder (ctx.out_dir): they move with the profile
READ_FROM_OUT_DIR = {"terngrad": ("net.json", "net.png")}
STAY = ("bench.json", "results.json", "README.md", "history.json")


def _papers() -> dict:
    from importlib.metadata import entry_points

    return {ep.name: ep.load() for ep in entry_points(group="dnnrepro.papers")}


def _value(v) -> float:
    return float(v)  # JSON stores non-finite numbers as "nan"/"inf" strings; float() reads both


def migrate_package(pkg_dir: Path, paper) -> Path:
    """Re-decide one package's pinned results; returns the written results.json."""
    from dnnrepro.core import results
    from dnnrepro.core.io import write_json, write_text

    old = pkg_dir / "results.json"
    if old.exists():
        doc = json.loads(old.read_text())
        profile = doc["provenance"]["profile"]
    else:
        found = results.profile_docs(pkg_dir)
        if not found:
            raise SystemExit(f"{pkg_dir}: no results.json to migrate")
        profile, doc = next(iter(found.items()))
    out_dir = pkg_dir / profile
    declared = {c.id for c in paper.claims}
    rows = doc["claims"]
    stale = sorted({r["id"] for r in rows if r.get("values")} - declared)
    if stale:
        raise SystemExit(f"{pkg_dir.name}: pinned values for claims no longer declared: {stale}")
    measurements = {r["id"]: [_value(v) for v in r["values"]] for r in rows if r.get("values")}
    notes = {r["id"]: r["note"] for r in rows if r.get("note")}
    new = results.build_results(
        paper.name,
        paper.title,
        paper.claims,
        measurements,
        notes,
        profile,
        doc["provenance"],
        doc["figures"],
        doc["details"],
        timings={r["id"]: r["timing_record"] for r in rows if r.get("timing_record")},
        tuning=doc.get("tuning", []),
        inputs=doc.get("inputs", {}),
        missing_timing_reason=PINNED_BEFORE,
    )
    new["migrated_from"] = (
        "schema 1 (verdict on the mean over seeds)" if old.exists() else doc.get("migrated_from")
    )
    out_dir.mkdir(exist_ok=True)
    movable = set(READ_FROM_OUT_DIR.get(paper.name, ()))
    for fig in doc["figures"]:
        stem = Path(fig).stem
        movable |= {f"{stem}.png", f"{stem}.json", fig}
    for name in sorted(movable):
        src = pkg_dir / name
        if src.exists() and name not in STAY:
            shutil.move(str(src), str(out_dir / name))
    if old.exists():
        # re-deciding is not a new run: the pinned run's document is replaced, not appended to history
        old.unlink()
    write_json(out_dir / "results.json", new)
    write_text(out_dir / "README.md", results.render_package_readme(new))
    write_text(pkg_dir / "README.md", results.render_overview(pkg_dir))
    return out_dir / "results.json"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", default=str(ROOT / "paper_results"))
    parser.add_argument("--package", action="append", help="only these packages")
    args = parser.parse_args(argv)
    from dnnrepro.core import results

    root = Path(args.root)
    papers = _papers()
    for pkg_dir in sorted(p for p in root.iterdir() if p.is_dir() and p.name in papers):
        if args.package and pkg_dir.name not in args.package:
            continue
        path = migrate_package(pkg_dir, papers[pkg_dir.name])
        s = results.summarize(json.loads(path.read_text()))
        print(
            f"{pkg_dir.name}/{s['profile']}: paper {s['reproduced']} reproduced, "
            f"{s['not_reproduced']} not reproduced, {s['inconclusive']} inconclusive of "
            f"{s['paper_tested']} tested ({s['paper_declared']} declared); checks passed "
            f"{s['checks_passed']} of {s['checks_tested']}"
        )
    from dnnrepro.core.io import write_text

    write_text(root / "README.md", results.render_index(root))
    return 0


if __name__ == "__main__":
    sys.exit(main())
