"""Print every package's claims (paper vs ours, verdict) from paper_results/*/results.json.

Run at the end of `nox -s reproduce`; `--profile smoke` reads paper_results/_smoke/.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--profile", default="small")
    parser.add_argument("--out", default=str(ROOT / "paper_results"))
    args, _ = parser.parse_known_args(argv)
    root = Path(args.out) / ("_smoke" if args.profile == "smoke" else "")
    docs = [json.loads(p.read_text()) for p in sorted(root.glob("*/results.json"))]
    if not docs:
        print(f"no results under {root}", file=sys.stderr)
        return 1
    sys.path.insert(0, str(ROOT / "shared" / "src"))
    from dnnrepro.core.results import NOT_RUN, REPRODUCED, claims_table

    total = tested = ok = 0
    for doc in docs:
        print()
        print(claims_table(doc))
        for row in doc["claims"]:
            total += 1
            if row["verdict"] != NOT_RUN:
                tested += 1
                ok += row["verdict"] == REPRODUCED
    print(f"\n{ok} of {tested} tested claims reproduced ({total} declared) in {len(docs)} packages")
    return 0


if __name__ == "__main__":
    sys.exit(main())
