"""From per-seed results (experiment.run_seed) to claims, notes and the summary in results.json.

One value per seed for every non-timing claim (the verdict is a t-interval over seeds); the timing
claims take the first seed's interleaved measurement (``ctx.record_timing``, once per claim).
"""

from __future__ import annotations

import statistics

from dnnrepro.core.paper import RunContext

LABEL_FLIP = "label-flip"


def _mean(values):
    values = [v for v in values if v is not None]
    return statistics.fmean(values) if values else float("nan")


def final_accuracy(result: dict, method: str, protocol: str) -> float:
    """Test accuracy (fraction) after all poisons of ``method`` under ``protocol`` (sequential:
    the last count; fraction: the largest poison fraction)."""
    return result["damage"][method][protocol][-1]["test_accuracy"]


def margin_over_label_flip(result: dict, method: str, protocol: str) -> float:
    """How much more ``method`` hurts than the label-flip control with the same poisons, in pp
    (> 0: the attack is worse for the victim than flipping labels)."""
    if protocol == "per_point":
        d = result["damage"]
        return d[method]["per_point_drop_pp"] - d[LABEL_FLIP]["per_point_drop_pp"]
    return 100 * (
        final_accuracy(result, LABEL_FLIP, protocol) - final_accuracy(result, method, protocol)
    )


def summarize(results: list[dict]) -> dict:
    """Means over seeds of the numbers the claims and the README use."""
    methods = list(results[0]["damage"])
    speed = [r["speed"] for r in results]
    return {
        "seeds": len(results),
        "target_test_accuracy": _mean([r["target"]["test_accuracy"] for r in results]),
        "seconds_per_poison": {
            m: _mean([s["seconds_per_poison"][m] for s in speed])
            for m in speed[0]["seconds_per_poison"]
        },
        "speedup_forward_only": _mean([s["speedup"] for s in speed]),
        "speedup_refit_per_poison": _mean([s["speedup_refit_per_poison"] for s in speed]),
        "amortized_speedup": _mean([s["amortized_speedup"] for s in speed]),
        "break_even_poisons": [s["break_even_poisons"] for s in speed],
        "generator_fit_seconds": _mean([s["generator_fit_seconds"] for s in speed]),
        "per_point_drop_pp": {
            m: _mean([r["damage"][m]["per_point_drop_pp"] for r in results]) for m in methods
        },
        "margin_over_label_flip_pp": {
            protocol: {
                m: _mean([margin_over_label_flip(r, m, protocol) for r in results])
                for m in methods
                if m != LABEL_FLIP
            }
            for protocol in ("per_point", "sequential", "fraction")
        },
        "sequential_final_drop_pp": {
            m: _mean(
                [
                    100
                    * (
                        r["damage"][m]["sequential"][0]["test_accuracy"]
                        - r["damage"][m]["sequential"][-1]["test_accuracy"]
                    )
                    for r in results
                ]
            )
            for m in methods
        },
        "detection": {
            m: {
                q: {
                    k: _mean([r["detection"]["methods"][m][q][k] for r in results])
                    for k in ("tpr", "fpr", "auc")
                }
                for q in results[0]["detection"]["methods"][m]
            }
            for m in results[0]["detection"]["methods"]
        },
        "evasion_still_above": [
            {m: v["still_above"] for m, v in r.get("evasion", {}).items()} for r in results
        ],
        "clean_stream_fpr": {
            q: _mean([r["detection"]["clean_stream"][q]["fpr"] for r in results])
            for q in results[0]["detection"]["clean_stream"]
        },
    }


