import pytest
import torch

from dnnrepro.core.testing import check_kernels_compile
from dnnrepro.truenorth_learn import build, simulate_counts


def test_kernels_compile():
    assert check_kernels_compile("dnnrepro.truenorth_learn") == ["deploy.cu"]


def test_gpu_cases_are_declared():
    from dnnrepro.truenorth_learn.gpu_cases import CASES

    assert {c.name for c in CASES} == {"tn_spike_layer", "tn_sample_synapses", "tn_sample_inputs"}
    assert all(c.tolerance == 0.0 for c in CASES)


def test_gpu_case_references_run_on_cpu():
    """The references the GPU check compares against are the torch simulator's own pieces."""
    from dnnrepro.truenorth_learn.gpu_cases import CASES

    gen = torch.Generator().manual_seed(0)
    for case in CASES:
        inputs = case.make_inputs(case.sizes[0], torch.device("cpu"), gen)
        ref = case.reference(inputs)
        assert set(ref) == set(case.alloc_out(inputs))


@pytest.mark.gpu
@pytest.mark.parametrize("inputs", ["independent", "shared"])
@pytest.mark.parametrize("arch,shape", [("digits-2core", (1, 8, 8)), ("mnist-5core", (1, 28, 28))])
def test_cuda_simulator_equals_torch_simulator(arch, shape, inputs):
    model = build(arch)
    model.reset_parameters(0)
    x = torch.rand(37, *shape, generator=torch.Generator().manual_seed(1))
    ref = simulate_counts(model, x, 5, 3, seed=11, backend="torch", inputs=inputs)
    got = simulate_counts(model.cuda(), x.cuda(), 5, 3, 11, "cuda", inputs=inputs).cpu()
    assert torch.equal(ref, got)


@pytest.mark.gpu
def test_gpu_cases_match_reference():
    from dnnrepro.truenorth_learn.gpu_cases import CASES

    gen = torch.Generator().manual_seed(0)
    for case in CASES:
        inputs = case.make_inputs(case.sizes[0], torch.device("cuda"), gen)
        out = case.alloc_out(inputs)
        case.run_kernel(inputs, out)
        ref = case.reference(inputs)
        for key in ref:
            assert torch.equal(out[key].cpu(), ref[key].cpu()), (case.name, key)


def test_no_import_cycle_between_simulators():
    """cuda_sim.py and simulate.py share deployed.py; the CUDA module never imports simulate."""
    import ast
    from pathlib import Path

    import dnnrepro.truenorth_learn as pkg

    tree = ast.parse((Path(pkg.__file__).parent / "cuda_sim.py").read_text())
    imported = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    assert "simulate" not in imported and "deployed" in imported
