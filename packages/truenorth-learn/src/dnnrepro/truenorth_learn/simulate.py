"""Tick-by-tick simulation of a deployed TeaNet: sampled crossbars, sampled input spikes, integers.

Deployment semantics (exactly what the CUDA kernel in kernels/deploy.cu computes):

- copy k of the network gets its own crossbar: bit_ij = [u < p_ij], u from stream
  ``synapse_stream(layer, k)`` at counter i*m + j; the synapse then adds the integer s_ij;
- at tick t every input pixel n, q spikes iff u < x[n, q], u from stream ``input_stream(t)`` at
  counter (n_offset + n) * P + q. By default (``inputs="independent"``) copy k draws its own
  spikes from key ``rng.input_copy_key(seed, t, k)`` (the chip when every copy receives its own
  spike train); with ``inputs="shared"`` the same input spikes feed every copy (one spike source
  fanned out by the host to all copies). A pixel read by two patch cores of one copy sends them
  the same spike;
- a neuron's potential is leak + sum of s_ij over connected axons that spiked; it spikes iff the
  potential is >= 1 (chip.THRESHOLD) and starts from 0 again next tick. Layers are evaluated in
  order within a tick (the chip pipelines them with one tick of delay per layer; counts over a
  window are the same);
- readout: spikes of each class's output neurons are counted over copies and ticks; the class
  with the highest count per neuron wins (ties go to the lowest class index).

All integer sums are computed in float32 matmuls, which is exact here (|sum| < 2**24).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch

from dnnrepro.core.errors import ConfigError

from . import chip, rng
from .deployed import DeployedLayer, check_run, deployed_layers
from .mapping import map_to_cores
from .tea import TeaNet

BACKENDS = ("auto", "torch", "cuda")
INPUTS = ("shared", "independent")  # one input spike source for all copies, or one per copy


def sample_bits(layer: DeployedLayer, copies: int, seed: int, copy0: int = 0) -> torch.Tensor:
    """Sampled crossbar bits of ``copies`` copies, (copies, a, m) bool: bit_ij = [u < p_ij]."""
    a, m = layer.shape
    counters = torch.arange(a * m, device=layer.p.device, dtype=torch.int64)
    out = torch.empty(copies, a, m, dtype=torch.bool, device=layer.p.device)
    for k in range(copies):
        key = rng.stream_key(seed, rng.synapse_stream(layer.layer_id, copy0 + k))
        out[k] = rng.uniform(key, counters).view(a, m) < layer.p
    return out


def sample_crossbars(layer: DeployedLayer, copies: int, seed: int, copy0: int = 0) -> torch.Tensor:
    """Sampled integer weights of ``copies`` copies, (copies, a, m) float32 (0 where unconnected)."""
    bits = sample_bits(layer, copies, seed, copy0)
    return torch.where(bits, layer.s, torch.zeros((), device=layer.p.device))


def sample_inputs(
    x: torch.Tensor, tick: int, seed: int, n_offset: int = 0, copy: int | None = None
) -> torch.Tensor:
    """Input spikes of one tick: (N, P) float32 in {0, 1} for probabilities x (N, P).

    ``copy=None``: the spike source shared by every copy; ``copy=k``: copy k's own source.
    """
    n, pix = x.shape
    if (n_offset + n) * pix > rng.MAX_COUNTER:
        raise ConfigError("too many input pixels for one random stream (N * P must be < 2**32)")
    if copy is None:
        key = rng.stream_key(seed, rng.input_stream(tick))
    else:
        key = rng.input_copy_key(seed, tick, copy)
    rows = torch.arange(n_offset, n_offset + n, device=x.device, dtype=torch.int64) * pix
    counters = rows[:, None] + torch.arange(pix, device=x.device, dtype=torch.int64)
    return (rng.uniform(key, counters) < x).to(torch.float32)


def _stage_forward(h: torch.Tensor, layers: list[DeployedLayer], weights: list[torch.Tensor]):
    """Spikes of one stage. h: (R, F) shared by all copies or (K, R, F); returns (K, R, F')."""
    outs = []
    for layer, w in zip(layers, weights, strict=True):
        v = torch.matmul(h[..., layer.src], w)  # (K, R, m): integer sums, exact in float32
        outs.append((v + layer.leak >= chip.THRESHOLD).to(torch.float32))
    return torch.cat(outs, -1)


@torch.no_grad()
def simulate_counts_torch(
    model: TeaNet,
    x: torch.Tensor,
    copies: int,
    ticks: int,
    seed: int,
    n_offset: int = 0,
    memory_mb: float = 96.0,
    inputs: str = "independent",
) -> torch.Tensor:
    """Output spike counts per class: (copies, ticks, N, num_classes) int32, plain torch.

    ``n_offset`` is the index of x[0] in the full data set (random counters depend on it, so a
    chunked evaluation draws the same spikes as an unchunked one).
    """
    flat = check_run(model, x, copies, ticks, seed)
    stages = deployed_layers(model, flat.device)
    weights = [[sample_crossbars(la, copies, seed) for la in st] for st in stages]
    onehot = torch.nn.functional.one_hot(model.class_of, model.num_classes).to(flat)
    n = len(flat)
    widest = max(max(la.shape[0] + la.shape[1] for la in st) for st in stages)
    if inputs not in INPUTS:
        raise ConfigError(f"inputs must be one of {', '.join(INPUTS)}, not {inputs!r}")
    per_row = 4 * copies * (widest * 2 + (flat.shape[1] if inputs == "independent" else 0))
    rows = max(1, int(memory_mb * 2**20 / per_row))
    counts = torch.empty(copies, ticks, n, model.num_classes, dtype=torch.int32, device=flat.device)
    for t in range(ticks):
        for r0 in range(0, n, rows):
            xs = flat[r0 : r0 + rows]
            if inputs == "shared":
                h = sample_inputs(xs, t, seed, n_offset + r0)
            else:  # (K, R, P): every copy draws its own spikes
                h = torch.stack(
                    [sample_inputs(xs, t, seed, n_offset + r0, k) for k in range(copies)]
                )
            for st, ws in zip(stages, weights, strict=True):
                h = _stage_forward(h, st, ws)
            counts[:, t, r0 : r0 + rows] = (h @ onehot).round().to(torch.int32)
    return counts


def simulate_counts(
    model: TeaNet,
    x: torch.Tensor,
    copies: int,
    ticks: int,
    seed: int = 0,
    backend: str = "auto",
    n_offset: int = 0,
    inputs: str = "independent",
) -> torch.Tensor:
    """(copies, ticks, N, num_classes) int32 spike counts; ``backend`` 'auto' uses CUDA if usable.

    ``inputs``: "independent" (every copy draws its own input spikes; the default) or "shared"
    (one input spike source fanned out to every copy). Both backends draw the same spikes.
    """
    if backend not in BACKENDS:
        raise ConfigError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    if inputs not in INPUTS:
        raise ConfigError(f"inputs must be one of {', '.join(INPUTS)}, not {inputs!r}")
    if backend == "auto":
        from dnnrepro.core.kernels import cuda_available

        backend = "cuda" if cuda_available() else "torch"
    if backend == "cuda":
        from .cuda_sim import simulate_counts_cuda

        return simulate_counts_cuda(model, x, copies, ticks, seed, n_offset=n_offset, inputs=inputs)
    return simulate_counts_torch(model, x, copies, ticks, seed, n_offset=n_offset, inputs=inputs)


def ensemble_predictions(counts: torch.Tensor, class_size: torch.Tensor) -> torch.Tensor:
    """Predicted class per image from (..., N, classes) counts: highest count per neuron."""
    return (counts.to(torch.float64) / class_size.to(torch.float64)).argmax(-1)


def ensemble_accuracy(
    counts: torch.Tensor, labels: torch.Tensor, class_size: torch.Tensor, copies: int, ticks: int
) -> float:
    """Accuracy of ensembles of ``copies`` copies x ``ticks`` ticks, averaged over the disjoint
    groups that the simulated (K, T, N, classes) counts hold (K // copies x T // ticks groups)."""
    k_all, t_all, n, c = counts.shape
    if not (1 <= copies <= k_all and 1 <= ticks <= t_all):
        raise ConfigError(f"need 1..{k_all} copies and 1..{t_all} ticks, got {copies}, {ticks}")
    gk, gt = k_all // copies, t_all // ticks
    grouped = counts[: gk * copies, : gt * ticks].to(torch.int64)
    grouped = grouped.view(gk, copies, gt, ticks, n, c).sum((1, 3))
    pred = ensemble_predictions(grouped, class_size)
    return float((pred == labels.to(pred.device)).to(torch.float64).mean())


def accuracy_grid(
    counts: torch.Tensor,
    labels: torch.Tensor,
    class_size: torch.Tensor,
    copies: list[int],
    ticks: list[int],
) -> list[list[float]]:
    """``grid[i][j]`` = ensemble_accuracy for copies[i] x ticks[j]."""
    return [[ensemble_accuracy(counts, labels, class_size, k, t) for t in ticks] for k in copies]


def synapse_evaluations(model: TeaNet, n: int, copies: int, ticks: int) -> int:
    """Crossbar synapses evaluated by a simulation: copies x ticks x N x sum over layers of a*m."""
    per = sum(la.in_features * la.out_features for la in model.tea_layers())
    return copies * ticks * n * per


@dataclass
class DeployResult:
    """Accuracy of the ensemble of all copies and ticks, and what the deployment costs."""

    accuracy: float
    copies: int
    ticks: int
    cores_per_copy: int
    cores_used: int
    backend: str
    synapse_evaluations: int

    def as_dict(self) -> dict:
        return asdict(self)


def deploy(
    model: TeaNet,
    data: tuple[torch.Tensor, torch.Tensor],
    copies: int,
    ticks: int,
    seed: int = 0,
    backend: str = "auto",
    inputs: str = "independent",
) -> DeployResult:
    """Simulate ``copies`` sampled copies for ``ticks`` ticks on (images, labels); see module doc
    (``inputs``: "shared" or "independent" input spike sources, as in :func:`simulate_counts`).

    Refuses a model that does not fit on cores, or copies beyond one chip's 4096 cores.
    """
    if not (isinstance(data, tuple | list) and len(data) == 2):
        raise ConfigError("data must be a tuple (images, labels)")
    x, y = data
    if len(x) != len(y) or len(x) == 0:
        raise ConfigError("images and labels must be non-empty and of equal length")
    plan = map_to_cores(model)
    if isinstance(copies, int) and plan.cores_for(copies) > chip.TOTAL_CORES:
        raise ConfigError(
            f"{copies} copies x {plan.cores_per_copy} cores exceed one chip's "
            f"{chip.TOTAL_CORES} cores; use fewer copies or more ticks"
        )
    if backend == "auto":
        from dnnrepro.core.kernels import cuda_available

        backend = "cuda" if cuda_available() else "torch"
    counts = simulate_counts(model, x, copies, ticks, seed, backend, inputs=inputs)
    total = counts.to(torch.int64).sum((0, 1))
    pred = ensemble_predictions(total, model.class_size)
    acc = float((pred.cpu() == y.cpu()).to(torch.float64).mean())
    return DeployResult(
        acc,
        copies,
        ticks,
        plan.cores_per_copy,
        plan.cores_for(copies),
        backend,
        synapse_evaluations(model, len(x), copies, ticks),
    )


def iso_accuracy_point(curve: list[float], grid: list[int], target: float) -> float:
    """The smallest grid value whose accuracy reaches ``target``; inf when none does."""
    for g, acc in zip(grid, curve, strict=True):
        if acc >= target - 1e-12:
            return float(g)
    return math.inf
