import pytest
import torch

from dnnrepro.core.errors import ConfigError, DataError
from dnnrepro.poisongen import Retraining, flip_labels
from dnnrepro.poisongen.retrain import sgd_step


def test_labels_flip_to_next_class_without_a_label_10():
    y = torch.arange(10)
    flipped = flip_labels(y)
    assert flipped.tolist() == [1, 2, 3, 4, 5, 6, 7, 8, 9, 0]
    assert int(flipped.max()) <= 9
    with pytest.raises(DataError):
        flip_labels(torch.tensor([3, 10]))


def test_bias_learning_rate_is_twice_the_weight_rate(tiny):
    model, (x, y) = tiny
    params = {k: v.detach().clone() for k, v in model.named_parameters()}
    model.zero_grad()
    torch.nn.functional.cross_entropy(model(x[:1]), y[:1]).backward()
    new = sgd_step(model, params, x[:1], y[:1], Retraining(lr=0.05, bias_lr_mult=2.0))
    for name, p in model.named_parameters():
        rate = 0.1 if name.endswith("bias") else 0.05
        torch.testing.assert_close(new[name], p.detach() - rate * p.grad)
    # the step is functional: the starting weights are bit-identical afterwards
    for name, p in model.named_parameters():
        assert torch.equal(params[name], p.detach())


def test_retraining_rejects_bad_rates():
    with pytest.raises(ConfigError):
        Retraining(lr=0)
    with pytest.raises(ConfigError):
        Retraining(lr=0.1, bias_lr_mult=-1)
