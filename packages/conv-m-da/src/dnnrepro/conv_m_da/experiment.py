"""The runs behind every claim: ``run(ctx)`` for each profile of :mod:`dnnrepro.conv_m_da.config`.

Steps of a run:

1. :func:`record_parameters`: parameter counts of the paper-size and digit-size nets (by
   construction, no training);
2. :func:`run_cells`: one stage per (task, network, seed) cell (see the protocol in
   :mod:`dnnrepro.conv_m_da.config`); each stage's value is JSON: accuracies and the mean loss
   terms of every arm, all derived from the arms' final weights and their checkpointed callback
   state, so a resumed cell gives the same value as an uninterrupted one;
3. :func:`summarize`: per-seed values of every claim from the stage values, tables and figures;
4. paper profile only: :func:`office_rows` (needs the user's Office folders; without them the claim
   is left unmeasured with a note naming the folders).
"""

from __future__ import annotations

import statistics
from typing import Any

import torch

from dnnrepro.core import checkpoint
from dnnrepro.core import data as core_data
from dnnrepro.core import device as core_device
from dnnrepro.core.errors import DataError
from dnnrepro.core.models import count_params
from dnnrepro.core.paper import RunContext
from dnnrepro.core.train import evaluate

from . import office
from .adapt import AdaptConfig, AdaptResult, adapt
from .backbones import read_state_dict, torchvision_resnet
from .claims import NET_TASK, task_id
from .config import ABLATIONS, PROFILES, Profile
from .losses import mk_mmd
from .networks import build_network, compact_net, inception_like, squeeze_net_like
from .tasks import load_task

CHECKPOINT_EVERY = 200  # steps between mid-run checkpoints of an arm (resume granularity)


def _features(result: AdaptResult, x: torch.Tensor) -> torch.Tensor:
    net = result.model
    net.eval()
    with torch.no_grad():
        return net.embed(x.to(next(net.parameters()).device)).cpu()


def _pca(a: torch.Tensor, b: torch.Tensor) -> list[list[list[float]]]:
    """Project two feature sets on the first two principal axes of their union."""
    joint = torch.cat([a, b])
    centered = joint - joint.mean(0)
    _, _, v = torch.linalg.svd(centered, full_matrices=False)
    proj = centered @ v[:2].T
    return [proj[: len(a)].tolist(), proj[len(a) :].tolist()]


