import importlib

import pytest
import torch

from dnnrepro.conv_m_da import AdaptConfig, adapt, compact_net
from dnnrepro.core.errors import ConfigError, DataError

from .conftest import toy_domains

method_module = importlib.import_module("dnnrepro.conv_m_da.method")
FAST = {"steps": 6, "batch_size": 8, "bottleneck": 16, "discriminator_hidden": 16}


def _net():
    torch.manual_seed(0)
    return compact_net(10, "small", 1)


def _state(result):
    return {k: v.clone() for k, v in result.model.state_dict().items()}


def _same(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("method", ["source_only", "dan", "dann", "cdan", "ours"])
def test_every_trained_method_runs_and_reports(method):
    (xs, ys), (xt, yt) = toy_domains()
    r = adapt(_net(), (xs, ys), xt, method, target_test=(xt, yt), source_test=(xs, ys), **FAST)
    assert 0 <= r.metrics["target_test_accuracy"] <= 1
    assert r.model(xt[:3]).shape == (3, 10)
    assert r.steps == FAST["steps"]
    assert "ce" in r.terms and (method == "source_only") == (len(r.terms) == 1)
    assert ("domain" in r.terms) == (method in ("dann", "cdan", "ours"))
    assert ("mmd" in r.terms) == (method in ("dan", "ours"))
    assert (r.model.discriminator is not None and r.model.conditional) == (method == "cdan")


def test_methods_take_their_papers_settings():
    dan = AdaptConfig(method="dan").resolved()
    assert dan.mmd_estimator == "linear" and dan.lambda_mmd == 1.0 and not dan.lr_decay
    dann = AdaptConfig(method="dann", steps=100, lr=0.01).resolved()
    assert dann.lr_decay and dann.grl_alpha == 10.0
    tc = dann.train_config()
    # DANN's annealing lr / (1 + 10 p)^0.75 over training progress p
    assert tc.lr_at(0, 10) == pytest.approx(0.01)
    assert tc.lr_at(50, 10) == pytest.approx(0.01 / 6**0.75)
    assert AdaptConfig(method="ours").resolved().train_config().lr_at(50, 10) == 1e-3


def test_adabn_changes_only_batchnorm_statistics():
    (xs, ys), (xt, yt) = toy_domains()
    pre = adapt(_net(), (xs, ys), xt, "source_only", **FAST)
    r = adapt(pre.model, (xs, ys), xt, "adabn", target_test=(xt, yt), **FAST)
    assert r.steps == 0 and r.terms == {}
    before, after = pre.model.state_dict(), r.model.state_dict()
    bn_buffers = {
        f"{name}.{b}"
        for name, m in pre.model.named_modules()
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)
        for b in ("running_mean", "running_var", "num_batches_tracked")
    }
    assert bn_buffers and before.keys() == after.keys()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed and changed <= bn_buffers
    assert any("running_mean" in k for k in changed)
    # the new statistics are the target's: the first BN's mean is the target batch mean of its input
    first = next(m for m in r.model.modules() if isinstance(m, torch.nn.BatchNorm2d))
    captured = []
    hook = first.register_forward_hook(lambda mod, inp, out: captured.append(inp[0]))
    r.model.eval()
    with torch.no_grad():
        r.model(xt)
    hook.remove()
    assert torch.allclose(first.running_mean, captured[0].mean((0, 2, 3)), atol=1e-5)


def test_poisoned_target_labels_change_nothing():
    (xs, ys), (xt, yt) = toy_domains()
    poison = torch.randint(0, 10, yt.shape, generator=torch.Generator().manual_seed(5))
    a = adapt(_net(), (xs, ys), (xt, yt), "ours", target_test=(xt, yt), **FAST)
    b = adapt(_net(), (xs, ys), (xt, poison), "ours", target_test=(xt, poison), **FAST)
    assert _same(_state(a), _state(b))  # neither the training set's nor the test set's labels


