"""A deployable result: every core of every sampled copy as JSON, and a simulator that runs from it.

``dnnrepro truenorth-learn export`` writes the file; ``deploy --cores FILE`` runs it. The schema
(version 1; README "Core configuration file" repeats it):

.. code-block:: text

    {
      "format": "dnnrepro-truenorth-learn/cores", "version": 1,
      "arch": str, "input_shape": [C, H, W], "num_classes": int,
      "copies": K, "seed": int (the seed the crossbars were sampled with),
      "threshold": 1 (a neuron spikes iff leak + sum of its active weights >= threshold;
                      the potential restarts from 0 every tick),
      "cores": [ one object per core and copy, copies in order, cores in map_to_cores order:
        {"copy": k, "core": i (number within the copy), "stage": s, "layer": l,
         "neurons_of_layer": [start, stop) (which neurons of the layer this core holds),
         "axons": a, "neurons": m,
         "axon_types": [a ints in 0..3],
         "weights": [m lists of 4 ints in -255..255] (neuron j's weight for each axon type),
         "leak": [m ints in -255..255],
         "crossbar": [a strings of m characters "0"/"1"] (row i, column j: axon i -> neuron j),
         "axon_source": [a routes]: {"input": pixel index into the flattened C*H*W image} or
                        {"core": i, "neuron": j} (neuron j of core i of the same copy, previous
                        stage),
         "neuron_target": [m routes]: {"core": i, "axon": a} (one destination, next stage) or
                          {"class": c} (output neuron counted for class c) or null (unused)}
      ]
    }

The synapse of axon i and neuron j adds ``weights[j][axon_types[i]]`` when its crossbar bit is 1
and axon i spiked. Input spikes are not part of the chip: :func:`simulate_cores` samples them
exactly as the in-memory simulator does (``simulate.sample_inputs``: by default one spike source
per copy, or one shared by every copy with ``inputs="shared"``), so a file exported with seed s
and run with seed s gives the same spike counts as ``simulate_counts(model, x, copies, ticks, s)``
with the same ``inputs`` (tested).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch

from dnnrepro.core.errors import ConfigError, DataError, IntegrityError
from dnnrepro.core.io import write_text

from . import chip
from .deployed import deployed_layers
from .mapping import map_to_cores
from .simulate import sample_bits, sample_inputs
from .tea import TeaNet

FORMAT = "dnnrepro-truenorth-learn/cores"
VERSION = 1


def _feature_owner(plan, stage: int, layer_widths: list[int]):
    """Feature f of stage ``stage``'s output -> (core number, neuron within that core)."""
    owner = {}
    offset = 0
    for li, width in enumerate(layer_widths):
        for c in plan.cores:
            if c.stage == stage and c.layer == li:
                for n in range(c.neuron_range[0], c.neuron_range[1]):
                    owner[offset + n] = (c.index, n - c.neuron_range[0])
        offset += width
    return owner


