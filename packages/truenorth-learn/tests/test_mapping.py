import pytest
import torch

from dnnrepro.core.errors import ConfigError
from dnnrepro.truenorth_learn import TeaLayer, TeaNet, TeaStage, build, map_to_cores, mnist_5core
from dnnrepro.truenorth_learn.tea import patch_sources


def test_mnist_layout_is_five_cores():
    net = mnist_5core()
    plan = map_to_cores(net, (1, 28, 28))
    assert plan.cores_per_copy == 5
    assert [(c.axons, c.neurons) for c in plan.cores] == [(256, 64)] * 4 + [(256, 250)]
    assert plan.cores_for(64) == 320
    # patches at stride 12: the corner patch starts at (12, 12) and overlaps its neighbours
    src = net.stages[0].sources()
    assert int(src[0][0]) == 0 and int(src[3][0]) == 12 * 28 + 12 and int(src[3][-1]) == 783
    assert len(set(src[0].tolist()) & set(src[1].tolist())) == 16 * 4


def test_digits_layout_is_two_cores():
    assert map_to_cores(build("digits-2core")).cores_per_copy == 2


def test_257_inputs_are_refused():
    net = TeaNet([TeaStage([TeaLayer(257, 10)], [torch.arange(257)])], (1, 1, 257))
    with pytest.raises(ConfigError, match="257 inputs"):
        map_to_cores(net)


def test_fan_out_beyond_one_destination_is_refused():
    first = TeaStage([TeaLayer(64, 20)], [torch.arange(64)])
    second = TeaStage([TeaLayer(20, 10), TeaLayer(20, 10)], [torch.arange(20), torch.arange(20)])
    with pytest.raises(ConfigError, match="one destination"):
        map_to_cores(TeaNet([first, second], (1, 8, 8)))


def test_wide_first_layer_is_split_and_wide_later_layer_refused():
    first = TeaStage([TeaLayer(64, 300)], [torch.arange(64)])
    second = TeaStage([TeaLayer(256, 10)], [torch.arange(256)])
    plan = map_to_cores(TeaNet([first, second], (1, 8, 8)))
    assert [c.neurons for c in plan.cores] == [256, 44, 10]
    wide = TeaStage([TeaLayer(64, 300)], [torch.arange(64)])
    with pytest.raises(ConfigError, match="one destination"):
        map_to_cores(TeaNet([TeaStage([TeaLayer(64, 64)], [torch.arange(64)]), wide], (1, 8, 8)))


def test_mapping_checks_shapes_and_ranges():
    net = build("digits-2core")
    with pytest.raises(ConfigError, match="inputs of shape"):
        map_to_cores(net, (1, 28, 28))
    with torch.no_grad():
        net.stages[0].layers[0].p[0, 0] = 1.5
    with pytest.raises(ConfigError, match=r"\[0, 1\]"):
        map_to_cores(net)
    with pytest.raises(ConfigError, match="TeaNet"):
        map_to_cores(torch.nn.Linear(2, 2))
    with pytest.raises(ConfigError, match="leaves"):
        patch_sources(28, 16, [(0, 13)])
