"""The measurement protocol: accuracy curves of a deployed TeaNet and iso-accuracy metrics.

Curves (test or validation split):

- spatial: accuracy of k-copy ensembles at 1 tick, k in ``COPY_GRID``;
- temporal: accuracy of 1 copy over t ticks, t in ``TICK_GRID`` (averaged over the disjoint copy
  groups of the simulation), and the whole copies x ticks grid.

Input spikes: every curve uses the profile's ``inputs`` ("independent": one spike source per copy,
the default; "shared": one source for all copies); the spatial curve is also measured with the
other assumption (``copies_curve_other``, reported in the details and figures).

Each curve is the mean over ``draws`` independent simulator draws (sampled crossbars and input
spikes, simulator seeds ``draw_seed(seed, d)``), so one trained model's number does not hang on
one draw.

Iso-accuracy (declared before measuring; the tolerance per data set is in config.py): the target
is the baseline's 64-copy accuracy at 1 tick (its best) minus ``tolerance``; copies needed = the
smallest copy count whose accuracy reaches it; core reduction = 1 - copies_penalised /
copies_baseline. Likewise the ticks needed at 1 copy against the baseline's 16-tick accuracy;
speedup = ticks_baseline / ticks_penalised. A curve that never reaches the target counts as
needing twice the largest grid value (so the number says "worse", not "undefined").
"""

from __future__ import annotations

import statistics

import torch

from dnnrepro.core import checkpoint
from dnnrepro.core.train import evaluate

from .simulate import ensemble_accuracy, iso_accuracy_point, simulate_counts
from .tea import TeaNet, build
from .training import TeaTrainSpec, binary_fraction, mean_synapse_variance, train_tea

COPY_GRID = [1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64]
TICK_GRID = [1, 2, 3, 4, 6, 8, 12, 16]
OTHER = {"shared": "independent", "independent": "shared"}


def draw_seed(seed: int, draw: int) -> int:
    """Simulator seed of draw ``draw`` for training seed ``seed`` (disjoint from training seeds)."""
    return 20_000 + 100 * seed + draw


def _mean_curves(curves: list[list[float]]) -> list[float]:
    return [statistics.fmean(c[i] for c in curves) for i in range(len(curves[0]))]


def copies_curve(
    model: TeaNet,
    data,
    copies: int,
    seeds: list[int],
    backend: str = "auto",
    inputs: str = "independent",
):
    """Mean over simulator ``seeds`` of the k-copy accuracy at 1 tick, k in COPY_GRID <= copies
    (``inputs``: independent or shared input spike sources, simulate.simulate_counts)."""
    x, y = data
    grid = [k for k in COPY_GRID if k <= copies]
    curves = []
    for seed in seeds:
        counts = simulate_counts(model, x, copies, 1, seed, backend, inputs=inputs).cpu()
        curves.append([ensemble_accuracy(counts, y, model.class_size.cpu(), k, 1) for k in grid])
    return _mean_curves(curves)


def ticks_grid(
    model: TeaNet,
    data,
    copies: int,
    ticks: int,
    seeds: list[int],
    backend: str = "auto",
    inputs: str = "shared",
):
    """{'ticks', 'copies', 'ticks_curve' (1 copy vs ticks), 'grid' (copies x ticks)}, each the
    mean over simulator ``seeds``."""
    if inputs != "shared":
        backend = "torch"
    x, y = data
    cs = model.class_size.cpu()
    tgrid = [t for t in TICK_GRID if t <= ticks]
    cgrid = [k for k in COPY_GRID if k <= copies]
    grids = []
    for seed in seeds:
        counts = simulate_counts(model, x, copies, ticks, seed, backend, inputs=inputs).cpu()
        grids.append([[ensemble_accuracy(counts, y, cs, k, t) for t in tgrid] for k in cgrid])
    grid = [_mean_curves([g[i] for g in grids]) for i in range(len(cgrid))]
    return {"ticks": tgrid, "copies": cgrid, "ticks_curve": grid[0], "grid": grid}


