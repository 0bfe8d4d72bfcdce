import pytest
import torch

from dnnrepro.core.errors import ConfigError
from dnnrepro.core.train import TrainConfig
from dnnrepro.poisongen import GenerativeAttack, Generator

PRETRAIN = TrainConfig(epochs=1, batch_size=8, lr=1e-2, optimizer="adam")


def test_generator_output_is_an_image_in_the_unit_interval():
    g = Generator((1, 4, 4), (8, 8))
    with torch.no_grad():
        out = g(torch.randn(5, 1, 4, 4) * 10)
    assert out.shape == (5, 1, 4, 4)
    assert float(out.min()) >= 0 and float(out.max()) <= 1


@pytest.mark.parametrize("reward", ["faithful", "unrolled"])
def test_fit_updates_the_generator_and_poison_is_one_forward_pass(tiny, reward):
    model, data = tiny
    attack = GenerativeAttack(model, data, rounds=3, reward=reward, pretrain=PRETRAIN)
    attack.fit()
    assert len(attack.history) == 3 and attack.fit_seconds > 0
    calls = {"generator": 0, "target": 0}
    attack.generator.register_forward_hook(
        lambda *_: calls.__setitem__("generator", calls["generator"] + 1)
    )
    attack.model.register_forward_hook(lambda *_: calls.__setitem__("target", calls["target"] + 1))
    x_p, y_p = attack.poison(data[0][:7], data[1][:7])
    assert calls == {"generator": 1, "target": 0}
    assert x_p.shape == (7, 1, 4, 4) and float(x_p.min()) >= 0 and float(x_p.max()) <= 1
    assert torch.equal(y_p, (data[1][:7] + 1) % 10)


def test_reward_rounds_change_a_pretrained_generator(tiny):
    model, data = tiny
    g = Generator((1, 4, 4), (8, 8))
    before = [p.clone() for p in g.parameters()]
    attack = GenerativeAttack(model, data, generator=g, rounds=2, reward="unrolled").fit()
    assert attack.pretrain_seconds == 0  # a given generator is not pretrained again
    assert any(not torch.equal(a, b) for a, b in zip(before, g.parameters(), strict=True))


def test_caller_model_untouched_and_errors(tiny):
    model, data = tiny
    before = {k: v.clone() for k, v in model.state_dict().items()}
    attack = GenerativeAttack(model, data, rounds=2, pretrain=PRETRAIN)
    with pytest.raises(ConfigError, match="fit"):
        attack.poison(data[0][:2], data[1][:2])
    attack.fit()
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k])
    with pytest.raises(ConfigError, match="reward"):
        GenerativeAttack(model, data, reward="policy-gradient")
    with pytest.raises(ConfigError, match="rounds"):
        GenerativeAttack(model, data, rounds=-1)
