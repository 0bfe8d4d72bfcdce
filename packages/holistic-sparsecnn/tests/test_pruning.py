"""GSL on a tiny net: conv1 stays dense, profitable layers are pruned, bounds are enforced."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from dnnrepro.core.errors import ConfigError
from dnnrepro.core.train import TrainConfig
from dnnrepro.holistic_sparsecnn import PruneConfig, adaptive_threshold, guided_prune, roofline
from dnnrepro.holistic_sparsecnn.pruning import (
    DENSE,
    DONE,
    RESTORED,
    Pruner,
    check_layers,
    plan_layers,
)

# F/B = 10 FLOP/byte: conv1 (1->4, 3x3 on 8x8, 3.6 FLOP/byte) can never gain; conv2 can.
MACHINE = roofline.Machine(flops=1e11, bandwidth=1e10, alpha=2.0)


class Tiny(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 4, 3, padding=1)
        self.conv2 = nn.Conv2d(4, 32, 5, padding=2)
        self.fc = nn.Linear(32 * 16, 3)

    def forward(self, x):
        x = F.relu(self.conv1(x))
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        return self.fc(x.flatten(1))


def _data(n=96, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 1, 8, 8, generator=g)
    y = (x[:, 0, :4].mean((1, 2)) * 3).long().clamp(max=2)
    return x, y


def test_plan_keeps_unprofitable_conv1_dense():
    plans = plan_layers(Tiny(), (1, 8, 8), MACHINE, PruneConfig())
    assert plans["conv1"].status == DENSE and plans["conv1"].max_speedup < 1
    assert plans["conv2"].status == "pruning" and plans["conv2"].max_speedup > 1
    assert plans["conv2"].x_lower == pytest.approx(0.5, abs=0.002)  # 1/alpha
    assert plans["fc"].strength == pytest.approx(PruneConfig().strength * PruneConfig().fc_factor)
    uniform = plan_layers(Tiny(), (1, 8, 8), MACHINE, PruneConfig(guided=False))
    assert all(p.status == "pruning" for p in uniform.values())


def test_guided_prune_leaves_conv1_dense_and_prunes_conv2(tmp_path):
    torch.manual_seed(0)
    model = Tiny()
    conv1_before = model.conv1.weight.detach().clone()
    res = guided_prune(
        model,
        _data(),
        test=_data(48, 1),
        input_shape=(1, 8, 8),
        machine=MACHINE,
        config=PruneConfig(strength=0.3, threshold=0.05, conv_factor=1.0),
        train=TrainConfig(epochs=1, batch_size=16, lr=0.05),
        periods=2,
        retrain=TrainConfig(epochs=1, batch_size=16, lr=0.01),
        checkpoint_dir=tmp_path,
    )
    layers = {p.name: p for p in res.layers}
    assert layers["conv1"].status == DENSE and layers["conv1"].density == 1.0
    assert not torch.equal(model.conv1.weight, conv1_before)  # trained (L2), never pruned
    assert (model.conv1.weight != 0).all()
    assert layers["conv2"].density < 0.6
    assert (tmp_path / "prune").is_dir() and "accuracy" in res.final


def test_stalled_layer_above_lower_bound_is_restored_to_its_dense_weights():
    torch.manual_seed(1)
    model = Tiny()
    original = model.conv2.weight.detach().clone()
    # alpha 20: conv2 only gains below x = 0.05; a weak L1 cannot get it there.
    machine = roofline.Machine(flops=1e11, bandwidth=1e11, alpha=20.0)
    res = guided_prune(
        model,
        _data(),
        input_shape=(1, 8, 8),
        machine=machine,
        config=PruneConfig(strength=1e-4),
        train=TrainConfig(epochs=1, batch_size=16, lr=0.05),
        periods=2,
    )
    assert {p.name: p for p in res.layers}["conv2"].status == RESTORED
    assert torch.equal(model.conv2.weight, original)


def test_layer_at_its_upper_bound_stops_and_keeps_its_zeros():
    model = Tiny()
    cfg = PruneConfig()
    plans = plan_layers(model, (1, 8, 8), MACHINE, cfg)
    pruner = Pruner(model, plans, cfg)
    with torch.no_grad():
        model.conv2.weight.view(-1)[: int(0.999 * model.conv2.weight.numel())] = 0
    check_layers(pruner, cfg, last=False)
    assert plans["conv2"].status == DONE
    # A gradient step would regrow zeros; the hooks keep them at zero.
    model.conv2.weight.grad = torch.ones_like(model.conv2.weight)
    pruner.after_backward(model, 0)
    assert (model.conv2.weight.grad[model.conv2.weight == 0] == 0).all()
    with torch.no_grad():
        model.conv2.weight += 1.0
    pruner.after_step(model, 0)
    assert (model.conv2.weight != 0).float().mean() < 0.01


def test_adaptive_threshold_properties():
    g = torch.tensor([0.0, 1e-6, 1e-4, 1e-2, 1.0])
    th = adaptive_threshold(g, 1e-4, 10)
    assert th[0] == pytest.approx(1e-3)
    assert (th <= 1e-3 + 1e-12).all()
    assert (th[1:] < th[:-1]).all()


def test_dns_lets_a_pruned_weight_come_back():
    model = nn.Sequential(nn.Linear(2, 1, bias=False))
    with torch.no_grad():
        model[0].weight.copy_(torch.tensor([[5e-5, 1.0]]))
    cfg = PruneConfig(mode="dns", strength=0.0, guided=False)
    pruner = Pruner(model, plan_layers(model, (2,), MACHINE, cfg), cfg)
    pruner.after_step(model, 0)
    w = model[0].weight
    assert float(w.detach()[0, 0]) == 0 and float(pruner.shadow["0"][0, 0]) == pytest.approx(5e-5)
    # An update that pushes the shadow over the threshold revives the weight.
    w.grad = torch.zeros_like(w)
    pruner.after_backward(model, 0)
    with torch.no_grad():
        w[0, 0] += 1e-4  # what the optimizer step would do
    pruner.after_step(model, 0)
    assert float(w.detach()[0, 0]) == pytest.approx(1.5e-4)


def test_bad_prune_config():
    with pytest.raises(ConfigError, match="mode"):
        PruneConfig(mode="ista").validate()
    with pytest.raises(ConfigError, match="adaptive_factor"):
        PruneConfig(adaptive_factor=1.5).validate()
    with pytest.raises(ConfigError, match="no Conv2d"):
        plan_layers(nn.Sequential(nn.ReLU()), (1, 4, 4), MACHINE, PruneConfig())


def test_killed_run_resumes_from_fit_checkpoints_to_the_same_result(tmp_path, monkeypatch):
    """All state (plans, masks, originals) is in fit's checkpoint: a kill mid-pruning and a
    rerun give the same weights and decisions as one uninterrupted run."""

    def run(folder):
        torch.manual_seed(0)
        model = Tiny()
        res = guided_prune(
            model,
            _data(),
            input_shape=(1, 8, 8),
            machine=MACHINE,
            config=PruneConfig(strength=0.3, threshold=0.05),
            train=TrainConfig(epochs=1, batch_size=16, lr=0.05, checkpoint_every=2),
            periods=3,
            retrain=TrainConfig(epochs=1, batch_size=16, lr=0.01),
            checkpoint_dir=folder,
        )
        return model, [(p.name, p.status, p.density, p.history) for p in res.layers]

    clean_model, clean_plans = run(tmp_path / "clean")

    real = Pruner.after_step

    def killed(self, model, step):
        if step == 9:  # mid second period, after the check of the first
            raise KeyboardInterrupt
        real(self, model, step)

    monkeypatch.setattr(Pruner, "after_step", killed)
    with pytest.raises(KeyboardInterrupt):
        run(tmp_path / "killed")
    monkeypatch.setattr(Pruner, "after_step", real)
    model, plans = run(tmp_path / "killed")
    assert plans == clean_plans
    for a, b in zip(model.state_dict().values(), clean_model.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b)


def test_pruning_train_config_with_weight_decay_is_refused():
    with pytest.raises(ConfigError, match="weight_decay"):
        guided_prune(
            Tiny(),
            _data(),
            input_shape=(1, 8, 8),
            machine=MACHINE,
            train=TrainConfig(epochs=1, weight_decay=1e-4),
        )
