import pytest
import torch


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)
    yield


def toy_domains(n: int = 48, size: int = 8, seed: int = 0, shift: float = 0.3):
    """Two small labelled image sets (1xSxS, 10 classes) with a brightness shift between them."""
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % 10
    base = torch.rand(n, 1, size, size, generator=g) * 0.3
    base[:, 0, 0, :] += y[:, None].float() / 10  # a class-dependent row: learnable
    xs = base.clamp(0, 1)
    xt = (base + shift).clamp(0, 1)
    return (xs, y), (xt, y.clone())
