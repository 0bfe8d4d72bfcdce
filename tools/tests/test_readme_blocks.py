"""Every ```python block of the root README and of each package README runs as written.

Each block is a complete script: it runs alone, in a fresh interpreter, from an empty temporary
directory, and must leave that directory empty (a library example writes nothing into the user's
working directory unless it says so). One test per README, so a failure names the package.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
READMES = [ROOT / "README.md"] + sorted(ROOT.glob("packages/*/README.md"))
# a fenced block opened by ```python (or ```py) on its own line, up to the closing fence
_BLOCK = re.compile(r"^```(?:python|py)[ \t]*\n(.*?)^```[ \t]*$", re.M | re.S)
TIMEOUT_S = 180
# READMEs whose examples are known not to run yet, with why. Strict xfail: once a README runs, its
# test XPASSes and fails, so the entry must be removed in the same change that fixes it.
KNOWN_BROKEN = {}


def python_blocks(text: str) -> list[tuple[int, str]]:
    """(line number of the opening fence, code) for each python block of a markdown text."""
    return [(text.count("\n", 0, m.start()) + 1, m.group(1)) for m in _BLOCK.finditer(text)]


def _id(path: Path) -> str:
    return "README" if path.parent == ROOT else path.parent.name


def _param(path: Path):
    reason = KNOWN_BROKEN.get(_id(path))
    marks = [pytest.mark.xfail(reason=reason, strict=True)] if reason else []
    return pytest.param(path, id=_id(path), marks=marks)


def test_known_broken_names_real_packages():
    assert set(KNOWN_BROKEN) <= {_id(p) for p in READMES}


def test_block_finder_reads_fences_and_line_numbers():
    text = "intro\n```python\nx = 1\n```\ntext\n```bash\nls\n```\n```py\ny = 2\n```\n"
    assert python_blocks(text) == [(2, "x = 1\n"), (9, "y = 2\n")]


@pytest.mark.slow
@pytest.mark.parametrize("readme", [_param(p) for p in READMES])
def test_readme_python_blocks_run_from_an_empty_directory(readme, tmp_path):
    blocks = python_blocks(readme.read_text())
    rel = readme.relative_to(ROOT)
    if readme.parent == ROOT and not blocks:
        pytest.skip("the root README has no python block")
    assert blocks, f"{rel}: no ```python block; the API section must be a runnable script"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MPLBACKEND": "Agg", "PYTHONHASHSEED": "0"}
    failures = []
    for n, (line, code) in enumerate(blocks):
        cwd = tmp_path / f"block{n}"
        cwd.mkdir()
        try:
            proc = subprocess.run(
                [sys.executable, "-c", code],
                cwd=cwd,
                env=env,
                capture_output=True,
                text=True,
                timeout=TIMEOUT_S,
            )
        except subprocess.TimeoutExpired:
            failures.append(f"{rel}:{line}: still running after {TIMEOUT_S} s")
            continue
        if proc.returncode != 0:
            tail = "\n".join(proc.stderr.strip().splitlines()[-6:])
            failures.append(f"{rel}:{line}: exit {proc.returncode}\n{tail}")
        left = sorted(p.name for p in cwd.iterdir())
        if left:
            failures.append(f"{rel}:{line}: left {left} in the working directory")
    assert not failures, "\n\n".join(failures)
