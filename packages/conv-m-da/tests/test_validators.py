"""IM and SND against hand-computed values; checkpoint selection by a validator in adapt."""

import importlib
import math

import pytest
import torch

from dnnrepro.conv_m_da import AdaptConfig, adapt, compact_net
from dnnrepro.conv_m_da.validators import (
    information_maximization,
    predict_logits,
    soft_neighborhood_density,
    strided_subset,
    validator_score,
)
from dnnrepro.core.errors import ConfigError, DataError

from .conftest import toy_domains

method_module = importlib.import_module("dnnrepro.conv_m_da.method")
FAST = {"steps": 6, "batch_size": 8, "bottleneck": 16, "discriminator_hidden": 16}


def test_im_on_a_hand_computed_example():
    # p1 = (1/2, 1/2), p2 = (3/4, 1/4); by hand (nats):
    # H(p1) = ln 2 = 0.693147, H(p2) = 0.75 ln(4/3) + 0.25 ln 4 = 0.562335,
    # mean p = (5/8, 3/8), H(mean p) = 0.625 ln(8/5) + 0.375 ln(8/3) = 0.661563,
    # IM = 0.661563 - (0.693147 + 0.562335) / 2 = 0.033822
    logits = torch.tensor([[0.0, 0.0], [math.log(3.0), 0.0]])
    assert information_maximization(logits) == pytest.approx(0.033822, abs=2e-6)


def test_im_bounds():
    same = torch.tensor([[2.0, 0.0, -1.0]] * 5)  # every image predicted alike: no diversity
    assert information_maximization(same) == pytest.approx(0.0, abs=1e-12)
    onehot = 60.0 * torch.eye(4).repeat(3, 1)  # confident and balanced: the maximum, log K
    assert information_maximization(onehot) == pytest.approx(math.log(4), abs=1e-9)
    rand = torch.randn(50, 7, generator=torch.Generator().manual_seed(0))
    assert 0.0 <= information_maximization(rand) <= math.log(7)


def test_snd_on_a_hand_computed_example():
    # predictions (1, 0), (1, 0), (0, 1) (logits +-60: one-hot to 1e-52); T = 0.5.
    # image 1: neighbours 2 (cos 1) and 3 (cos 0): softmax(2, 0) = (0.880797, 0.119203),
    #   entropy 0.880797 ln(1/0.880797) + 0.119203 ln(1/0.119203) = 0.365334; image 2 the same;
    # image 3: neighbours 1 and 2, both cos 0: uniform, entropy ln 2 = 0.693147.
    # SND = (2 * 0.365334 + 0.693147) / 3 = 0.474605
    logits = torch.tensor([[60.0, -60.0], [60.0, -60.0], [-60.0, 60.0]])
    assert soft_neighborhood_density(logits, temperature=0.5) == pytest.approx(0.474605, abs=2e-6)


def test_snd_blocks_and_bounds():
    logits = torch.randn(37, 5, generator=torch.Generator().manual_seed(1))
    whole = soft_neighborhood_density(logits, block=1024)
    assert soft_neighborhood_density(logits, block=4) == pytest.approx(whole, rel=1e-12)
    assert 0.0 <= whole <= math.log(36)
    # identical predictions: every neighbour alike, the uniform distribution over N - 1
    assert soft_neighborhood_density(torch.ones(9, 3)) == pytest.approx(math.log(8), rel=1e-9)


def test_validators_reject_bad_input():
    with pytest.raises(ConfigError, match=r"\(N, K\)"):
        information_maximization(torch.zeros(5))
    with pytest.raises(DataError, match="at least 3"):
        soft_neighborhood_density(torch.zeros(2, 3))
    with pytest.raises(DataError, match="NaN"):
        information_maximization(torch.tensor([[0.0, math.nan]]))
    with pytest.raises(ConfigError, match="temperature"):
        soft_neighborhood_density(torch.zeros(4, 3), temperature=0.0)
    net = compact_net(10, "small", 1)
    with pytest.raises(ConfigError, match="unknown validator"):
        validator_score(net, torch.rand(4, 1, 8, 8), "dev")
    with pytest.raises(ConfigError, match="select must be"):
        AdaptConfig(select="best").resolved()
    with pytest.raises(ConfigError, match="select_images"):
        strided_subset(torch.rand(10, 1, 4, 4), 2)


