import importlib

import pytest
import torch

from dnnrepro.conv_m_da import AdaptConfig, adapt, compact_net
from dnnrepro.core.errors import ConfigError, DataError

from .conftest import toy_domains

# the package re-exports the function adapt, which shadows the module of the same name
adapt_module = importlib.import_module("dnnrepro.conv_m_da.adapt")
FAST = {"steps": 6, "batch_size": 8, "bottleneck": 16, "discriminator_hidden": 16}


def _net():
    torch.manual_seed(0)
    return compact_net(10, "small", 1)


def _state(result):
    return {k: v.clone() for k, v in result.model.state_dict().items()}


def _same(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("method", ["source_only", "dan", "dann", "ours"])
def test_every_method_runs_and_reports(method):
    (xs, ys), (xt, yt) = toy_domains()
    r = adapt(_net(), (xs, ys), xt, method, target_test=(xt, yt), source_test=(xs, ys), **FAST)
    assert 0 <= r.metrics["target_test_accuracy"] <= 1
    assert r.model(xt[:3]).shape == (3, 10)
    assert int(r.model.step_count) == FAST["steps"]
    assert "ce" in r.terms and (method == "source_only") == (len(r.terms) == 1)


def test_poisoned_target_labels_change_nothing():
    (xs, ys), (xt, yt) = toy_domains()
    poison = torch.randint(0, 10, yt.shape, generator=torch.Generator().manual_seed(5))
    a = adapt(_net(), (xs, ys), (xt, yt), "ours", target_test=(xt, yt), **FAST)
    b = adapt(_net(), (xs, ys), (xt, poison), "ours", target_test=(xt, poison), **FAST)
    assert _same(_state(a), _state(b))  # neither the training set's nor the test set's labels


def test_zero_weights_equal_source_only():
    (xs, ys), (xt, _) = toy_domains()
    a = adapt(_net(), (xs, ys), xt, "source_only", **FAST)
    b = adapt(_net(), (xs, ys), xt, "dann", lambda_domain=0.0, **FAST)
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

    real_call = adapt_module.AdaptationLoss.__call__

    def dying(self, net, x, y, step):
        if int(getattr(net, "module", net).step_count) == 3:
            raise KeyboardInterrupt("simulated kill")
        return real_call(self, net, x, y, step)

    monkeypatch.setattr(adapt_module.AdaptationLoss, "__call__", dying)
    with pytest.raises(KeyboardInterrupt):
        adapt(_net(), (xs, ys), xt, "ours", config=cfg, checkpoint_dir=tmp_path / "b")
    monkeypatch.setattr(adapt_module.AdaptationLoss, "__call__", real_call)
    resumed = adapt(_net(), (xs, ys), xt, "ours", config=cfg, checkpoint_dir=tmp_path / "b")
    assert int(resumed.model.step_count) == FAST["steps"]
    for k, v in _state(full).items():
        assert torch.allclose(v.float(), resumed.model.state_dict()[k].float(), atol=1e-6), k


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
    with pytest.raises(ConfigError, match="lambda"):
        adapt(_net(), (xs, ys), xt, "ours", lambda_mmd=-1.0, **FAST)
    with pytest.raises(ConfigError, match="features"):
        adapt(torch.nn.Linear(3, 3), (xs, ys), xt, "ours", **FAST)
    with pytest.raises(DataError, match="labels"):
        adapt(_net(), (xs, ys + 10), xt, "ours", **FAST)