def record_claims(ctx: RunContext, dataset: str, main: bool, results: list[dict]) -> None:
    """Record the claims ``dataset`` decides (``main``: the profile's main dataset)."""
    first = results[0]["speed"]
    if main:
        ctx.record_timing("speedup", first["refit"])
        ctx.record_timing("speedup_forward_only", first["forward"])
        ctx.record_timing("speedup_amortized", first["amortized"])
        for r in results:
            drops = {m: r["damage"][m]["per_point_drop_pp"] for m in r["damage"]}
            ctx.record(
                "degradation_direct", margin_over_label_flip(r, "direct-faithful", "per_point")
            )
            ctx.record(
                "degradation_generative",
                margin_over_label_flip(r, "generative-faithful", "per_point"),
            )
            for short, method in (
                ("direct", "direct-faithful"),
                ("generative", "generative-faithful"),
            ):
                for protocol in ("sequential", "fraction"):
                    ctx.record(
                        f"beats_label_flip_{short}_{protocol}",
                        margin_over_label_flip(r, method, protocol),
                    )
            ratio = (
                drops["generative-faithful"] / drops["direct-faithful"]
                if drops["direct-faithful"] > 0
                else float("nan")
            )
            ctx.record("generative_vs_direct", ratio)
            ctx.record("detect_tpr", r["detection"]["pooled"]["tpr"])
            ctx.record("detect_auc", r["detection"]["pooled"]["auc"])
            ctx.record("detect_fpr_clean", r["detection"]["clean_stream"]["0.99"]["fpr"])
            ctx.record("adaptive_tpr", r["detection"]["adaptive_pooled"]["tpr"])
            for short in ("direct", "generative"):
                ctx.record(
                    f"adaptive_damage_{short}",
                    margin_over_label_flip(r, f"{short}-faithful-adaptive", "per_point"),
                )
    elif dataset == "digits":
        ctx.record_timing("speedup_digits", first["refit"])
    elif dataset == "cifar10":
        ctx.record_timing("speedup_cifar", first["refit"])
        for r in results:
            ctx.record("detect_auc_cifar", r["detection"]["pooled"]["auc"])


def write_notes(ctx: RunContext, s: dict) -> None:
    """Notes on the main dataset's claims: the numbers behind each verdict."""
    t = s["seconds_per_poison"]
    d = s["per_point_drop_pp"]
    margins = s["margin_over_label_flip_pp"]
    ctx.note(
        "speedup",
        f"reading (b): the generator's reward rounds re-run per poison; mean over seeds "
        f"{s['speedup_refit_per_poison']:.3g}x. Reading (a), one forward pass only: "
        f"{s['speedup_forward_only']:.3g}x (claim speedup_forward_only). Seconds per poison: "
        f"direct faithful {t['direct-faithful']:.3g}, exact hypergradient (ours) "
        f"{t['direct-exact']:.3g}, generator pass {t['generative-faithful']:.3g}.",
    )
    ctx.note(
        "speedup_amortized",
        f"generator training {s['generator_fit_seconds']:.3g} s; break-even after "
        f"{', '.join(f'{b:.0f}' if b is not None else 'never' for b in s['break_even_poisons'])} "
        "poisons (per seed).",
    )
    ctx.note(
        "degradation_direct",
        f"target accuracy {100 * s['target_test_accuracy']:.2f}%; mean drops (pp), per-point "
        "protocol: " + ", ".join(f"{m} {v:.2f}" for m, v in d.items()) + ".",
    )
    ctx.note(
        "degradation_generative",
        "margin over the label-flip control (pp), per protocol: "
        + "; ".join(
            f"{p}: " + ", ".join(f"{m} {v:.2f}" for m, v in row.items())
            for p, row in margins.items()
        )
        + ".",
    )
    ctx.note(
        "detect_tpr",
        "per method at q=0.99 (TPR / AUC): "
        + ", ".join(
            f"{m} {v['0.99']['tpr']:.2f} / {v['0.99']['auc']:.3f}"
            for m, v in s["detection"].items()
        )
        + ".",
    )
    det, drop = s["detection"], s["per_point_drop_pp"]
    ctx.note(
        "adaptive_tpr",
        "without / with evasion at q=0.99, TPR (FPR on the clean stream), per-point drop (pp): "
        + "; ".join(
            f"{m}: TPR {det[m]['0.99']['tpr']:.2f} -> {det[m + '-adaptive']['0.99']['tpr']:.2f} "
            f"(FPR {det[m]['0.99']['fpr']:.3f}), drop {drop[m]:.2f} -> {drop[m + '-adaptive']:.2f}"
            for m in ("direct-faithful", "generative-faithful")
        )
        + f". Still above the threshold after projection (per seed): {s['evasion_still_above']}.",
    )
    ctx.note(
        "detect_fpr_clean",
        f"FPR at q=0.95: {s['clean_stream_fpr'].get('0.95', float('nan')):.3f}.",
    )
