import random

import pytest
import torch

from dnnrepro.core.errors import ConfigError
from dnnrepro.truenorth_learn import build, deploy, ensemble_accuracy, rng, simulate_counts
from dnnrepro.truenorth_learn.deployed import deployed_layers
from dnnrepro.truenorth_learn.simulate import sample_crossbars, sample_inputs


def test_tensor_hash_matches_integer_hash():
    values = [0, 1, 2**31 - 1, 2**31, 2**32 - 1] + [
        random.Random(1).getrandbits(32) for _ in range(200)
    ]
    t = rng.mix32(torch.tensor(values, dtype=torch.int64))
    assert t.tolist() == [rng.mix32_int(v) for v in values]


def test_uniforms_are_uniform_and_exact_floats():
    u = rng.uniform(rng.stream_key(3, 5), torch.arange(200_000))
    assert 0 <= float(u.min()) and float(u.max()) < 1
    assert abs(float(u.mean()) - 0.5) < 0.005
    assert torch.equal(u * 2**24, (u * 2**24).round())


def _binary_model(name="digits-2core", seed=0):
    torch.manual_seed(seed)
    model = build(name)
    model.reset_parameters(seed)
    with torch.no_grad():
        for layer in model.tea_layers():
            layer.p.copy_((layer.p > 0.5).float())
            layer.leak.copy_(torch.randint(-3, 3, layer.leak.shape).float())
    return model


def test_binary_deploy_is_deterministic_and_equals_the_float_network():
    model = _binary_model()
    x = (torch.rand(80, 1, 8, 8, generator=torch.Generator().manual_seed(1)) > 0.5).float()
    counts = simulate_counts(model, x, copies=3, ticks=2, seed=5, backend="torch")
    assert torch.equal(counts[0, 0], counts[2, 1])  # every copy and tick the same
    float_pred = model(x).argmax(1)
    res = deploy(model, (x, float_pred), copies=2, ticks=3, seed=9, backend="torch")
    assert res.accuracy == 1.0
    spikes = model.spike_probabilities(x)
    assert torch.equal(
        spikes @ torch.nn.functional.one_hot(model.class_of, 10).float(), counts[0, 0].float()
    )


def test_seeds_reproduce_and_differ():
    model = build("digits-2core")
    model.reset_parameters(0)
    x = torch.rand(30, 1, 8, 8, generator=torch.Generator().manual_seed(2))
    a = simulate_counts(model, x, 4, 3, seed=1, backend="torch")
    b = simulate_counts(model, x, 4, 3, seed=1, backend="torch")
    c = simulate_counts(model, x, 4, 3, seed=2, backend="torch")
    assert torch.equal(a, b) and not torch.equal(a, c)
    # draws depend on (copy, tick, image) only: a larger run contains the smaller one
    big = simulate_counts(model, x, 6, 4, seed=1, backend="torch")
    assert torch.equal(big[:4, :3], a)


def test_chunked_images_draw_the_same_spikes():
    model = build("digits-2core")
    model.reset_parameters(3)
    x = torch.rand(20, 1, 8, 8)
    full = simulate_counts(model, x, 2, 2, seed=4, backend="torch")
    half = simulate_counts(model, x[10:], 2, 2, seed=4, backend="torch", n_offset=10)
    assert torch.equal(full[:, :, 10:], half)


def test_sampled_connection_frequency_and_weight_variance():
    model = build("digits-2core")
    model.reset_parameters(0)
    layer = deployed_layers(model)[0][0]
    w = sample_crossbars(layer, 300, seed=0)
    freq = (w != 0).double().mean(0)
    p = layer.p.double()
    assert float((freq - p).abs().max()) < 5 * (0.25 / 300) ** 0.5
    var = w.double().var(0)
    expected = layer.s.double() ** 2 * p * (1 - p)
    # the per-element sample variance of 300 draws is noisy (~8%); its mean over 16k synapses is not
    assert abs(float((var - expected).mean())) < 0.01 * float(expected.mean())


