"""Tiny models and data shared by the tests (CPU, one thread, seconds)."""

import pytest
import torch

from dnnrepro.core.models import MLP


@pytest.fixture(autouse=True)
def one_thread():
    torch.set_num_threads(1)


@pytest.fixture
def tiny():
    """A 1x4x4 -> 6 -> 10 tanh MLP (smooth, so finite differences are clean) and 40 images."""
    torch.manual_seed(0)
    model = MLP(16, (6,), 10, "tanh")
    x = torch.rand(40, 1, 4, 4)
    y = torch.arange(40) % 10
    return model, (x, y)


@pytest.fixture
def tiny64(tiny):
    model, (x, y) = tiny
    return model.double(), (x.double(), y)