def export_cores(model: TeaNet, copies: int, seed: int = 0, arch: str | None = None) -> dict:
    """The core configuration of ``copies`` sampled copies of ``model`` (module doc schema);
    ``arch`` names the architecture in the file (informational)."""
    if not isinstance(model, TeaNet):
        raise ConfigError(f"export needs a TeaNet, not {type(model).__name__}")
    if not (isinstance(copies, int) and copies >= 1):
        raise ConfigError(f"copies must be an integer >= 1, not {copies!r}")
    plan = map_to_cores(model)
    if plan.cores_for(copies) > chip.TOTAL_CORES:
        raise ConfigError(
            f"{copies} copies x {plan.cores_per_copy} cores exceed one chip's {chip.TOTAL_CORES}"
        )
    stages = deployed_layers(model)
    tea = [list(st.layers) for st in model.stages]
    widths = [[la.out_features for la in st] for st in tea]
    owners = [_feature_owner(plan, s, widths[s]) for s in range(len(stages))]
    # who reads each feature of stage s (for neuron_target): (core, axon) of stage s + 1
    readers: list[dict] = [{} for _ in stages]
    for c in plan.cores:
        if c.stage == 0:
            continue
        src = stages[c.stage][c.layer].src.tolist()
        for axon, f in enumerate(src):
            readers[c.stage - 1][f] = (c.index, axon)
    class_of = model.class_of.tolist()
    bits = [[sample_bits(la, copies, seed) for la in st] for st in stages]
    cores = []
    for k in range(copies):
        for c in plan.cores:
            la, layer = stages[c.stage][c.layer], tea[c.stage][c.layer]
            lo, hi = c.neuron_range
            b = bits[c.stage][c.layer][k][:, lo:hi]
            src = la.src.tolist()
            if c.stage == 0:
                axon_source = [{"input": int(f)} for f in src]
            else:
                axon_source = [
                    {"core": owners[c.stage - 1][f][0], "neuron": owners[c.stage - 1][f][1]}
                    for f in src
                ]
            offset = sum(widths[c.stage][: c.layer])
            last = c.stage == len(stages) - 1
            targets = []
            for n in range(lo, hi):
                f = offset + n
                if last:
                    targets.append({"class": int(class_of[f])})
                elif f in readers[c.stage]:
                    core, axon = readers[c.stage][f]
                    targets.append({"core": core, "axon": axon})
                else:
                    targets.append(None)
            cores.append(
                {
                    "copy": k,
                    "core": c.index,
                    "stage": c.stage,
                    "layer": c.layer,
                    "neurons_of_layer": [lo, hi],
                    "axons": c.axons,
                    "neurons": c.neurons,
                    "axon_types": layer.axon_type.tolist(),
                    "weights": layer.weight_table[lo:hi].tolist(),
                    "leak": [int(v) for v in la.leak[lo:hi].tolist()],
                    "crossbar": ["".join("1" if v else "0" for v in row) for row in b.tolist()],
                    "axon_source": axon_source,
                    "neuron_target": targets,
                }
            )
    return {
        "format": FORMAT,
        "version": VERSION,
        "arch": arch,
        "input_shape": list(model.input_shape),
        "num_classes": model.num_classes,
        "copies": copies,
        "seed": seed,
        "threshold": chip.THRESHOLD,
        "cores": cores,
    }


def write_cores(path: str | os.PathLike, doc: dict) -> Path:
    """Write ``doc`` (compact JSON, atomically); returns the path."""
    path = Path(path)
    write_text(path, json.dumps(doc, separators=(",", ":")))
    return path