def test_input_spike_rate_follows_probability():
    x = torch.rand(50, 64)
    spikes = torch.stack([sample_inputs(x, t, seed=0) for t in range(400)])
    assert float((spikes.mean(0) - x).abs().max()) < 5 * (0.25 / 400) ** 0.5


def test_ensemble_accuracy_groups():
    counts = torch.zeros(4, 2, 3, 2, dtype=torch.int32)
    counts[..., 1] = 1  # every copy votes class 1
    counts[0, 0, :, 0] = 5  # copy 0 tick 0 votes class 0 strongly
    y = torch.ones(3, dtype=torch.int64)
    cs = torch.ones(2)
    assert ensemble_accuracy(counts, y, cs, 1, 1) == pytest.approx(7 / 8)
    assert ensemble_accuracy(counts, y, cs, 4, 2) == 1.0  # pooled: 5 votes for 0, 8 for 1
    with pytest.raises(ConfigError):
        ensemble_accuracy(counts, y, cs, 5, 1)


def test_deploy_reports_cores_and_refuses_bad_input():
    model = build("mnist-5core")
    model.reset_parameters(0)
    x, y = torch.rand(4, 1, 28, 28), torch.zeros(4, dtype=torch.int64)
    res = deploy(model, (x, y), copies=3, ticks=1, backend="torch")
    assert res.cores_per_copy == 5 and res.cores_used == 15 and res.backend == "torch"
    assert res.synapse_evaluations == 3 * 4 * (4 * 256 * 64 + 256 * 250)
    with pytest.raises(ConfigError, match="copies"):
        deploy(model, (x, y), copies=0, ticks=1)
    with pytest.raises(ConfigError, match="exceed"):
        deploy(model, (x, y), copies=1000, ticks=1)
    with pytest.raises(ConfigError, match=r"\[0, 1\]"):
        deploy(model, (x * 3, y), copies=1, ticks=1)
    with pytest.raises(ConfigError, match="shape"):
        deploy(model, (torch.rand(4, 1, 8, 8), y), copies=1, ticks=1)
    with pytest.raises(ConfigError, match="backend"):
        simulate_counts(model, x, 1, 1, backend="tpu")
    with pytest.raises(ConfigError, match="seed"):
        simulate_counts(model, x, 1, 1, seed=-1)


def test_independent_inputs_differ_per_copy_and_keep_the_rate():
    x = torch.rand(40, 64, generator=torch.Generator().manual_seed(3))
    shared = sample_inputs(x, 0, seed=1)
    a, b = sample_inputs(x, 0, seed=1, copy=0), sample_inputs(x, 0, seed=1, copy=1)
    assert not torch.equal(a, b) and not torch.equal(a, shared)
    draws = torch.stack([sample_inputs(x, 0, seed=1, copy=k) for k in range(400)])
    assert float((draws.mean(0) - x).abs().max()) < 5 * (0.25 / 400) ** 0.5


def test_independent_inputs_in_the_simulator():
    model = _binary_model()
    x = torch.rand(30, 1, 8, 8, generator=torch.Generator().manual_seed(5))
    shared = simulate_counts(model, x, 3, 2, seed=4, backend="torch", inputs="shared")
    ind = simulate_counts(model, x, 3, 2, seed=4, backend="torch", inputs="independent")
    # independent sources are the library default
    assert torch.equal(simulate_counts(model, x, 3, 2, seed=4, backend="torch"), ind)
    # binary crossbars: with shared spikes every copy is identical; with independent ones not
    assert torch.equal(shared[0], shared[1]) and not torch.equal(ind[0], ind[1])
    # chunking and larger runs draw the same spikes
    half = simulate_counts(
        model, x[10:], 3, 2, seed=4, backend="torch", n_offset=10, inputs="independent"
    )
    assert torch.equal(ind[:, :, 10:], half)
    with pytest.raises(ConfigError, match="inputs"):
        simulate_counts(model, x, 1, 1, backend="torch", inputs="mixed")
    res = deploy(model, (x, torch.zeros(30, dtype=torch.int64)), 2, 1, inputs="independent")
    assert res.backend == ("cuda" if torch.cuda.is_available() else "torch")