def test_zero_weights_equal_source_only():
    (xs, ys), (xt, _) = toy_domains()
    a = adapt(_net(), (xs, ys), xt, "source_only", **FAST)
    b = adapt(_net(), (xs, ys), xt, "dann", lambda_domain=0.0, lr_decay=False, **FAST)
    c = adapt(_net(), (xs, ys), xt, "dan", lambda_mmd=0.0, **FAST)
    assert _same(_state(a), _state(b)) and _same(_state(a), _state(c))


def test_adaptation_terms_change_training():
    (xs, ys), (xt, _) = toy_domains()
    a = adapt(_net(), (xs, ys), xt, "source_only", **FAST)
    b = adapt(_net(), (xs, ys), xt, "dan", **FAST)
    assert not torch.equal(a.model.classifier.weight, b.model.classifier.weight)


def test_input_network_is_not_modified_and_continuation_works():
    (xs, ys), (xt, _) = toy_domains()
    net = _net()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    pre = adapt(net, (xs, ys), xt, "source_only", **FAST)
    assert _same(before, net.state_dict())
    cont = adapt(pre.model, (xs, ys), xt, "ours", **FAST)
    assert cont.model.residual is not None and cont.model.discriminator is not None


def test_resume_after_a_kill_matches_an_uninterrupted_run(tmp_path, monkeypatch):
    (xs, ys), (xt, _) = toy_domains()
    cfg = AdaptConfig(checkpoint_every=1, **FAST)
    full = adapt(_net(), (xs, ys), xt, "ours", config=cfg, checkpoint_dir=tmp_path / "a")

    real_forward = method_module.AdaptationObjective.forward

    def dying(self, net, x, y, xt, step):
        if step == 3:
            raise KeyboardInterrupt("simulated kill")
        return real_forward(self, net, x, y, xt, step)

    monkeypatch.setattr(method_module.AdaptationObjective, "forward", dying)
    with pytest.raises(KeyboardInterrupt):
        adapt(_net(), (xs, ys), xt, "ours", config=cfg, checkpoint_dir=tmp_path / "b")
    monkeypatch.setattr(method_module.AdaptationObjective, "forward", real_forward)
    resumed = adapt(_net(), (xs, ys), xt, "ours", config=cfg, checkpoint_dir=tmp_path / "b")
    assert resumed.steps == FAST["steps"]
    for k, v in _state(full).items():
        assert torch.allclose(v.float(), resumed.model.state_dict()[k].float(), atol=1e-6), k
    # the loss-term means cover every step, also those run before the kill (callback state)
    assert resumed.terms.keys() == full.terms.keys()
    for k, v in full.terms.items():
        assert resumed.terms[k] == pytest.approx(v, rel=1e-5, abs=1e-7), k
    # a rerun on a finished checkpoint runs no step and still reports the same means
    again = adapt(_net(), (xs, ys), xt, "ours", config=cfg, checkpoint_dir=tmp_path / "b")
    assert again.terms == resumed.terms


def test_bad_inputs_give_clear_errors():
    (xs, ys), (xt, _) = toy_domains()
    with pytest.raises(DataError, match="empty"):
        adapt(_net(), (xs, ys), xt[:0], "ours", **FAST)
    with pytest.raises(DataError, match="resize"):
        adapt(_net(), (xs, ys), xt.repeat(1, 3, 1, 1), "ours", **FAST)
    with pytest.raises(ConfigError, match="in_channels=3"):
        adapt(_net(), (xs.repeat(1, 3, 1, 1), ys), xt.repeat(1, 3, 1, 1), "ours", **FAST)
    with pytest.raises(ConfigError, match="unknown method"):
        adapt(_net(), (xs, ys), xt, "coral", **FAST)
    with pytest.raises(DataError, match="pair"):
        adapt(_net(), xs, xt, "ours", **FAST)
    with pytest.raises(ConfigError, match="lambda"):
        adapt(_net(), (xs, ys), xt, "ours", lambda_mmd=-1.0, **FAST)
    with pytest.raises(ConfigError, match="features"):
        adapt(torch.nn.Linear(3, 3), (xs, ys), xt, "ours", **FAST)
    with pytest.raises(DataError, match="labels"):
        adapt(_net(), (xs, ys + 10), xt, "ours", **FAST)