def run_cell(
    ctx: RunContext,
    profile: Profile,
    task_name: str,
    kind: str,
    methods: tuple[str, ...],
    seed: int,
    pca: bool = False,
    match: float | None = None,
) -> dict[str, Any]:
    """Pre-train ``kind`` on the task's source, then run each method; JSON-able accuracies.

    ``match``: a source TRAINING accuracy (fraction) to reach before adapting: pre-training goes
    on in further chunks of ``profile.pretrain`` steps (at most ``profile.match_chunks`` chunks in
    all) until the net fits the labelled source as well as that. Only source labels decide it, so
    the nets are compared at equal source fit without looking at any test set.
    """
    task = load_task(task_name, ctx.load, profile.limit, size=profile.image_size)
    cfg = AdaptConfig(seed=seed, batch_size=profile.batch_size, checkpoint_every=CHECKPOINT_EVERY)
    select = {"select": profile.select, "select_every": profile.select_every}
    torch.manual_seed(seed)
    net = build_network(kind, 10, "small", task.source_train[0].shape[1])
    work = f"{task_id(task_name)}-{kind}-seed{seed}"
    common = {"target_test": task.target_test, "source_test": task.source_test, "config": cfg}
    pre = adapt(
        net,
        task.source_train,
        task.target_train[0],
        "source_only",
        steps=profile.pretrain,
        checkpoint_dir=ctx.work(work, "pretrain"),
        **common,
    )
    fit_subset = _fit_subset(task.source_train)
    train_acc = evaluate(pre.model, fit_subset)["accuracy"]
    chunks = 1
    while match is not None and train_acc < match and chunks < profile.match_chunks:
        # continue source-only training from the previous chunk (a fresh optimizer per chunk)
        pre = adapt(
            pre.model,
            task.source_train,
            task.target_train[0],
            "source_only",
            steps=profile.pretrain,
            checkpoint_dir=ctx.work(work, f"pretrain-chunk{chunks}"),
            **common,
        )
        train_acc = evaluate(pre.model, fit_subset)["accuracy"]
        chunks += 1
    out: dict[str, Any] = {
        "params": count_params(net),
        "pretrain": {**pre.metrics, "source_train_accuracy": train_acc, "chunks": chunks},
        "methods": {},
    }
    results = {}
    for method in methods:
        base, overrides = ABLATIONS.get(method, (method, {}))
        r = adapt(
            pre.model,
            task.source_train,
            task.target_train[0],  # images only: target labels never reach adapt
            base,
            steps=profile.steps,
            checkpoint_dir=ctx.work(work, method),
            **common,
            **overrides,
            **select,
        )
        results[method] = r
        out["methods"][method] = {**r.metrics, "terms": r.terms}
        if r.selection:  # only with a validator: the stage values of select="last" are unchanged
            out["methods"][method]["selection"] = r.selection
        ctx.log(f"{task_name} {kind} seed {seed} {method}: {r.metrics}")
    if pca and "ours" in results and profile.pca:
        n = profile.pca
        xs, xt = task.source_test[0][:n], task.target_test[0][:n]
        before = (_features(pre, xs), _features(pre, xt))
        after = (_features(results["ours"], xs), _features(results["ours"], xt))
        out["pca"] = {
            "before": _pca(*before),
            "after": _pca(*after),
            "source_labels": task.source_test[1][:n].tolist(),
            "target_labels": task.target_test[1][:n].tolist(),
            "mmd_before": float(mk_mmd(*before)),
            "mmd_after": float(mk_mmd(*after)),
        }
    return out


def _fit_subset(pair: tuple[torch.Tensor, torch.Tensor], n: int = 2000):
    """An evenly strided subset of the source training set: how well a net fits the source."""
    x, y = pair
    idx = torch.linspace(0, len(x) - 1, min(n, len(x))).round().long()
    return x[idx], y[idx]


def _mean_std(values: list[float]) -> dict[str, float]:
    return {
        "mean": statistics.fmean(values),
        "std": statistics.stdev(values) if len(values) > 1 else 0.0,
        "n": len(values),
    }


def record_parameters(ctx: RunContext) -> dict[str, int]:
    """Parameter counts (by construction) of every network at both sizes."""
    counts = {
        "compact_paper": count_params(compact_net(1000, "paper", 3)),
        "inception_paper": count_params(inception_like(1000, "paper", 3)),
        "squeeze_paper": count_params(squeeze_net_like(1000, "paper", 3)),
        "compact_small": count_params(compact_net(10, "small", 1)),
        "inception_small": count_params(inception_like(10, "small", 1)),
        "squeeze_small": count_params(squeeze_net_like(10, "small", 1)),
    }
    ctx.record("param-count", counts["compact_paper"])
    ctx.record("param-ratio-googlenet", counts["compact_paper"] / counts["inception_paper"])
    ctx.note(
        "param-count",
        f"Counted {counts['compact_paper']:,} = {counts['compact_paper'] / 61.0e6:.1%} of "
        f"AlexNet's ~61M; SqueezeNet v1.0 layout {counts['squeeze_paper']:,}.",
    )
    ctx.note("param-ratio-googlenet", f"GoogLeNet layout counted {counts['inception_paper']:,}.")
    ctx.detail("parameters", counts)
    return counts


def plan(profile: Profile) -> list[tuple[str, str, tuple[str, ...], bool]]:
    """(task, network, methods, pca) of every cell of one seed."""
    cells = []
    for t in profile.tasks:
        methods = profile.methods + (tuple(ABLATIONS) if t == profile.ablation_task else ())
        cells.append((t, "compact", methods, t == profile.net_task and profile.pca > 0))
    if profile.net_task is not None:
        cells += [
            (profile.net_task, k, ("source_only", "ours"), False) for k in ("squeeze", "inception")
        ]
    if profile.cls_task is not None:
        cells.append((profile.cls_task, "inception", ("source_only",), False))
    return cells


