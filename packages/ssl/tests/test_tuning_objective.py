"""tune_row's objectives: the LeNet/MLP rows aim at the paper's FLOP fraction; depth takes the
smallest lambda that removes a block (the removal count jumps, so "closest to 1" would not)."""

import pytest

from dnnrepro.core import tuning
from dnnrepro.ssl import experiment
from dnnrepro.ssl.config import ROWS, SMALL


class _Ctx:
    """The part of RunContext that tune_row uses: stages run at once, tuning on seed 1000."""

    seeds = [0]

    def stage(self, name, fn, **key):
        return fn()

    def log(self, message):
        pass

    def tune(self, name, candidates, evaluate, objective="max", n_seeds=1):
        return tuning.tune(
            name,
            candidates,
            evaluate,
            seeds=[1000],
            reporting_seeds=[0],
            split="val",
            objective=objective,
        )


def _fake_rows(monkeypatch, structure: dict):
    def ssl_row(ctx, prof, row, seed, strength, split="train"):
        assert split == "train_minus_val" and seed >= 1000  # never the reporting split or seeds
        return {"structure": structure[strength], "error_increase_pp": 0.0}

    monkeypatch.setattr(experiment, "ssl_row", ssl_row)


def test_depth_takes_the_smallest_lambda_that_removes_a_block(monkeypatch):
    # measured on digits with the proximal step (tuning seed 1000): 0, 0, 3, 5 blocks
    _fake_rows(monkeypatch, {0.25: 0.0, 0.5: 0.0, 1.0: 3.0, 2.0: 5.0})
    assert experiment.tune_row(_Ctx(), SMALL, ROWS["depth"]) == 1.0


def test_depth_without_any_removal_takes_the_smallest_lambda(monkeypatch):
    _fake_rows(monkeypatch, dict.fromkeys(ROWS["depth"].candidates, 0.0))
    assert experiment.tune_row(_Ctx(), SMALL, ROWS["depth"]) == ROWS["depth"].candidates[0]


def test_lenet_rows_aim_at_the_paper_fraction(monkeypatch):
    row = ROWS["lenet3"]  # paper 3.6%
    _fake_rows(monkeypatch, dict(zip(row.candidates, (0.10, 0.04, 0.01), strict=True)))
    assert experiment.tune_row(_Ctx(), SMALL, row) == pytest.approx(row.candidates[1])
