"""register() and the hook's bad-input errors, in one process (a gloo group of one)."""

import pytest
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from dnnrepro.core.errors import ConfigError
from dnnrepro.terngrad import TernGradState, register, terngrad_hook
from dnnrepro.terngrad.hook import check_device
from dnnrepro.terngrad.workers import check_batch, check_model


@pytest.fixture
def cpu_group():
    """A CPU-only gloo group of one process (torch's "cpu:gloo" backend)."""
    dist.init_process_group("cpu:gloo", store=dist.HashStore(), rank=0, world_size=1)
    try:
        yield dist.group.WORLD
    finally:
        dist.destroy_process_group()


def _step(ddp, dtype=torch.float32):
    x, y = check_batch(0, 0, 0)
    F.cross_entropy(ddp(x.to(dtype)), y).backward()


def test_register_returns_the_state_and_trains(cpu_group):
    model = check_model(0)
    ddp = nn.parallel.DistributedDataParallel(model)
    state = register(ddp, wire="fields", min_numel=13, seed=3)
    assert isinstance(state, TernGradState)
    assert (state.wire, state.min_numel, state.seed, state.model) == ("fields", 13, 3, model)
    assert state.process_group is cpu_group  # one process: no dedicated group needed
    for _ in range(2):
        _step(ddp)
    assert state.step == 2 and state.step_ok()
    # one worker: the mean is the worker's own ternary gradient, 3 levels per ternarized layer
    assert model.fc1.weight.grad.unique().numel() <= 3


def test_register_refuses_what_it_cannot_carry(cpu_group):
    with pytest.raises(ConfigError, match="must be a torch.nn.parallel.DistributedDataParallel"):
        register(check_model(0))
    ddp = nn.parallel.DistributedDataParallel(check_model(0).double())
    with pytest.raises(ConfigError, match=r"torch.float64 gradients \(parameters fc1.weight"):
        register(ddp)
    ddp = nn.parallel.DistributedDataParallel(check_model(0))
    with pytest.raises(ConfigError, match="exclude names"):
        register(ddp, exclude=("fc9.weight",))
    with pytest.raises(ConfigError, match="set wire= to one of"):
        register(ddp, wire="ring")


def test_the_hook_names_the_parameters_of_an_unsupported_bucket_dtype(cpu_group):
    model = check_model(0).double()
    ddp = nn.parallel.DistributedDataParallel(model)
    ddp.register_comm_hook(TernGradState(model=model), terngrad_hook)  # by hand: no early check
    with pytest.raises(Exception, match=r"float64 gradients \(parameters .*fc\d\.(weight|bias)"):
        _step(ddp, torch.float64)


def test_cuda_tensors_with_a_cpu_only_group_are_a_clear_error(cpu_group):
    check_device(torch.device("cpu"), cpu_group)  # fine
    with pytest.raises(ConfigError, match=r"is on cuda but the process group .* carries only cpu"):
        check_device(torch.device("cuda"), cpu_group)
