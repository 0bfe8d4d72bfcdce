"""Check that data/ matches data.dvc (run by `nox -s data`, with dvc installed in the session).

Exit 0 and say so when they match; exit 1 naming what differs otherwise. Needs no DVC remote:
`dvc status data.dvc` hashes the workspace and compares with the pinned md5.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main() -> int:
    dvc = shutil.which("dvc")
    if dvc is None:
        print("dvc_check: dvc is not installed (nox -s data installs it)", file=sys.stderr)
        return 2
    proc = subprocess.run(
        [dvc, "status", "--json", "data.dvc"], cwd=ROOT, capture_output=True, text=True, timeout=600
    )
    if proc.returncode != 0:
        print(f"dvc_check: dvc status failed: {proc.stderr.strip()}", file=sys.stderr)
        return 1
    status = json.loads(proc.stdout or "{}")
    if status:
        print(f"dvc_check: data/ differs from data.dvc: {json.dumps(status)}", file=sys.stderr)
        print(
            "dvc_check: rebuild with `nox -s data` (data/baselines/lenet-mnist needs the MNIST "
            "files: `DNNREPRO_DATA=data dnnrepro data baselines --data-dir ../shared/data`); if "
            "the change is intended, run `dvc add data` and commit data.dvc",
            file=sys.stderr,
        )
        return 1
    pinned = (ROOT / "data.dvc").read_text().split("md5: ")[1].split()[0]
    print(f"data/ matches data.dvc (md5 {pinned})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
