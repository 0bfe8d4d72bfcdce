"""The removable post-accumulate-grad hook: equals the emulator with one worker, and removes."""

import pytest
import torch
import torch.nn.functional as F

from dnnrepro.core.errors import ConfigError
from dnnrepro.terngrad import EmulatorConfig, emulate, ternarize_gradients
from dnnrepro.terngrad.workers import check_batch, check_model


@pytest.mark.parametrize("clip_c", [2.5, None])
def test_hooked_gradients_equal_the_one_worker_emulator(clip_c):
    model, ref = check_model(0), check_model(0)
    handle = ternarize_gradients(model, clip_c=clip_c, seed=7)
    for step in range(3):
        x, y = check_batch(0, 0, step)
        model.zero_grad()
        ref.zero_grad()
        F.cross_entropy(model(x), y).backward()
        F.cross_entropy(ref(x), y).backward()
        plain = {n: p.grad for n, p in ref.named_parameters()}
        expected = emulate([plain], EmulatorConfig(clip_c=clip_c, seed=7), step=step)
        for n, p in model.named_parameters():
            assert torch.equal(p.grad, expected[n]), n
            s = p.grad.abs().max()
            if s > 0:
                assert set(torch.unique(p.grad / s).tolist()) <= {-1.0, 0.0, 1.0}
    assert handle.step == {n: 3 for n, _ in model.named_parameters()}
    assert 0 < handle.zeros["fc1.weight"] < handle.elements["fc1.weight"]
    handle.remove()
    model.zero_grad()
    ref.zero_grad()
    x, y = check_batch(0, 0, 9)
    F.cross_entropy(model(x), y).backward()
    F.cross_entropy(ref(x), y).backward()
    pairs = zip(model.parameters(), ref.parameters(), strict=True)
    assert all(torch.equal(a.grad, b.grad) for a, b in pairs)


def test_exclusions_and_bad_input():
    model = check_model(0)
    handle = ternarize_gradients(model, exclude=("fc2.weight",), min_numel=13)
    x, y = check_batch(0, 0, 0)
    F.cross_entropy(model(x), y).backward()
    assert set(handle.step) == {"fc1.weight"}  # fc1.bias (12) and fc2.bias (4) are too small
    with pytest.raises(ConfigError, match="not parameters"):
        ternarize_gradients(model, exclude=("nope",))
    with pytest.raises(ConfigError, match="clip_c"):
        ternarize_gradients(model, clip_c=0)