def test_scoring_leaves_the_model_as_it_was():
    torch.manual_seed(0)
    net = compact_net(10, "small", 1).train()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    x = torch.rand(12, 1, 8, 8)
    logits = predict_logits(net, x, batch_size=5)
    assert logits.shape == (12, 10) and net.training
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())
    assert validator_score(net, x, "snd") == pytest.approx(soft_neighborhood_density(logits))


def test_selection_scores_the_run_and_returns_the_best_checkpoint():
    (xs, ys), (xt, yt) = toy_domains()
    torch.manual_seed(0)
    net = compact_net(10, "small", 1)
    last = adapt(net, (xs, ys), xt, "dann", **FAST)
    chosen = adapt(net, (xs, ys), xt, "dann", select="im", select_every=2, **FAST)
    sel = chosen.selection
    assert last.selection == {}
    assert sel["validator"] == "im" and [s for s, _ in sel["scores"]] == [2, 4, 6]
    best = max(sel["scores"], key=lambda s: s[1])
    assert (sel["step"], sel["score"]) == tuple(best)
    # scoring draws no random numbers and runs in eval mode: the trajectory is unchanged, so the
    # last scored checkpoint is the last iterate and the returned score is the chosen network's
    assert sel["scores"][-1][1] == pytest.approx(validator_score(last.model, xt, "im"), abs=1e-6)
    assert validator_score(chosen.model, xt, "im") == pytest.approx(sel["score"], abs=1e-6)
    if sel["step"] == FAST["steps"]:
        assert all(
            torch.equal(v, chosen.model.state_dict()[k]) for k, v in last.model.state_dict().items()
        )


def test_selection_resumes_with_its_history(tmp_path, monkeypatch):
    (xs, ys), (xt, _) = toy_domains()
    cfg = AdaptConfig(checkpoint_every=1, select="snd", select_every=2, **FAST)
    torch.manual_seed(0)
    net = compact_net(10, "small", 1)
    full = adapt(net, (xs, ys), xt, "dan", config=cfg, checkpoint_dir=tmp_path / "a")

    real_forward = method_module.AdaptationObjective.forward

    def dying(self, model, x, y, x_t, step):
        if step == 5:
            raise KeyboardInterrupt("simulated kill")
        return real_forward(self, model, x, y, x_t, step)

    monkeypatch.setattr(method_module.AdaptationObjective, "forward", dying)
    with pytest.raises(KeyboardInterrupt):
        adapt(net, (xs, ys), xt, "dan", config=cfg, checkpoint_dir=tmp_path / "b")
    monkeypatch.setattr(method_module.AdaptationObjective, "forward", real_forward)
    resumed = adapt(net, (xs, ys), xt, "dan", config=cfg, checkpoint_dir=tmp_path / "b")
    assert [s for s, _ in resumed.selection["scores"]] == [2, 4, 6]
    assert resumed.selection["step"] == full.selection["step"]
    for (_, a), (_, b) in zip(full.selection["scores"], resumed.selection["scores"], strict=True):
        assert a == pytest.approx(b, abs=1e-6)
    for k, v in full.model.state_dict().items():
        assert torch.allclose(v.float(), resumed.model.state_dict()[k].float(), atol=1e-6), k


@pytest.mark.slow
def test_smoke_profile_can_select_by_a_validator(tmp_path, monkeypatch):
    """Profile.select reaches every trained arm; the stage values record the chosen steps."""
    import dataclasses
    import json

    from dnnrepro.conv_m_da import experiment
    from dnnrepro.conv_m_da.paper import PAPER
    from dnnrepro.core.paper import reproduce

    smoke = dataclasses.replace(experiment.PROFILES["smoke"], select="snd", select_every=1)
    monkeypatch.setitem(experiment.PROFILES, "smoke", smoke)
    reproduce(PAPER, "smoke", out_root=tmp_path / "out", work_root=tmp_path / "runs", quiet=True)
    stages = [json.loads(p.read_text()) for p in (tmp_path / "runs").rglob("stages/*.json")]
    cells = [s for s in stages if s["key"].get("select") == "snd"]
    assert cells, "no stage was keyed by the validator"
    for cell in cells:
        for method, value in cell["value"]["methods"].items():
            if method == "adabn":  # no steps, nothing to select
                assert "selection" not in value
                continue
            sel = value["selection"]
            assert sel["validator"] == "snd" and len(sel["scores"]) == smoke.steps
            assert sel["score"] == max(s for _, s in sel["scores"])
