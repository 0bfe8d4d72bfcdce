"""The README's torchrun script runs as written: 2 gloo processes on CPU under torchrun."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
MARK = "# train_terngrad.py: torchrun"


def torchrun_script() -> str:
    blocks = re.findall(r"^```python[ \t]*\n(.*?)^```[ \t]*$", README.read_text(), re.M | re.S)
    found = [b for b in blocks if b.startswith(MARK)]
    assert len(found) == 1, f"the README needs exactly one python block starting with {MARK!r}"
    return found[0]


@pytest.mark.slow
def test_readme_torchrun_script_runs_with_two_gloo_processes(tmp_path):
    script = tmp_path / "train_terngrad.py"
    script.write_text(torchrun_script())
    cwd = tmp_path / "run"
    cwd.mkdir()
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONHASHSEED": "0"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    proc = subprocess.run(
        [*cmd, str(script)], cwd=cwd, env=env, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    match = re.search(r"^2 ranks, wire (\S+): accuracy ([\d.]+), bytes (.*)$", proc.stdout, re.M)
    assert match, proc.stdout
    assert match.group(1) == "allgather"  # "auto" at N = 2
    assert float(match.group(2)) >= 0.8  # the toy task is learnt (chance is 0.5)
    assert "trits_all_gather" in match.group(3)
    assert not list(cwd.iterdir())  # writes nothing into the working directory
