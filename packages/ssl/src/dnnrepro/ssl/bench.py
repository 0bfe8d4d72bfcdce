"""``dnnrepro ssl bench``: speed of the LeNet-3 row's shrunk net (first seed) against dense.

Reads the nets of this code's small-profile run (``BenchOptions.run_folder("small")``; ``--quick``
reads the smoke run) and measures, interleaved with the dense counterpart: each conv's per-image
and batched lowered GEMM and the layer module end to end; the whole network at batch 1 and 256;
the SSL net's compact products against magnitude pruning's CSR products at the same density.
Target from issue 16: conv-layer geomean speedup >= 3x with error within 0.5 pp of dense.
"""

from __future__ import annotations

import json

from dnnrepro.core import checkpoint, models
from dnnrepro.core.bench import RatioMeasurement, bench_entry
from dnnrepro.core.errors import ConfigError

from .serialize import load_shrunk
from .speed import conv_geomean, layer_speedups, network_ratio, structured_over_csr


def _stored(folder, name: str) -> dict:
    found = sorted((folder / "stages").glob(f"{name}-*.json"))
    values = [json.loads(p.read_text())["value"] for p in found]
    values = [v for v in values if checkpoint.exists(folder / "models" / v["model"])]
    if len(values) != 1:
        raise ConfigError(
            f"ssl bench needs exactly one finished '{name}' row in {folder} (found {len(values)}); "
            "run 'dnnrepro ssl reproduce --profile small' with this code first"
        )
    return values[0]


def bench(opts) -> list[dict]:
    profile = "smoke" if opts.quick else "small"
    folder = opts.run_folder(profile)
    like = _stored(folder, "lenet3-s0")
    base = like["base"]
    small = load_shrunk(folder / "models" / like["model"])
    dense = models.build(base["name"], **base["kwargs"])
    baseline_stem = sorted((folder / "baselines").glob("lenet-*-train-s0.json"))
    if baseline_stem:
        checkpoint.load_weights(baseline_stem[0].with_suffix(""), dense)
    else:  # the small profile starts from the pinned core baseline
        from dnnrepro.core import baselines

        dense = baselines.get("lenet-mnist5k", opts.data_dir)
    dense = dense.cpu().eval()
    shape = (
        base["kwargs"]["in_channels"],
        base["kwargs"]["image_size"],
        base["kwargs"]["image_size"],
    )
    repeats = 7 if opts.quick else 15
    batch = 8 if opts.quick else 256
    layers = layer_speedups(
        dense, small, shape, batch=batch, n_threads=opts.threads, repeats=repeats
    )
    entries = []
    for r in layers:
        if r.get("gemm_speedup") is None:
            continue
        m = RatioMeasurement.from_dict(r["single_image"])
        entries.append(
            bench_entry(
                f"lenet3.{r['layer']}.gemm_per_image",
                m,
                baseline="dense lowered GEMM, one image",
                candidate="compact lowered GEMM (surviving rows/columns), one image",
                flop_bound=r["flop_bound"],
                batched_ratio=r["gemm_batched_speedup"],
                layer_ratio=r["layer_speedup"],
            )
        )
    for b in sorted({1, batch}):
        m = network_ratio(dense, small, shape, b, repeats=repeats)
        entries.append(
            bench_entry(
                f"lenet3.network.batch{b}",
                m,
                baseline="dense LeNet forward",
                candidate="shrunk LeNet-3 nn.Module forward",
            )
        )
    pruned_stem = folder / "models" / "unstructured-s0"
    if checkpoint.exists(pruned_stem):
        pruned = models.build(base["name"], **base["kwargs"])
        checkpoint.load_weights(pruned_stem, pruned)
        m = structured_over_csr(small, pruned.eval(), shape, repeats=repeats)
        entries.append(
            bench_entry(
                "lenet3.structured_vs_csr",
                m,
                baseline="magnitude pruning at the same density, CSR GEMMs per image",
                candidate="SSL compact GEMMs per image",
            )
        )
    error = like["error_increase_pp"]
    geo = conv_geomean(layers, "gemm_speedup")
    entries.append(
        {
            "name": "summary",
            "error_increase_pp": error,
            "geomean_conv_gemm_speedup": geo,
            "geomean_conv_layer_speedup": conv_geomean(layers, "layer_speedup"),
            "target": "conv geomean speedup >= 3x with error within 0.5 pp",
            "target_met": bool(geo is not None and geo >= 3 and error <= 0.5),
        }
    )
    return entries
