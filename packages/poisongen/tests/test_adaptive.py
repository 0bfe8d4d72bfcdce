"""The adaptive attacker (issue 22 item 3): poisons projected under the detector's threshold."""

import pytest
import torch

from dnnrepro.core.errors import ConfigError
from dnnrepro.core.train import TrainConfig
from dnnrepro.poisongen import DirectGradientAttack, GenerativeAttack, LossDetector

PRETRAIN = TrainConfig(epochs=1, batch_size=8, lr=1e-2, optimizer="adam")


@pytest.fixture
def trained(tiny):
    """The tiny MLP fitted to its 40 images, so clean losses are low and flipped labels high."""
    model, (x, y) = tiny
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    for _ in range(300):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    model.eval()
    return model, (x, y)


def _detector(model, data, q=0.9):
    return LossDetector(model, data, quantile=q)


def test_direct_poisons_stay_under_the_threshold_only_with_evasion(trained):
    model, data = trained
    det = _detector(model, data)
    x, y = data[0][:6], data[1][:6]
    plain = DirectGradientAttack(model, data, rounds=2, num_normal=5)
    x_p, y_p = plain.poison(x, y)
    assert bool((det.losses(x_p, y_p) > det.threshold).any())  # the plain attack is caught
    adaptive = DirectGradientAttack(model, data, rounds=2, num_normal=5).set_evasion(
        det, margin=0.9, steps=200, step_size=0.02
    )
    x_a, y_a = adaptive.poison(x, y)
    assert torch.equal(y_a, y_p)
    losses = det.losses(x_a, y_a)
    caught = int((losses > 0.9 * det.threshold).sum())
    assert caught == adaptive.evasion_stats["still_above"]
    report, _ = det.detect(x_a, y_a)
    assert report["n_flagged"] <= adaptive.evasion_stats["still_above"] < len(x)
    assert adaptive.evasion_stats["projected"] > 0
    assert float(x_a.min()) >= 0 and float(x_a.max()) <= 1


def test_generative_poisons_are_projected_and_evasion_can_be_switched_off(trained):
    model, data = trained
    det = _detector(model, data)
    attack = GenerativeAttack(model, data, rounds=2, pretrain=PRETRAIN).fit()
    x, y = data[0][:8], data[1][:8]
    plain = attack.poison(x, y)
    attack.set_evasion(det, steps=200, step_size=0.02)
    evading = attack.poison(x, y)
    still = attack.evasion_stats["still_above"]
    assert int((det.losses(*evading) > 0.9 * det.threshold).sum()) == still < len(x)
    attack.set_evasion(None)
    torch.testing.assert_close(attack.poison(x, y)[0], plain[0])


def test_evasion_settings_are_checked(trained):
    model, data = trained
    attack = DirectGradientAttack(model, data, num_normal=5)
    with pytest.raises(ConfigError, match="threshold"):
        attack.set_evasion(-1.0)
    with pytest.raises(ConfigError, match="margin"):
        attack.set_evasion(1.0, margin=1.5)