def run_cells(ctx: RunContext, profile: Profile) -> dict[str, list[dict]]:
    """Every cell of every seed as a stage; ``{"task|network": [value per seed]}``."""
    cells: dict[str, list[dict]] = {}
    for seed in ctx.seeds:
        for task_name, kind, methods, pca in plan(profile):
            match = None
            if kind == "squeeze" and profile.match_chunks > 1:
                # the compact cell of this seed ran before (plan order): match its source fit
                match = cells[f"{task_name}|compact"][-1]["pretrain"]["source_train_accuracy"]
            value = ctx.stage(
                f"{task_id(task_name)}-{kind}-seed{seed}",
                lambda t=task_name, k=kind, m=methods, p=pca, s=seed, a=match: run_cell(
                    ctx, profile, t, k, m, s, pca=p and s == ctx.seeds[0], match=a
                ),
                match=match,
                match_chunks=profile.match_chunks,
                task=task_name,
                network=kind,
                methods=list(methods),
                seed=seed,
                pretrain=profile.pretrain,
                steps=profile.steps,
                batch_size=profile.batch_size,
                limit=profile.limit,
                image_size=profile.image_size,
                # a validator-selected run is another stage; "last" keeps the earlier keys
                **({"select": profile.select} if profile.select != "last" else {}),
            )
            cells.setdefault(f"{task_name}|{kind}", []).append(value)
    return cells


def _acc(cells, key, method, which="target_test_accuracy") -> list[float]:
    return [100.0 * c["methods"][method][which] for c in cells[key]]


def summarize(ctx: RunContext, profile: Profile, cells: dict[str, list[dict]]) -> None:
    """Record one value per seed for every claim of ``profile``; details and figures."""
    table = {
        t: {m: _mean_std(_acc(cells, f"{t}|compact", m)) for m in profile.methods}
        for t in profile.tasks
    }
    ctx.detail("target_accuracy_percent", table)
    for t in profile.tasks:
        key = f"{t}|compact"
        ours, adabn_ = _acc(cells, key, "ours"), _acc(cells, key, "adabn")
        dan, dann = _acc(cells, key, "dan"), _acc(cells, key, "dann")
        for o, a in zip(ours, adabn_, strict=True):
            ctx.record(f"beats-adabn-{task_id(t)}", o - a)
        for o, d, n in zip(ours, dan, dann, strict=True):
            ctx.record(f"beats-dan-dann-{task_id(t)}", o - max(d, n))
        ctx.note(
            f"beats-dan-dann-{task_id(t)}",
            "Seed means (%): "
            + ", ".join(f"{m} {table[t][m]['mean']:.1f}" for m in profile.methods)
            + ".",
        )
    if profile.ablation_task is not None:
        key = f"{profile.ablation_task}|compact"
        ctx.detail(
            "ablation_" + profile.ablation_task,
            {m: _mean_std(_acc(cells, key, m)) for m in ("ours", *ABLATIONS)},
        )
    nets = _network_claims(ctx, profile, cells) if profile.net_task is not None else {}
    from .figures import accuracy_figure, pca_figure

    fig, data = accuracy_figure(table, nets, profile.net_task)
    ctx.figure("accuracy", fig, data)
    if profile.net_task is not None:
        pca = next((c["pca"] for c in cells[f"{profile.net_task}|compact"] if "pca" in c), None)
        if pca is not None:
            fig, data = pca_figure(pca, profile.net_task)
            ctx.figure("features_pca", fig, data)
            ctx.detail(
                "feature_mmd_" + profile.net_task,
                {"before": pca["mmd_before"], "after": pca["mmd_after"]},
            )


