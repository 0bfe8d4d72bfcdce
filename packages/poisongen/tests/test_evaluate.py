import pytest
import torch

from dnnrepro.core.errors import ConfigError, DataError
from dnnrepro.poisongen import evaluate, flip_labels


def test_evaluation_works_on_copies(tiny):
    model, (x, y) = tiny
    before = {k: v.clone() for k, v in model.state_dict().items()}
    poisons = (x[:5].clone(), flip_labels(y[:5]))
    copy = (poisons[0].clone(), poisons[1].clone())
    for mode in ("per_point", "sequential", "fraction"):
        evaluate(
            model,
            poisons,
            (x, y),
            mode=mode,
            counts=(0, 5),
            retrain=(x[5:25], y[5:25]),
            fractions=(0.0, 0.2),
        )
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k])
    assert torch.equal(poisons[0], copy[0]) and torch.equal(poisons[1], copy[1])


def test_modes_report_what_they_promise(tiny):
    model, (x, y) = tiny
    poisons = (x[:6], flip_labels(y[:6]))
    pp = evaluate(model, poisons, (x, y), normal=(x[:5], y[:5]))
    assert len(pp["per_poison_accuracy"]) == 6 and "normal_loss" in pp["after"]
    assert pp["accuracy_drop_pp"] == pytest.approx(
        100 * (pp["before"]["test_accuracy"] - pp["after"]["test_accuracy"])
    )
    seq = evaluate(model, poisons, (x, y), mode="sequential", counts=(0, 2, 6))
    assert [r["count"] for r in seq["curve"]] == [0, 2, 6]
    assert seq["curve"][0]["test_accuracy"] == seq["before"]["test_accuracy"]
    frac = evaluate(
        model, poisons, (x, y), mode="fraction", retrain=(x[6:30], y[6:30]), fractions=(0, 0.2)
    )
    assert [r["n_poisons"] for r in frac["curve"]] == [0, 6]


def test_evaluation_errors(tiny):
    model, (x, y) = tiny
    poisons = (x[:2], y[:2])
    with pytest.raises(ConfigError, match="mode"):
        evaluate(model, poisons, (x, y), mode="online")
    with pytest.raises(ConfigError, match="counts"):
        evaluate(model, poisons, (x, y), mode="sequential", counts=(0, 5))
    with pytest.raises(DataError, match="needs"):
        evaluate(model, poisons, (x, y), mode="fraction", retrain=(x, y), fractions=(0.5,))
    with pytest.raises(DataError, match="shape"):
        evaluate(model, (torch.rand(2, 1, 8, 8), y[:2]), (x, y))
