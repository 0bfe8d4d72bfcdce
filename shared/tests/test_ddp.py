import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from dnnrepro.core import data

HERE = Path(__file__).parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_fit_runs_unchanged_under_torchrun_with_gloo(data_dir, tmp_path):
    data.materialize(["digits"], data_dir)
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node=2",
        "--master_addr=127.0.0.1",
        f"--master_port={_free_port()}",
        str(HERE / "_ddp_worker.py"),
        str(data_dir),
        str(tmp_path / "ckpt"),
        str(tmp_path / "out"),
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    r0 = json.loads((tmp_path / "out.0.json").read_text())
    r1 = json.loads((tmp_path / "out.1.json").read_text())
    assert r0["weights"] == r1["weights"]  # replicas stay identical
    assert r0["hook_calls"] > 0  # the comm hook was registered
    # each rank sees half the data: ceil(716 / 16) = 45 steps per epoch
    assert r0["steps"] == 2 * 45
    assert r0["final"]["test_accuracy"] > 0.8
    assert (tmp_path / "ckpt" / "train.json").exists()  # rank 0 wrote the checkpoint