def _network_claims(ctx: RunContext, profile: Profile, cells: dict[str, list[dict]]) -> dict:
    """compression-hurts-da, squeeze-source-match, convm-matches-inception-*; the nets table."""
    assert profile.net_task == NET_TASK, "the network claims are declared for syndigits->mnist5k"
    compact, squeeze, inception = (f"{NET_TASK}|{k}" for k in ("compact", "squeeze", "inception"))
    src = "source_test_accuracy"
    for a, b in zip(_acc(cells, compact, "ours"), _acc(cells, squeeze, "ours"), strict=True):
        ctx.record("compression-hurts-da", a - b)
    for a, b in zip(
        _acc(cells, compact, "source_only", src),
        _acc(cells, squeeze, "source_only", src),
        strict=True,
    ):
        ctx.record("squeeze-source-match", a - b)
    for a, b in zip(_acc(cells, compact, "ours"), _acc(cells, inception, "ours"), strict=True):
        ctx.record("convm-matches-inception-da", a - b)
    if profile.cls_task is not None:
        cls_compact = _acc(cells, f"{profile.cls_task}|compact", "source_only", src)
        cls_inception = _acc(cells, f"{profile.cls_task}|inception", "source_only", src)
        for a, b in zip(cls_compact, cls_inception, strict=True):
            ctx.record("convm-matches-inception-cls", a - b)
        ctx.detail(
            "mnist5k_classification_percent",
            {"compact": _mean_std(cls_compact), "inception": _mean_std(cls_inception)},
        )
    nets = {}
    for kind, key in (("compact", compact), ("squeeze", squeeze), ("inception", inception)):
        gains = [
            a - b
            for a, b in zip(_acc(cells, key, "ours"), _acc(cells, key, "source_only"), strict=True)
        ]
        nets[kind] = {
            "params": cells[key][0]["params"],
            "source_only_target": _mean_std(_acc(cells, key, "source_only")),
            "ours_target": _mean_std(_acc(cells, key, "ours")),
            "source_only_source": _mean_std(_acc(cells, key, "source_only", src)),
            "pretrain_source_train": _mean_std(
                [100.0 * c["pretrain"]["source_train_accuracy"] for c in cells[key]]
            ),
            "pretrain_chunks": [c["pretrain"]["chunks"] for c in cells[key]],
            "da_gain_pp": _mean_std(gains),
        }
    ctx.detail("networks_on_" + NET_TASK, nets)
    ctx.note(
        "compression-hurts-da",
        "DA gain (ours - source_only, pp): "
        + ", ".join(f"{k} {v['da_gain_pp']['mean']:+.2f}" for k, v in nets.items())
        + ".",
    )
    return nets


def _resnet_weights(ctx: RunContext, arch: str):
    """``<data dir>/conv-m-da/<arch>.pth`` (or ``.safetensors``); DataError naming it if absent."""
    folder = core_data.data_dir(ctx.data_dir) / "conv-m-da"
    for suffix in (".pth", ".safetensors"):
        if (folder / f"{arch}{suffix}").is_file():
            return folder / f"{arch}{suffix}"
    return read_state_dict(folder / f"{arch}.pth")  # raises the DataError that names the file


def _office_network(ctx: RunContext, num_classes: int, backbone: str = "compact"):
    """The Office rows' net: the paper-size Conv-M net (ImageNet-initialized from the user's file
    when present) or a torchvision ResNet with the user's ImageNet weights."""
    if backbone != "compact":
        net = torchvision_resnet(backbone, _resnet_weights(ctx, backbone), num_classes=num_classes)
        return net.to(core_device())
    net = compact_net(1000, "paper", 3)
    stem = core_data.data_dir(ctx.data_dir) / "conv-m-da" / "compact_imagenet"
    if checkpoint.exists(stem):
        checkpoint.load_weights(stem, net)
    net.fc = torch.nn.Linear(net.feature_dim, num_classes)
    net.num_classes = num_classes
    return net.to(core_device())


