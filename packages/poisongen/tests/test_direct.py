import pytest
import torch

from dnnrepro.core.errors import ConfigError, DataError
from dnnrepro.poisongen import DirectGradientAttack, TanhLeNet


def test_exact_hypergradient_matches_central_differences(tiny64):
    model, data = tiny64
    attack = DirectGradientAttack(model, data, mode="exact", num_normal=5)
    x, y = data[0][3], torch.tensor(7)
    g = attack.hypergradient(x, y)
    h = 1e-6
    fd = torch.empty(x.numel(), dtype=torch.float64)
    for k in range(x.numel()):
        e = torch.zeros(x.numel(), dtype=torch.float64)
        e[k] = h
        e = e.view_as(x)
        fd[k] = (attack.loss_after_step(x + e, y) - attack.loss_after_step(x - e, y)) / (2 * h)
    torch.testing.assert_close(g.flatten(), fd, rtol=1e-5, atol=1e-8)
    assert g.abs().max() > 0


def test_faithful_takes_sign_steps_inside_the_clip_range(tiny):
    model, data = tiny
    attack = DirectGradientAttack(model, data, rounds=1, step=0.2, num_normal=5)
    x, y = data[0][:3], data[1][:3]
    x_p, y_p = attack.poison(x, y)
    moved = (x_p - x).abs()
    at_bound = (x_p == 0) | (x_p == 1)
    # every coordinate moved by exactly the step, or not at all, or was stopped by the clip
    ok = torch.isclose(moved, torch.tensor(0.2)) | (moved == 0) | at_bound
    assert bool(ok.all())
    assert float(x_p.min()) >= 0 and float(x_p.max()) <= 1
    assert bool((moved > 0).any())
    assert torch.equal(y_p, (y + 1) % 10)


def test_faithful_costs_one_retraining_step_per_coordinate(tiny):
    model, data = tiny
    rounds, d = 2, 16
    attack = DirectGradientAttack(model, data, rounds=rounds, num_normal=5)
    attack.poison(data[0][:1], data[1][:1])
    # D finite-difference steps per round, one step per round to update L_prev, one initial step
    assert attack.stats["retrain_steps"] == 1 + rounds * (d + 1)
    assert attack.stats["rounds"] == rounds


@pytest.mark.parametrize("engine", ["vectorized", "linear-chain"])
def test_fast_engines_equal_the_coordinate_loop(tiny64, engine):
    model, data = tiny64
    x, y = data[0][:2], data[1][:2]
    loop = DirectGradientAttack(model, data, rounds=2, num_normal=5, engine="loop")
    fast = DirectGradientAttack(model, data, rounds=2, num_normal=5, engine=engine, chunk=5)
    probes = x[0].flatten().repeat(16, 1)
    probes.diagonal().add_(0.01)
    losses = fast._batched_losses(probes.view(16, 1, 4, 4), torch.tensor(3))
    expected = [loop.loss_after_step(p.view(1, 4, 4), torch.tensor(3)) for p in probes]
    torch.testing.assert_close(losses, torch.tensor(expected, dtype=torch.float64))
    torch.testing.assert_close(fast.poison(x, y)[0], loop.poison(x, y)[0])


def test_engine_choice(tiny):
    model, data = tiny
    assert DirectGradientAttack(model, data).engine == "linear-chain"  # auto, an MLP
    lenet = TanhLeNet(1, 4, 10)
    assert DirectGradientAttack(lenet, data).engine == "vectorized"
    with pytest.raises(ConfigError, match="linear-chain"):
        DirectGradientAttack(lenet, data, engine="linear-chain")
    with pytest.raises(ConfigError, match="engine"):
        DirectGradientAttack(model, data, engine="gpu")


def test_caller_model_and_data_are_untouched(tiny):
    model, data = tiny
    before = {k: v.clone() for k, v in model.state_dict().items()}
    x0, y0 = data[0].clone(), data[1].clone()
    for mode in ("faithful", "exact"):
        attack = DirectGradientAttack(model, data, mode=mode, rounds=1)
        pretrained = {k: v.clone() for k, v in attack.params.items()}
        attack.poison(data[0][:2], data[1][:2])
        # every pseudo-update starts from bit-identical pretrained weights
        assert all(torch.equal(attack.params[k], v) for k, v in pretrained.items())
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k])
    assert torch.equal(data[0], x0) and torch.equal(data[1], y0)
    assert all(p.requires_grad for p in model.parameters())


def test_bad_inputs_give_clear_errors(tiny):
    model, (x, y) = tiny
    attack = DirectGradientAttack(model, (x, y))
    with pytest.raises(DataError, match="shape"):
        attack.poison(torch.rand(2, 1, 5, 5), y[:2])
    with pytest.raises(DataError, match="pixel values"):
        attack.poison(x[:2] * 3, y[:2])
    with pytest.raises(DataError, match="class indices"):
        attack.poison(x[:2], torch.tensor([0, 12]))
    with pytest.raises(ConfigError, match="mode"):
        DirectGradientAttack(model, (x, y), mode="approximate")
    with pytest.raises(ConfigError, match="num_normal"):
        DirectGradientAttack(model, (x, y), num_normal=0)
    with pytest.raises(DataError):
        DirectGradientAttack(model, (x, y[:3]))
