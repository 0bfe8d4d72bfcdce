"""The .cu compiles, GPU tests (skipped without CUDA), claims data, smoke reproduce, CLI."""

import json

import pytest
import torch
import torch.nn.functional as F

from dnnrepro.core.cli import main
from dnnrepro.core.testing import check_kernels_compile
from dnnrepro.holistic_sparsecnn import direct_sparse_conv2d, to_csr
from dnnrepro.holistic_sparsecnn.claims import CLAIMS
from dnnrepro.holistic_sparsecnn.paper import PAPER


def test_cuda_kernels_compile():
    assert check_kernels_compile("dnnrepro.holistic_sparsecnn") == ["sconv.cu"]


@pytest.mark.gpu
@pytest.mark.parametrize("stride, pad, dil", [(1, 1, 1), (2, 0, 1), (1, 2, 2)])
def test_gpu_kernel_matches_conv2d(stride, pad, dil):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(4, 16, 13, 13, generator=g)
    w = torch.randn(24, 16, 3, 3, generator=g) * (torch.rand(24, 16, 3, 3, generator=g) < 0.2)
    b = torch.randn(24, generator=g)
    ref = F.conv2d(x.cuda(), w.cuda(), b.cuda(), stride, pad, dil)
    out = direct_sparse_conv2d(x.cuda(), to_csr(w, x.shape, pad, dil), b.cuda(), stride, pad, dil)
    torch.testing.assert_close(out, ref, rtol=1e-4, atol=1e-4)


@pytest.mark.gpu
def test_gpu_cases_reference_agrees():
    from dnnrepro.holistic_sparsecnn.gpu_cases import CASES

    case = CASES[0]
    inp = case.make_inputs(case.sizes[0], torch.device("cuda"), torch.Generator().manual_seed(0))
    out = case.alloc_out(inp)
    case.run_kernel(inp, out)
    ref = case.reference(inp)["out"]
    assert float((out["out"] - ref).abs().max() / ref.abs().max()) < case.tolerance


def test_claims_are_declared_with_rules():
    ids = [c.id for c in CLAIMS]
    assert len(ids) == len(set(ids)) >= 8
    assert PAPER.name == "holistic-sparsecnn"


@pytest.mark.slow
def test_smoke_reproduce_writes_results(tmp_path):
    code = main(
        [
            "holistic-sparsecnn",
            "reproduce",
            "--profile",
            "smoke",
            "--out",
            str(tmp_path),
            "--work-dir",
            str(tmp_path / "runs"),
            "--threads",
            "1",
        ]
    )
    assert code == 0
    out = tmp_path / "_smoke" / "holistic-sparsecnn" / "smoke"
    doc = json.loads((out / "results.json").read_text())
    assert {r["id"] for r in doc["claims"]} == {c.id for c in CLAIMS}
    assert (out / "speedup_vs_density.png").exists()


def test_cli_bad_input_is_one_line_exit_2(capsys, tmp_path):
    empty = tmp_path / "data"
    empty.mkdir()
    args = ["--out", str(tmp_path), "--work-dir", str(tmp_path / "runs"), "--data-dir", str(empty)]
    # the paper profile needs full MNIST: without it, one line at once (before any timing)
    assert main(["holistic-sparsecnn", "reproduce", "--profile", "paper", *args]) == 2
    err = capsys.readouterr().err
    assert "t10k-images-idx3-ubyte" in err and "machine:" not in err
    assert main(["holistic-sparsecnn", "prune", "--dataset", "digits"]) == 2