def office_rows(ctx: RunContext, profile: Profile) -> None:
    """Every Office task, every method, ``ctx.seeds`` (transductive protocol: the target domain's
    images are both the unlabelled training set and the test set; their labels are used only for
    the test accuracy). DataError naming the folder when a domain is missing."""
    root = core_data.data_dir(ctx.data_dir)
    if profile.office_backbone != "compact":
        _resnet_weights(ctx, profile.office_backbone)  # fail before loading any image
    for benchmark, (_, domains, _) in office.BENCHMARKS.items():
        for d in domains:
            path = office.domain_dir(root, benchmark, d)
            if not path.is_dir():
                raise DataError(
                    f"{benchmark} domain {d!r} not found: put its class folders into {path} "
                    f"(layout: {path}/<class>/<image>.jpg); see dnnrepro.conv_m_da.office"
                )
    weights = root / "conv-m-da" / "compact_imagenet"
    init_note = (
        f"ImageNet-initialized from {weights}"
        if checkpoint.exists(weights)
        else "from scratch (no ImageNet weights supplied)"
    )
    if profile.office_backbone != "compact":
        where = _resnet_weights(ctx, profile.office_backbone)
        init_note = f"torchvision {profile.office_backbone}, ImageNet weights from {where}"
    methods = profile.methods
    wins, rows = 0, {}
    for benchmark in office.BENCHMARKS:
        domains = {
            d: office.load_domain(root, benchmark, d, profile.office_size)
            for d in office.BENCHMARKS[benchmark][1]
        }
        num_classes = int(max(int(y.max()) for _, y in domains.values())) + 1
        for src, tgt in office.tasks(benchmark):
            name = f"{benchmark}-{office.SHORT[src]}-to-{office.SHORT[tgt]}"
            accs: dict[str, list[float]] = {m: [] for m in methods}
            for seed in ctx.seeds:

                def cell(src=src, tgt=tgt, seed=seed, name=name, domains=domains, k=num_classes):
                    torch.manual_seed(seed)
                    net = _office_network(ctx, k, profile.office_backbone)
                    cfg = AdaptConfig(
                        seed=seed,
                        batch_size=profile.batch_size,
                        bottleneck=profile.office_bottleneck,
                        bottleneck_dropout=profile.office_dropout,
                        discriminator_hidden=profile.office_discriminator_hidden,
                        checkpoint_every=CHECKPOINT_EVERY,
                    )
                    work = f"{name}-seed{seed}"
                    kw = {"target_test": domains[tgt], "config": cfg}
                    pre = adapt(
                        net, domains[src], domains[tgt][0], "source_only",
                        steps=profile.office_pretrain, checkpoint_dir=ctx.work(work, "pretrain"),
                        **kw,
                    )  # fmt: skip
                    out = {}
                    for m in methods:
                        r = adapt(
                            pre.model, domains[src], domains[tgt][0], m,
                            steps=profile.office_steps, checkpoint_dir=ctx.work(work, m), **kw,
                            select=profile.select, select_every=profile.select_every,
                        )  # fmt: skip
                        out[m] = 100.0 * r.metrics["target_test_accuracy"]
                    return out

                value = ctx.stage(f"{name}-seed{seed}", cell, seed=seed)
                for m in methods:
                    accs[m].append(value[m])
            means = {m: statistics.fmean(v) for m, v in accs.items()}
            rows[name] = means
            wins += means["ours"] > max(means[m] for m in methods if m != "ours")
    ctx.record("office-state-of-the-art", wins)
    net_note = "Paper-size Conv-M net" if profile.office_backbone == "compact" else "Backbone:"
    ctx.note("office-state-of-the-art", f"{net_note} {init_note}.")
    ctx.detail("office_target_accuracy_percent", rows)


def run(ctx: RunContext) -> None:
    """Measure every claim declared for ``ctx.profile``."""
    profile = PROFILES[ctx.profile]
    record_parameters(ctx)
    cells = run_cells(ctx, profile)
    summarize(ctx, profile, cells)
    if profile.office:
        try:
            office_rows(ctx, profile)
        except DataError as exc:
            # the MNIST rows above stand on their own; the Office claim stays unmeasured
            ctx.note("office-state-of-the-art", f"Not run: {exc}")
            ctx.detail("office", f"not run: {exc}")
