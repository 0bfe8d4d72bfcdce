"""Print every package's claims (paper vs ours, interval, verdict) from the pinned results.

    python tools/claims_table.py [--profile small] [--out paper_results]

Reads ``<out>/<pkg>/<profile>/results.json`` (smoke: ``<out>/_smoke/<pkg>/smoke/``). Run at the
end of `nox -s reproduce`. The totals count only claims of kind ``paper``; checks and
by-construction values are totalled separately.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--profile", default="small")
    parser.add_argument("--out", default=str(ROOT / "paper_results"))
    args, _ = parser.parse_known_args(argv)
    root = Path(args.out) / ("_smoke" if args.profile == "smoke" else "")
    docs = [json.loads(p.read_text()) for p in sorted(root.glob(f"*/{args.profile}/results.json"))]
    if not docs:
        print(f"no results under {root}/*/{args.profile}/", file=sys.stderr)
        return 1
    sys.path.insert(0, str(ROOT / "shared" / "src"))
    from dnnrepro.core.results import claims_table, summarize

    keys = ("reproduced", "not_reproduced", "inconclusive", "paper_tested", "paper_declared")
    keys += ("checks_passed", "checks_tested")
    total = dict.fromkeys(keys, 0)
    for doc in docs:
        print()
        print(claims_table(doc))
        s = summarize(doc)
        for k in keys:
            total[k] += s[k]
    print(
        f"\nPaper claims at profile {args.profile}: {total['reproduced']} reproduced, "
        f"{total['not_reproduced']} not reproduced, {total['inconclusive']} inconclusive of "
        f"{total['paper_tested']} tested ({total['paper_declared']} declared) in {len(docs)} "
        f"packages; checks passed {total['checks_passed']} of {total['checks_tested']}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