def read_cores(path: str | os.PathLike) -> dict:
    """Read and check a core file; DataError if missing, IntegrityError if malformed."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"no core file {path}; write one with `dnnrepro truenorth-learn export`")
    try:
        doc = json.loads(path.read_text())
    except (ValueError, UnicodeDecodeError) as exc:
        raise IntegrityError(f"{path}: not a JSON core file ({exc})") from exc
    check_cores(doc, str(path))
    return doc


def check_cores(doc, where: str = "core file") -> None:
    """IntegrityError naming the first field of ``doc`` that breaks the schema or a chip limit."""

    def bad(msg: str):
        raise IntegrityError(f"{where}: {msg}")

    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        bad(f"not a {FORMAT} document")
    if doc.get("version") != VERSION:
        bad(f"version {doc.get('version')!r}, this reader knows {VERSION}")
    for key in ("input_shape", "num_classes", "copies", "cores", "threshold"):
        if key not in doc:
            bad(f"missing {key!r}")
    if not isinstance(doc["cores"], list) or not doc["cores"]:
        bad("no cores")
    for n, c in enumerate(doc["cores"]):
        try:
            a, m = int(c["axons"]), int(c["neurons"])
            ok = (
                1 <= a <= chip.AXONS_PER_CORE
                and 1 <= m <= chip.NEURONS_PER_CORE
                and len(c["crossbar"]) == a
                and all(len(r) == m and set(r) <= {"0", "1"} for r in c["crossbar"])
                and len(c["axon_types"]) == a
                and all(0 <= int(t) < chip.MAX_AXON_TYPES for t in c["axon_types"])
                and len(c["weights"]) == m
                and all(
                    len(w) <= chip.MAX_AXON_TYPES and all(abs(int(v)) <= 255 for v in w)
                    for w in c["weights"]
                )
                and len(c["leak"]) == m
                and all(abs(int(v)) <= chip.MAX_MAGNITUDE for v in c["leak"])
                and len(c["axon_source"]) == a
                and len(c["neuron_target"]) == m
            )
        except (KeyError, TypeError, ValueError):
            ok = False
        if not ok:
            bad(f"core entry {n} is malformed or breaks a chip limit")


def simulate_cores(
    doc: dict,
    x: torch.Tensor,
    ticks: int,
    seed: int = 0,
    n_offset: int = 0,
    inputs: str = "independent",
) -> torch.Tensor:
    """(copies, ticks, N, num_classes) int32 spike counts of the chip in ``doc`` on images ``x``
    (N, C, H, W) in [0, 1]; input spikes as ``simulate.sample_inputs`` with ``seed``, one source
    per copy (``inputs="independent"``, the default) or one shared by every copy (``"shared"``)."""
    check_cores(doc)
    if inputs not in ("shared", "independent"):
        raise ConfigError(f"inputs must be 'shared' or 'independent', not {inputs!r}")
    shape = tuple(doc["input_shape"])
    if x.dim() != 4 or tuple(x.shape[1:]) != shape:
        raise ConfigError(f"the core file reads images of shape {shape}, not {tuple(x.shape[1:])}")
    if not (isinstance(ticks, int) and ticks >= 1):
        raise ConfigError(f"ticks must be an integer >= 1, not {ticks!r}")
    flat = x.reshape(len(x), -1).to(torch.float32)
    copies, classes, threshold = int(doc["copies"]), int(doc["num_classes"]), doc["threshold"]
    by_copy: dict[int, list[dict]] = {}
    for c in doc["cores"]:
        by_copy.setdefault(int(c["copy"]), []).append(c)
    counts = torch.zeros(copies, ticks, len(flat), classes, dtype=torch.int32)
    for k in range(copies):
        cores = sorted(by_copy.get(k, []), key=lambda c: c["core"])
        if not cores:
            raise IntegrityError(f"core file: copy {k} has no cores")
        wiring = _wire(cores, classes)
        for t in range(ticks):
            copy = None if inputs == "shared" else k
            pixels = sample_inputs(flat, t, seed, n_offset, copy)
            bank = torch.zeros(len(flat), wiring.width)  # every core's spikes of this tick
            for c, (src, w, leak, col0) in zip(cores, wiring.cores, strict=True):
                h = pixels[:, src] if c["stage"] == 0 else bank[:, src]
                bank[:, col0 : col0 + w.shape[1]] = (h @ w + leak >= threshold).to(torch.float32)
            counts[k, t] = (bank @ wiring.readout).round().to(torch.int32)
    return counts


class _Wiring:
    """One copy's cores as tensors: per core (source index, weights, leak, first column in the
    bank of all cores' spikes), the bank width and the readout (bank column -> class)."""

    def __init__(self, cores: list, width: int, readout: torch.Tensor):
        self.cores, self.width, self.readout = cores, width, readout


def _wire(cores: list[dict], classes: int) -> _Wiring:
    col0, offset = {}, 0
    for c in cores:  # cores in order, so a core's sources (previous stage) come before it
        col0[int(c["core"])] = offset
        offset += int(c["neurons"])
    readout = torch.zeros(offset, classes)
    wired = []
    for c in cores:
        if int(c["stage"]) == 0:
            if any("input" not in r for r in c["axon_source"]):
                raise IntegrityError(f"core {c['core']}: a first-stage axon must read an input")
            src = torch.tensor([int(r["input"]) for r in c["axon_source"]], dtype=torch.int64)
        else:
            try:
                src = torch.tensor(
                    [col0[int(r["core"])] + int(r["neuron"]) for r in c["axon_source"]],
                    dtype=torch.int64,
                )
            except (KeyError, TypeError) as exc:
                raise IntegrityError(f"core {c['core']}: bad axon route ({exc})") from exc
        bits = torch.tensor([[ch == "1" for ch in r] for r in c["crossbar"]])
        table = torch.tensor(c["weights"], dtype=torch.float32)  # (m, types)
        types = torch.tensor(c["axon_types"], dtype=torch.int64)
        w = table.t()[types] * bits  # (a, m): the weight of the axon's type, where connected
        leak = torch.tensor(c["leak"], dtype=torch.float32)
        wired.append((src, w, leak, col0[int(c["core"])]))
        for j, target in enumerate(c["neuron_target"]):
            if isinstance(target, dict) and "class" in target:
                readout[col0[int(c["core"])] + j, int(target["class"])] = 1.0
    return _Wiring(wired, offset, readout)
