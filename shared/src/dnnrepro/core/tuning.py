"""The tuning protocol: how any knob chosen from candidates is chosen.

A strength, a λ or a threshold that a claim's setting depends on is picked by :func:`tune`:

* each candidate is evaluated on a validation split carved from train (``"val"`` by default;
  the test split is refused);
* with tuning seeds (``TUNING_SEED_BASE`` + 0, 1, ...) disjoint from the seeds that report results;
* the candidates, their per-seed validation metric, the objective and the choice are returned as a
  :class:`TuningRecord`, whose ``as_dict()`` goes into results.json (``ctx.tune`` does this).

A claim declares the knobs it depends on (``Claim(tuned=("lambda",))``); without a record of that
name in the run, a ``paper`` claim's verdict is inconclusive.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from .errors import ConfigError

TUNING_SEED_BASE = 1000


def tuning_seeds(n: int) -> list[int]:
    """The first ``n`` tuning seeds: 1000, 1001, ..."""
    if n < 1:
        raise ConfigError(f"tuning needs at least one seed, not {n}")
    return list(range(TUNING_SEED_BASE, TUNING_SEED_BASE + n))


def _check_split(split: Any, where: str) -> None:
    if not isinstance(split, str) or not split:
        raise ConfigError(f"{where}: the tuning split must be a split name, not {split!r}")
    if "test" in split.lower():
        raise ConfigError(
            f"{where}: knobs are never tuned on the test split ({split!r}); "
            "use split='val' (carved from train)"
        )


def _check_objective(objective: Any, where: str) -> None:
    if objective in ("max", "min"):
        return
    if (
        isinstance(objective, tuple | list)
        and len(objective) == 2
        and objective[0] == "target"
        and isinstance(objective[1], int | float)
        and math.isfinite(objective[1])
    ):
        return
    raise ConfigError(
        f"{where}: objective must be 'max', 'min' or ('target', value), not {objective!r}"
    )


@dataclass(frozen=True)
class TuningRecord:
    """What was tuned and how: one entry of results.json's ``tuning`` list.

    ``values[i]`` are candidate ``i``'s metric per tuning seed, ``means[i]`` their mean (NaN when
    any is not finite); ``choice`` is the chosen candidate.
    """

    name: str
    candidates: list
    split: str
    seeds: list[int]
    values: list[list[float]]
    means: list[float]
    choice: Any
    objective: Any

    def __post_init__(self):
        validate_record(self.as_dict(), where="tuning")

    def as_dict(self) -> dict:
        d = asdict(self)
        if isinstance(self.objective, tuple):
            d["objective"] = list(self.objective)
        return d


def validate_record(record: dict, where: str = "tuning") -> None:
    """ConfigError unless ``record`` is a well-formed tuning record that did not use the test split."""
    for key in ("name", "candidates", "split", "seeds", "values", "means", "choice", "objective"):
        if key not in record:
            raise ConfigError(f"{where}: tuning record lacks {key!r}: {record!r}")
    where = f"{where}: tuning {record['name']!r}"
    _check_split(record["split"], where)
    _check_objective(record["objective"], where)
    if len(record["candidates"]) != len(record["means"]) or len(record["candidates"]) != len(
        record["values"]
    ):
        raise ConfigError(f"{where}: one metric list and one mean per candidate are needed")
    if record["choice"] not in record["candidates"]:
        raise ConfigError(f"{where}: the choice {record['choice']!r} is not a candidate")


def _pick(means: list[float], objective: Any) -> int:
    finite = [i for i, m in enumerate(means) if math.isfinite(m)]
    if objective == "max":
        return max(finite, key=lambda i: (means[i], -i))
    if objective == "min":
        return min(finite, key=lambda i: (means[i], i))
    target = float(objective[1])
    return min(finite, key=lambda i: (abs(means[i] - target), i))


def tune(
    name: str,
    candidates: Sequence[Any],
    evaluate: Callable[[Any, int, str], float],
    *,
    seeds: Sequence[int],
    reporting_seeds: Sequence[int],
    split: str = "val",
    objective: Any = "max",
) -> TuningRecord:
    """Evaluate every candidate on ``split`` with every tuning seed and pick one.

    ``evaluate(candidate, seed, split) -> float`` trains/evaluates with that candidate and returns
    the validation metric. ``objective``: "max", "min" or ("target", value) (closest mean wins);
    ties go to the earlier candidate; non-finite means are never chosen.
    """
    where = f"tuning {name!r}"
    if not name:
        raise ConfigError("tuning needs a name (the knob's name, as claims' `tuned` lists it)")
    _check_split(split, where)
    _check_objective(objective, where)
    candidates = list(candidates)
    if not candidates:
        raise ConfigError(f"{where}: no candidates")
    seeds = [int(s) for s in seeds]
    if not seeds:
        raise ConfigError(f"{where}: no tuning seeds")
    overlap = sorted(set(seeds) & {int(s) for s in reporting_seeds})
    if overlap:
        raise ConfigError(
            f"{where}: tuning seeds {overlap} are also reporting seeds; use tuning_seeds(n) "
            f"(from {TUNING_SEED_BASE})"
        )
    values = [[float(evaluate(c, s, split)) for s in seeds] for c in candidates]
    means = [statistics.fmean(v) if all(math.isfinite(x) for x in v) else math.nan for v in values]
    if not any(math.isfinite(m) for m in means):
        raise ConfigError(f"{where}: every candidate gave a non-finite metric: {values}")
    choice = candidates[_pick(means, objective)]
    return TuningRecord(
        name=name,
        candidates=candidates,
        split=split,
        seeds=seeds,
        values=values,
        means=means,
        choice=choice,
        objective=tuple(objective) if isinstance(objective, list) else objective,
    )