def needed(curve: list[float], grid: list[int], target: float) -> float:
    """Grid value where ``curve`` first reaches ``target``; 2 x max(grid) when it never does."""
    point = iso_accuracy_point(curve, grid, target)
    return point if point != float("inf") else 2.0 * max(grid)


def tuning_metric(base_curve: list[float], curve: list[float], tolerance: float) -> float:
    """What the penalty tuning minimises on the validation split: the copies a candidate needs to
    reach the baseline's best validation accuracy minus ``tolerance``, minus its 1-copy accuracy
    (a fraction < 1, so it only breaks ties between equal copy counts)."""
    grid = COPY_GRID[: len(base_curve)]
    return needed(curve, grid, max(base_curve) - tolerance) - curve[0]


def train_and_validate(
    spec: TeaTrainSpec,
    train,
    val,
    work,
    threads,
    val_copies: int,
    draws: int,
    inputs: str = "independent",
) -> dict:
    """Train ``spec`` (resumable under ``work``), save its weights as ``work/final``, and return
    validation numbers (all derived from the saved weights, so a resume gives the same)."""
    model, _ = train_tea(spec, train, None, checkpoint_dir=work, threads=threads)
    checkpoint.save_weights(work / "final", model, {"arch": spec.arch})
    model = load_trained(spec.arch, work)
    seeds = [10_000 + draw_seed(spec.seed, d) for d in range(draws)]
    return {
        "val_float_accuracy": evaluate(model, val)["accuracy"],
        "val_copies_curve": copies_curve(model, val, val_copies, seeds, inputs=inputs),
        "binary_fraction": binary_fraction(model),
        "mean_synapse_variance": mean_synapse_variance(model),
    }


def load_trained(arch: str, work) -> TeaNet:
    model = build(arch)
    checkpoint.load_weights(work / "final", model)
    return model


def curves_on_test(
    model: TeaNet,
    test,
    copies: int,
    ticks: int,
    ticks_copies: int,
    seed: int,
    draws: int,
    inputs: str = "independent",
) -> dict:
    """Float accuracy, the spatial curve and the temporal grid on the test split (means over
    ``draws`` simulator draws), the histogram of p and its binary fraction."""
    ps = torch.cat([la.p.detach().flatten() for la in model.tea_layers()])
    hist = torch.histc(ps, bins=20, min=0.0, max=1.0)
    seeds = [draw_seed(seed, d) for d in range(draws)]
    return {
        "float_accuracy": evaluate(model, test)["accuracy"],
        "copies_grid": [k for k in COPY_GRID if k <= copies],
        "inputs": inputs,
        "copies_curve": copies_curve(model, test, copies, seeds, inputs=inputs),
        "copies_curve_other": copies_curve(model, test, copies, seeds, inputs=OTHER[inputs]),
        **ticks_grid(model, test, ticks_copies, ticks, seeds, inputs=inputs),
        "draws": draws,
        "p_histogram": (hist / hist.sum()).tolist(),
        "binary_fraction": binary_fraction(model),
        "mean_synapse_variance": mean_synapse_variance(model),
    }


def iso_metrics(base: dict, pen: dict, tolerance: float) -> dict:
    """Core reduction and tick speedup of ``pen`` against ``base`` (test curves), module doc."""
    cgrid, tgrid = base["copies_grid"], base["ticks"]
    target_c = base["copies_curve"][-1] - tolerance
    cb = needed(base["copies_curve"], cgrid, target_c)
    cp = needed(pen["copies_curve"], cgrid, target_c)
    target_t = base["ticks_curve"][-1] - tolerance
    tb = needed(base["ticks_curve"], tgrid, target_t)
    tp = needed(pen["ticks_curve"], tgrid, target_t)
    return {
        "tolerance": tolerance,
        "copies_target": target_c,
        "copies_baseline": cb,
        "copies_penalised": cp,
        "core_reduction": 1.0 - cp / cb,
        "ticks_target": target_t,
        "ticks_baseline": tb,
        "ticks_penalised": tp,
        "tick_speedup": tb / tp,
        "accuracy_delta_max_copies": pen["copies_curve"][-1] - base["copies_curve"][-1],
    }
