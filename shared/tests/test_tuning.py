import math

import pytest

from dnnrepro.core import tuning
from dnnrepro.core.errors import ConfigError


def _evaluate(calls):
    def evaluate(candidate, seed, split):
        calls.append((candidate, seed, split))
        return -((candidate - 0.3) ** 2) + 0.001 * (seed - tuning.TUNING_SEED_BASE)

    return evaluate


def test_tune_picks_the_best_candidate_on_the_validation_split():
    calls = []
    rec = tuning.tune(
        "lambda",
        [0.1, 0.3, 0.9],
        _evaluate(calls),
        seeds=tuning.tuning_seeds(2),
        reporting_seeds=[0, 1, 2],
    )
    assert rec.choice == 0.3 and rec.split == "val" and rec.seeds == [1000, 1001]
    assert {s for _, s, _ in calls} == {1000, 1001} and {sp for *_, sp in calls} == {"val"}
    d = rec.as_dict()
    assert d["candidates"] == [0.1, 0.3, 0.9] and len(d["values"]) == 3 and len(d["values"][0]) == 2
    assert d["means"][1] == pytest.approx(max(d["means"]))
    low = tuning.tune(
        "lambda", [0.1, 0.3, 0.9], _evaluate([]), seeds=[1000], reporting_seeds=[0], objective="min"
    )
    assert low.choice == 0.9
    target = tuning.tune(
        "t",
        [1, 2, 3],
        lambda c, s, sp: float(c),
        seeds=[1000],
        reporting_seeds=[0],
        objective=("target", 2.2),
    )
    assert target.choice == 2 and target.as_dict()["objective"] == ["target", 2.2]


def test_tune_refuses_the_test_split_and_overlapping_seeds():
    with pytest.raises(ConfigError, match="test split"):
        tuning.tune("lambda", [1], _evaluate([]), seeds=[1000], reporting_seeds=[0], split="test")
    with pytest.raises(ConfigError, match="reporting seeds"):
        tuning.tune("lambda", [1], _evaluate([]), seeds=[0, 1000], reporting_seeds=[0, 1])
    with pytest.raises(ConfigError, match="objective"):
        tuning.tune(
            "lambda", [1], _evaluate([]), seeds=[1000], reporting_seeds=[0], objective="best"
        )
    with pytest.raises(ConfigError, match="no candidates"):
        tuning.tune("lambda", [], _evaluate([]), seeds=[1000], reporting_seeds=[0])


def test_nan_candidates_are_never_chosen():
    rec = tuning.tune(
        "k", [1, 2], lambda c, s, sp: math.nan if c == 2 else 0.5, seeds=[1000], reporting_seeds=[0]
    )
    assert rec.choice == 1
    with pytest.raises(ConfigError, match="non-finite"):
        tuning.tune("k", [1], lambda c, s, sp: math.nan, seeds=[1000], reporting_seeds=[0])


def test_a_record_naming_the_test_split_is_refused():
    rec = tuning.tune("k", [1, 2], lambda c, s, sp: c, seeds=[1000], reporting_seeds=[0]).as_dict()
    tuning.validate_record(rec)
    with pytest.raises(ConfigError, match="test split"):
        tuning.validate_record({**rec, "split": "test"})
    with pytest.raises(ConfigError, match="not a candidate"):
        tuning.validate_record({**rec, "choice": 7})
