"""A lambda candidate that removes every filter of a layer is recorded in the tuning and never
chosen (the small profile's mlp_a sweep reached one: the run used to stop at shrink's error)."""

import math
from types import SimpleNamespace

from dnnrepro.core import tuning
from dnnrepro.ssl import experiment
from dnnrepro.ssl.config import ROWS


class _Ctx:
    """The three RunContext methods tune_row uses: stage runs its function, tune is the core's."""

    def __init__(self):
        self.logged = []

    def stage(self, name, fn, **keys):
        return fn()

    def log(self, message):
        self.logged.append(message)

    def tune(self, name, candidates, evaluate, objective="max", n_seeds=2):
        seeds = tuning.tuning_seeds(n_seeds)
        return tuning.tune(
            name, candidates, evaluate, seeds=seeds, reporting_seeds=[0, 1, 2], objective=objective
        )


def test_a_collapsed_candidate_is_listed_but_never_chosen(monkeypatch):
    row = next(r for r in (ROWS.values() if isinstance(ROWS, dict) else ROWS) if r.name == "mlp_a")
    low, mid, high = row.candidates
    # the strongest candidate collapses; it would be the closest to the target otherwise
    structure = {low: row.target + 0.3, mid: row.target + 0.2}

    def fake_row(ctx, prof, r, seed, strength, split="train"):
        assert split == "train_minus_val"  # tuning never sees the reporting split
        if strength == high:
            return {"collapsed": "shrink: all 500 filters of layers.fc1 would be removed"}
        return {"structure": structure[strength], "error_increase_pp": 1.0}

    monkeypatch.setattr(experiment, "ssl_row", fake_row)
    ctx = _Ctx()
    assert experiment.tune_row(ctx, prof=SimpleNamespace(tune_seeds=1), row=row) == mid
    assert any("would be removed" in m for m in ctx.logged)


def test_the_collapsed_tuning_metric_is_nan_not_zero(monkeypatch):
    row = next(r for r in (ROWS.values() if isinstance(ROWS, dict) else ROWS) if r.name == "mlp_a")
    seen = []

    def fake_tune(name, candidates, evaluate, objective="max", n_seeds=2):
        seen.extend(evaluate(c, 1000, "val") for c in candidates)
        return tuning.TuningRecord(
            name=name,
            candidates=list(candidates),
            split="val",
            seeds=[1000],
            values=[[v] for v in seen],
            means=seen,
            choice=candidates[0],
            objective=objective,
        )

    monkeypatch.setattr(
        experiment, "ssl_row", lambda *a, **k: {"collapsed": "shrink: all filters removed"}
    )
    ctx = _Ctx()
    ctx.tune = fake_tune
    experiment.tune_row(ctx, prof=SimpleNamespace(tune_seeds=1), row=row)
    assert seen and all(math.isnan(v) for v in seen)
